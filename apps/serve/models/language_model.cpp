// lm models: POST /v1/models/{name}/score (in the request's thread) and .../generate (continuous
// batching, optionally streamed as Server-Sent Events).
#include "models.h"

#include <chrono>

#include <rnnkit/precision.h>
#include <torch/torch.h>

#include "../batching.h"
#include "../connection.h"
#include "../metrics.h"
#include "../openapi.h"
#include "../request.h"
#include "lm/lm.h"

namespace rnnkit::serve {
namespace {
using train::Json;

class LanguageModel final : public ServedModel {
 public:
  LanguageModel(const ModelSpec& spec, const ServeContext& context)
      : ServedModel(spec, "lm", context),
        lm_(lm::load_model(spec.checkpoints.at(0), context.device)),
        generations_(lm_, context.device, options().precision, options().max_batch, options().queue,
                     on_batch(), [&metrics = context.metrics](uint64_t n) { metrics.tokens(n); }) {}

  void handle(const std::string& action, const std::string& body, httplib::Response& res) override {
    if (action == "score") return score(body, res);
    generate(body, res);
  }

  void describe(Json& c) const override {
    c["model"] = recurrent_card(lm_.config.rnn);
    c["model"]["level"] = lm_.config.level;
    c["parameters"] = parameter_count(*lm_.model);
    c["vocabulary_size"] = lm_.vocab.size();
  }

  size_t queue_depth() const override { return generations_.depth(); }
  void abandon(const std::string& why) override { generations_.abandon(why); }

 private:
  void score(const std::string& body, httplib::Response& res) {
    const auto texts = decode_texts(body, options(), false).texts;
    c10::InferenceMode guard;
    const AutocastGuard autocast(options().precision, device().type());  // as the batches
    Json results = Json::array();
    for (const auto& t : texts) {
      results.push_back(lm::score_json(t, lm::score_line(lm_, t, device())));
    }
    answer(res, 200, {{"model", name()}, {"results", results}});
  }

  void generate(const std::string& body, httplib::Response& res) {
    const auto r = decode_generate(body, options(), lm_.vocab.size());
    const int64_t max_tokens = r.sample.max_length;
    const std::string prompt = r.sample.prompt;
    auto g = generations_.start(r.sample);  // 503 here, before any answer is begun
    auto stop_reason = [max_tokens](int64_t n) { return n >= max_tokens ? "length" : "eos"; };
    if (!r.stream) {
      // Nobody reads a generation whose client went away: it is cancelled, as a streamed one
      // is when its write fails (it once ran to max_tokens for nobody).
      std::string text;
      int64_t n = 0;
      for (Generations::Event e;;) {
        const int got = g->wait_for(e, std::chrono::milliseconds(100));
        if (got == 0) break;
        if (got == 1) text += e.piece, ++n;
        if ((got == -1 || n % 64 == 0) && HttpServer::client_gone()) {
          g->cancelled = true;
          throw HttpError(499, "the client closed the connection");
        }
      }
      answer(res, 200,
             {{"model", name()},
              {"prompt", prompt},
              {"text", text},
              {"tokens", n},
              {"stop_reason", stop_reason(n)}});
      return;
    }
    // Server-Sent Events: one event per token, then one with the stop reason. A client that
    // goes away stops its generation (its write fails; the generation leaves the batch).
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [g, stop_reason](size_t, httplib::DataSink& sink) {
          auto send = [&](const Json& j) {
            const std::string event = "data: " + train::json_line(j) + "\n\n";
            return sink.is_writable() && sink.write(event.data(), event.size());
          };
          // Nothing may leave a content provider (cpp-httplib does not catch: std::terminate).
          // A generation that fails after its 200 was sent ends with an error event instead.
          int64_t n = 0;
          try {
            for (Generations::Event e; g->wait(e); ++n) {
              if (!send({{"text", e.piece}, {"logprob", e.logprob}})) {
                g->cancelled = true;
                return false;
              }
            }
            send({{"done", true}, {"tokens", n}, {"stop_reason", stop_reason(n)}});
          } catch (...) {
            g->cancelled = true;
            // An HttpError (a 503 when the drain ran out) says why itself; anything else is ours.
            std::string why;
            try {
              throw;
            } catch (const HttpError& e) {
              why = e.what();
            } catch (...) {
              why = "internal error: " + error_message(std::current_exception());
            }
            try {
              send({{"done", true}, {"tokens", n}, {"stop_reason", "error"}, {"error", why}});
            } catch (...) {  // not even the error event could be written: the stream just ends
            }
          }
          sink.done();
          return true;
        });
  }

  lm::Loaded lm_;
  Generations generations_;  // last: its thread stops before the model goes
};

Json describe_routes(const ServeOptions& o) {
  const Json generate{
      {"prompt", {{"type", "string"}}},
      {"max_tokens", {{"type", "integer"}, {"minimum", 1}, {"maximum", o.max_tokens}}},
      {"temperature", {{"type", "number"}, {"minimum", 0}, {"maximum", 100}}},
      {"top_k", {{"type", "integer"}, {"minimum", 0}}},
      {"seed", {{"type", "integer"}, {"minimum", 0}}},
      {"stop_at_eos", {{"type", "boolean"}}},
      {"stream", {{"type", "boolean"}}}};
  return {{"/v1/models/{name}/score",
           openapi::action("lm: log-probability (nats), perplexity and token count of each text",
                           openapi::body({{"texts", openapi::texts(o)}}, {"texts"}),
                           "results in order")},
          {"/v1/models/{name}/generate",
           openapi::action("lm: generated text; with stream, Server-Sent Events (one per token, "
                           "then the stop reason)",
                           openapi::body(generate, {}), "the text, or text/event-stream")}};
}

}  // namespace

ServedApp language_model_app() {
  return {"lm",
          {"score", "generate"},
          /*ensembles=*/false,
          describe_routes,
          [](const ModelSpec& spec, const ServeContext& context) {
            return std::make_unique<LanguageModel>(spec, context);
          }};
}

}  // namespace rnnkit::serve
