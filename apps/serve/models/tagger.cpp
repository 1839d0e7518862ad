// ner models: POST /v1/models/{name}/tag, batched; texts are tokenized as predict tokenizes
// them, or the client gives the tokens.
#include "models.h"

#include <set>

#include <rnnkit/data/conll.h>
#include <rnnkit/data/tokenize.h>
#include <rnnkit/precision.h>
#include <torch/torch.h>

#include "../batching.h"
#include "../openapi.h"
#include "../request.h"
#include "ner/ner.h"

namespace rnnkit::serve {
namespace {
using train::Json;

class Tagger final : public ServedModel {
 public:
  Tagger(const ModelSpec& spec, const ServeContext& context)
      : ServedModel(spec, "ner", context),
        tagger_(ner::load_model(spec.checkpoints.at(0), context.device)),
        batcher_([this](const std::vector<Json>& items) { return tag(items); }, options().max_batch,
                 options().max_delay_ms, options().queue, on_batch(),
                 options().max_request_seconds) {}

  void handle(const std::string&, const std::string& body, httplib::Response& res) override {
    auto r = decode_tag(body, options());
    std::vector<Json> items;
    for (auto& i : r.items) {
      Json item{{"text", std::move(i.text)}, {"tags", r.tags}};
      if (!i.tokens.empty()) item["tokens"] = std::move(i.tokens);
      items.push_back(std::move(item));
    }
    answer(res, 200, {{"model", name()}, {"results", batcher_.submit(std::move(items))}});
  }

  void describe(Json& c) const override {
    c["model"] = recurrent_card(tagger_.config.rnn);
    c["parameters"] = parameter_count(*tagger_.model);
    c["vocabulary_size"] = tagger_.lexicon.words.size();
    std::set<std::string> types;
    for (const auto& t : tagger_.lexicon.tags) {
      if (t.size() > 2 && t[1] == '-') types.insert(t.substr(2));
    }
    c["entity_types"] = types;
    c["tag_scheme"] = data::to_string(tagger_.lexicon.input_scheme);
  }

  size_t queue_depth() const override { return batcher_.depth(); }
  void abandon(const std::string& why) override { batcher_.abandon(why); }

 private:
  /// What predict --json gives, one object per item; `tags` is per item (a batch mixes
  /// requests).
  std::vector<Json> tag(const std::vector<Json>& items) {
    c10::InferenceMode guard;
    const AutocastGuard autocast(options().precision, device().type());
    std::vector<std::string> texts;
    std::vector<std::vector<data::TextToken>> tokens;
    std::vector<bool> token_tags;
    for (const auto& i : items) {
      token_tags.push_back(i.value("tags", false));
      if (i.contains("tokens")) {
        auto [text, toks] = ner::joined_tokens(i["tokens"].get<std::vector<std::string>>());
        texts.push_back(std::move(text));
        tokens.push_back(std::move(toks));
      } else {
        texts.push_back(i["text"].get<std::string>());
        tokens.push_back(data::tokenize_ptb(texts.back()));
      }
    }
    return ner::tag_json(tagger_, texts, tokens, device(), token_tags);
  }

  ner::Loaded tagger_;
  Batcher batcher_;  // last: its thread stops before the model goes
};

Json describe_routes(const ServeOptions& o) {
  const Json token_lists{{"type", "array"},
                         {"items", {{"type", "array"}, {"items", {{"type", "string"}}}}}};
  return {{"/v1/models/{name}/tag",
           openapi::action("ner: entities of each text, with code-point offsets and confidences "
                           "(as predict --json)",
                           openapi::body({{"texts", openapi::texts(o)},
                                          {"tokens", token_lists},
                                          {"tags", {{"type", "boolean"}}}},
                                         {}),
                           "results in order")}};
}

}  // namespace

ServedApp tagger_app() {
  return {"ner",
          {"tag"},
          /*ensembles=*/false,
          describe_routes,
          [](const ModelSpec& spec, const ServeContext& context) {
            return std::make_unique<Tagger>(spec, context);
          }};
}

}  // namespace rnnkit::serve
