// seq2seq models: POST /v1/models/{name}/translate, batched; the items of one request share its
// decoding options, and a batch of several requests groups its items by them.
#include "models.h"

#include <fmt/core.h>
#include <rnnkit/precision.h>
#include <torch/torch.h>

#include "../batching.h"
#include "../openapi.h"
#include "../request.h"
#include "seq2seq/seq2seq.h"

namespace rnnkit::serve {
namespace {
using train::Json;

/// Source tokens of one translate text: rnnkit-seq2seq translate's --max-source-length default.
constexpr int64_t kMaxSourceTokens = 1000;

/// Attention weights go out with 4 decimals: the 17 digits of a double made one answer 507 MB.
constexpr int kAttentionDecimals = 4;

class Translator final : public ServedModel {
 public:
  Translator(const ModelSpec& spec, const ServeContext& context)
      : ServedModel(spec, "seq2seq", context),
        translator_(seq2seq::load_model(spec.checkpoints.at(0), context.device)),
        batcher_([this](const std::vector<Json>& items) { return translate(items); },
                 options().max_batch, options().max_delay_ms, options().queue, on_batch(),
                 options().max_request_seconds) {}

  /// Sources are tokenized here, in the request's thread, so that a text over the limit is this
  /// request's 413 and never reaches a batch shared with others.
  void handle(const std::string&, const std::string& body, httplib::Response& res) override {
    const auto r = decode_translate(body, options());
    const Json decoding{
        {"beam", r.beam}, {"alpha", r.alpha}, {"n_best", r.n_best}, {"attention", r.attention}};
    std::vector<Json> items;
    // The request's work and answer are bounded before any of it starts: beam 100 and n-best
    // 100 with attention over one 1,000-token text once took 27 s and 2.6 GB.
    int64_t work = 0, cells = 0;
    for (size_t i = 0; i < r.texts.size(); ++i) {
      auto tokens = translator_.config.tokenize_line(r.texts[i]);
      const auto n = static_cast<int64_t>(tokens.size());
      if (n > kMaxSourceTokens) {
        throw HttpError(413, fmt::format("field 'texts[{}]': {} tokens, more than the limit of {}",
                                         i, tokens.size(), kMaxSourceTokens));
      }
      // The server decodes with translate's default lengths.
      const int64_t steps = seq2seq::max_output_tokens({}, n), attended = n + 1;  // and <eos>
      const int64_t w = r.beam * steps * attended;
      work += w;
      cells += r.attention ? r.n_best * steps * attended : 0;
      items.push_back({{"tokens", std::move(tokens)}, {"options", decoding}, {"work", w}});
    }
    if (work > options().max_translate_work) {
      throw HttpError(413,
                      fmt::format("the request's translate work (beam x output tokens x source "
                                  "tokens, summed over its texts) is {}, more than the limit of {} "
                                  "(--max-translate-work): use a smaller beam, or fewer or shorter "
                                  "texts per request",
                                  work, options().max_translate_work));
    }
    if (cells > options().max_attention_cells) {
      throw HttpError(
          413, fmt::format("the request's attention (n_best x output tokens x source tokens, "
                           "summed over its texts) is {} cells, more than the limit of {} "
                           "(--max-attention-cells): ask for fewer hypotheses, or no attention",
                           cells, options().max_attention_cells));
    }
    answer(res, 200, {{"model", name()}, {"results", batcher_.submit(std::move(items))}});
  }

  void describe(Json& c) const override {
    const auto& m = translator_;
    c["model"] = recurrent_card(m.config.rnn);
    c["model"]["attention"] = m.config.attention;
    c["model"]["bidirectional_encoder"] = m.config.bidirectional_encoder;
    c["model"]["embedding_size"] = m.config.embedding_size;
    c["model"]["tokenize"] = m.config.tokenize;
    c["parameters"] = parameter_count(*m.model);
    c["source_vocabulary_size"] = m.lexicon.source.size();
    c["target_vocabulary_size"] = m.lexicon.target.size();
  }

  size_t queue_depth() const override { return batcher_.depth(); }
  void abandon(const std::string& why) override { batcher_.abandon(why); }

 private:
  /// What translate --json gives, one object per item (attention rounded). Items of one
  /// decoding setting (beam, alpha, n_best, attention) are translated together, in runs whose
  /// work stays within --max-translate-work (a batch of many requests' texts may hold more than
  /// one request may); a batch of several settings runs each setting's items in their order.
  std::vector<Json> translate(const std::vector<Json>& items) {
    c10::InferenceMode guard;
    const AutocastGuard autocast(options().precision, device().type());
    std::vector<Json> out(items.size());
    std::vector<bool> done(items.size(), false);
    for (size_t first = 0; first < items.size(); ++first) {
      if (done[first]) continue;
      const Json& key = items[first]["options"];
      seq2seq::TranslateOptions t;
      t.beam = key["beam"].get<int64_t>();
      t.alpha = key["alpha"].get<double>();
      t.n_best = key["n_best"].get<int64_t>();
      t.keep_attention = key["attention"].get<bool>();
      std::vector<size_t> group;
      std::vector<std::vector<std::string>> sources;
      int64_t work = 0;
      auto run = [&] {
        const auto translations = seq2seq::translate(translator_, sources, t);
        for (size_t k = 0; k < group.size(); ++k) {
          out[group[k]] = seq2seq::translation_json(translator_, translations[k], t.keep_attention,
                                                    kAttentionDecimals);
        }
        group.clear();
        sources.clear();
        work = 0;
      };
      for (size_t i = first; i < items.size(); ++i) {
        if (done[i] || items[i]["options"] != key) continue;
        const auto w = items[i]["work"].get<int64_t>();
        if (!group.empty() && work + w > options().max_translate_work) run();
        group.push_back(i);
        sources.push_back(items[i]["tokens"].get<std::vector<std::string>>());
        work += w;
        done[i] = true;
      }
      run();
    }
    return out;
  }

  seq2seq::Loaded translator_;
  Batcher batcher_;  // last: its thread stops before the model goes
};

Json describe_routes(const ServeOptions& o) {
  const Json translate{
      {"texts", openapi::texts(o)},
      {"beam", {{"type", "integer"}, {"minimum", 1}, {"maximum", kMaxTranslateBeam}}},
      {"alpha", {{"type", "number"}, {"minimum", 0}, {"maximum", 10}}},
      {"n_best", {{"type", "integer"}, {"minimum", 1}}},
      {"attention", {{"type", "boolean"}}}};
  return {{"/v1/models/{name}/translate",
           openapi::action("seq2seq: the translation of each text, its hypotheses and scores, "
                           "and with attention its attention matrix (as translate --json)",
                           openapi::body(translate, {"texts"}), "results in order")}};
}

}  // namespace

ServedApp translator_app() {
  return {"seq2seq",
          {"translate"},
          /*ensembles=*/false,
          describe_routes,
          [](const ModelSpec& spec, const ServeContext& context) {
            return std::make_unique<Translator>(spec, context);
          }};
}

}  // namespace rnnkit::serve
