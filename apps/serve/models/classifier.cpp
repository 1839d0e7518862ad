// sentiment models: POST /v1/models/{name}/classify, batched; an ensemble averages probabilities
// as predict --ensemble does.
#include "models.h"

#include <rnnkit/precision.h>
#include <torch/torch.h>

#include "../batching.h"
#include "../openapi.h"
#include "../request.h"
#include "sentiment/sentiment.h"

namespace rnnkit::serve {
namespace {
using train::Json;

class Classifier final : public ServedModel {
 public:
  Classifier(const ModelSpec& spec, const ServeContext& context)
      : ServedModel(spec, "sentiment", context),
        models_(sentiment::load_models(spec.checkpoints, context.device)),
        batcher_([this](const std::vector<Json>& items) { return classify(items); },
                 options().max_batch, options().max_delay_ms, options().queue, on_batch(),
                 options().max_request_seconds) {}

  void handle(const std::string&, const std::string& body, httplib::Response& res) override {
    std::vector<Json> items;
    for (auto& t : decode_texts(body, options(), true).texts) {
      items.push_back({{"text", std::move(t)}});
    }
    answer(res, 200, {{"model", name()}, {"results", batcher_.submit(std::move(items))}});
  }

  void describe(Json& c) const override {
    const auto& m = models_.front();
    c["model"] = recurrent_card(m.config.rnn);
    c["model"]["bidirectional"] = m.config.rnn.bidirectional();
    c["model"]["embedding_size"] = m.config.embedding_size;
    c["model"]["pooling"] = m.config.pooling;
    int64_t params = 0;
    for (const auto& x : models_) params += parameter_count(*x.model);
    c["parameters"] = params;
    c["vocabulary_size"] = m.vocab.size();
    c["labels"] = m.labels;
  }

  size_t queue_depth() const override { return batcher_.depth(); }
  void abandon(const std::string& why) override { batcher_.abandon(why); }

 private:
  /// What predict --json gives, one object per item.
  std::vector<Json> classify(const std::vector<Json>& items) {
    c10::InferenceMode guard;
    const AutocastGuard autocast(options().precision, device().type());
    std::vector<std::string> texts;
    for (const auto& i : items) texts.push_back(i["text"].get<std::string>());
    return sentiment::classify_json(models_, texts, device());
  }

  std::vector<sentiment::Loaded> models_;
  Batcher batcher_;  // last: its thread stops before the models go
};

Json describe_routes(const ServeOptions& o) {
  return {{"/v1/models/{name}/classify",
           openapi::action("sentiment: label and class probabilities of each text (as predict "
                           "--json)",
                           openapi::body({{"texts", openapi::texts(o)}}, {"texts"}),
                           "results in order")}};
}

}  // namespace

ServedApp classifier_app() {
  return {"sentiment",
          {"classify"},
          /*ensembles=*/true,
          describe_routes,
          [](const ModelSpec& spec, const ServeContext& context) {
            return std::make_unique<Classifier>(spec, context);
          }};
}

}  // namespace rnnkit::serve
