// rnnkit-ner's predictions: tagging with a loaded checkpoint (the CLI, the server, the Python
// Tagger, the benchmark and the export all call these), evaluation, and the JSON of an answer.
#include "internal.h"

#include <cmath>

#include <limits>

#include <rnnkit/data/tokenize.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <rnnkit/data/batching.h>
#include <rnnkit/data/embeddings.h>
#include <rnnkit/registry.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/signals.h>

namespace rnnkit::ner {

using data::TagScheme;
using data::Vocab;
using torch::Tensor;
using namespace internal;

TaggerBatch Loaded::batch(const std::vector<std::vector<std::string>>& sentences) const {
  TORCH_CHECK(!sentences.empty(), "ner: expected at least one sentence");
  std::vector<Encoded> enc;
  for (const auto& s : sentences) {
    TORCH_CHECK(!s.empty(), "ner: expected sentences of at least one token");
    enc.push_back(encode(lexicon, s));
  }
  std::vector<size_t> idx(enc.size());
  std::iota(idx.begin(), idx.end(), 0);
  return make_batch(enc, idx);
}

std::vector<std::vector<std::string>> Loaded::tag_internal(
    const std::vector<std::vector<std::string>>& sentences, const torch::Device& device) {
  std::vector<Encoded> enc;
  for (const auto& s : sentences) enc.push_back(encode(lexicon, s));
  std::vector<std::vector<std::string>> out;
  for (const auto& p : decode_all(*model, enc, device)) out.push_back(tag_names(lexicon, p));
  return out;
}

std::vector<Tagging> Loaded::tag_scored(const std::vector<std::vector<std::string>>& sentences,
                                        const torch::Device& device) {
  torch::NoGradGuard no_grad;
  std::vector<Encoded> enc;
  for (const auto& s : sentences) enc.push_back(encode(lexicon, s));
  std::vector<Tagging> out(sentences.size());
  const bool crf = model->options.decoder() == Decoder::kCRF;
  const auto K = static_cast<int64_t>(lexicon.tags.size());
  for_each_batch(
      *model, enc, device, [&](const std::vector<size_t>& idx, const TaggerBatch& batch) {
        const auto scores = model->forward(batch);  // [B, T, K]
        std::vector<std::vector<int64_t>> paths;
        torch::Tensor probs;  // [B, T, K]
        if (crf) {
          paths = model->crf->decode(scores, batch.lengths);
          probs = model->crf->marginals(scores, batch.lengths);
        } else {
          probs = torch::softmax(scores, 2);
          const auto best = scores.argmax(2).cpu().contiguous();
          for (size_t k = 0; k < idx.size(); ++k) {
            const auto* p = best[static_cast<int64_t>(k)].data_ptr<int64_t>();
            paths.emplace_back(p, p + enc[idx[k]].words.size());
          }
        }
        const auto p = probs.to(torch::kCPU, torch::kDouble).contiguous();
        const auto log_z =
            crf ? model->crf->log_partition(scores, batch.lengths).cpu() : torch::Tensor();
        for (size_t k = 0; k < idx.size(); ++k) {
          const auto b = static_cast<int64_t>(k);
          Tagging& g = out[idx[k]];
          g.tags = tag_names(lexicon, paths[k]);
          const auto pb = p[b];
          const auto pa = pb.accessor<double, 2>();
          for (size_t t = 0; t < paths[k].size(); ++t) {
            g.tag_confidence.push_back(pa[static_cast<int64_t>(t)][paths[k][t]]);
          }
          g.spans = data::tags_to_spans(g.tags, lexicon.internal_scheme);
          const auto& spans = g.spans;
          if (spans.empty()) continue;
          if (!crf) {
            for (const auto& sp : spans) {
              double c = 1;
              for (size_t t = sp.start; t < sp.end; ++t) c *= g.tag_confidence[t];
              g.span_confidence.push_back(c);
            }
            continue;
          }
          // P(span) = Z(paths with the span's tags fixed and no continuation) / Z: one constrained
          // forward pass per entity, all of a sentence's entities in one batch.
          const auto n = static_cast<int64_t>(paths[k].size());
          const auto e = scores[b].narrow(0, 0, n);  // [n, K]
          std::vector<torch::Tensor> constrained;
          for (const auto& sp : spans) {
            auto allowed = torch::ones({n, K}, torch::kBool);
            for (size_t t = sp.start; t < sp.end; ++t) {
              allowed[static_cast<int64_t>(t)].fill_(false);
              allowed[static_cast<int64_t>(t)][paths[k][t]] = true;
            }
            auto forbid = [&](int64_t t, std::initializer_list<const char*> prefixes) {
              for (int64_t j = 0; j < K; ++j) {
                for (const char* pre : prefixes) {
                  if (lexicon.tags[static_cast<size_t>(j)] == pre + sp.type) allowed[t][j] = false;
                }
              }
            };
            if (static_cast<int64_t>(sp.end) < n)
              forbid(static_cast<int64_t>(sp.end), {"I-", "E-"});
            if (sp.start > 0 && g.tags[sp.start].rfind("I-", 0) == 0) {
              forbid(static_cast<int64_t>(sp.start) - 1, {"I-", "B-"});
            }
            constrained.push_back(e.masked_fill(allowed.logical_not().to(e.device()),
                                                -std::numeric_limits<double>::infinity()));
          }
          const auto stacked = torch::stack(constrained);  // [E, n, K]
          const auto lengths = torch::full({stacked.size(0)}, n, torch::kLong);
          const auto log_zc =
              model->crf->log_partition(stacked, lengths).to(torch::kCPU, torch::kDouble);
          const double lz = log_z[b].item<double>();
          for (int64_t i = 0; i < stacked.size(0); ++i) {
            g.span_confidence.push_back(std::exp(log_zc[i].item<double>() - lz));
          }
        }
      });
  return out;
}

std::vector<std::vector<std::string>> Loaded::tag(
    const std::vector<std::vector<std::string>>& sentences, const torch::Device& device) {
  auto out = tag_internal(sentences, device);
  for (auto& t : out) t = data::convert_tags(t, lexicon.internal_scheme, lexicon.input_scheme);
  return out;
}

Loaded load_model(const std::string& checkpoint, const torch::Device& device) {
  auto saved = train::open_saved_run(checkpoint, "ner");
  Loaded m;
  m.config = NerConfig::read(saved.config);
  auto& lx = m.lexicon;
  lx.words = Vocab::from_string(train::get_string(saved.task, "words"), checkpoint + "#words");
  lx.chars = Vocab::from_string(train::get_string(saved.task, "chars"), checkpoint + "#chars");
  lx.tags = split_lines(train::get_string(saved.task, "tags"));
  lx.input_scheme = data::parse_tag_scheme(train::get_string(saved.task, "input_scheme"));
  lx.internal_scheme = data::parse_tag_scheme(m.config.tag_scheme);
  lx.lowercase = m.config.lowercase;
  lx.normalize_digits = m.config.normalize_digits;
  lx.max_word_length = m.config.max_word_length;
  m.model = build_model(m.config, lx);
  train::load_weights(*m.model, saved.model, checkpoint);
  train::check_finite(*m.model, checkpoint);
  m.model->to(device);
  m.model->eval();
  return m;
}

Conlleval evaluate(Loaded& m, const std::string& path, const torch::Device& device) {
  const auto sentences = m.config.read(path, m.lexicon.input_scheme);
  std::vector<std::vector<std::string>> tokens;
  for (const auto& s : sentences) tokens.push_back(s.tokens);
  const auto guessed = m.tag(tokens, device);
  Conlleval ev;
  for (size_t i = 0; i < sentences.size(); ++i) ev.add(sentences[i].tags, guessed[i]);
  return ev;
}

namespace {
train::Json entities_json(const std::string& text, const std::vector<data::TextToken>& tokens,
                          const std::vector<data::Span>& spans) {
  train::Json entities = train::Json::array();
  for (const auto& s : spans) {
    const size_t b = tokens[s.start].begin, e = tokens[s.end - 1].end;
    entities.push_back({{"start", data::code_point_offset(text, b)},
                        {"end", data::code_point_offset(text, e)},
                        {"type", s.type},
                        {"text", text.substr(b, e - b)}});
  }
  return {{"text", text}, {"entities", entities}};
}
}  // namespace

std::pair<std::string, std::vector<data::TextToken>> joined_tokens(
    const std::vector<std::string>& tokens) {
  std::pair<std::string, std::vector<data::TextToken>> out;
  auto& [text, toks] = out;
  for (const auto& t : tokens) {
    if (!toks.empty()) text += " ";
    toks.push_back({t, text.size(), text.size() + t.size()});
    text += t;
  }
  return out;
}

std::vector<train::Json> tag_json(Loaded& m, const std::vector<std::string>& texts,
                                  const std::vector<std::vector<data::TextToken>>& tokens,
                                  const torch::Device& device, bool token_tags) {
  return tag_json(m, texts, tokens, device, std::vector<bool>(texts.size(), token_tags));
}

std::vector<train::Json> tag_json(Loaded& m, const std::vector<std::string>& texts,
                                  const std::vector<std::vector<data::TextToken>>& tokens,
                                  const torch::Device& device,
                                  const std::vector<bool>& token_tags) {
  TORCH_CHECK(texts.size() == tokens.size() && texts.size() == token_tags.size(),
              "tag_json: expected tokens and token_tags for each of the ", texts.size(),
              " texts, got ", tokens.size(), " and ", token_tags.size());
  std::vector<std::vector<std::string>> words;
  for (const auto& t : tokens) {
    words.emplace_back();
    for (const auto& x : t) words.back().push_back(x.text);
  }
  const auto tagged = m.tag_scored(words, device);
  std::vector<train::Json> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    out.push_back(entities_json(texts[i], tokens[i], tagged[i], m, token_tags[i]));
  return out;
}

train::Json entities_json(const std::string& text, const std::vector<data::TextToken>& tokens,
                          const std::vector<std::string>& internal_tags, const Loaded& m) {
  return entities_json(text, tokens, data::tags_to_spans(internal_tags, m.lexicon.internal_scheme));
}

train::Json entities_json(const std::string& text, const std::vector<data::TextToken>& tokens,
                          const Tagging& tagging, const Loaded& m, bool token_tags) {
  train::Json j = entities_json(text, tokens, tagging.spans);
  auto& entities = j["entities"];
  for (size_t i = 0; i < entities.size() && i < tagging.span_confidence.size(); ++i) {
    entities[i]["confidence"] = tagging.span_confidence[i];
  }
  if (token_tags) {
    const auto tags =
        data::convert_tags(tagging.tags, m.lexicon.internal_scheme, m.lexicon.input_scheme);
    train::Json toks = train::Json::array();
    for (size_t k = 0; k < tokens.size(); ++k) {
      toks.push_back({{"text", tokens[k].text},
                      {"start", data::code_point_offset(text, tokens[k].begin)},
                      {"end", data::code_point_offset(text, tokens[k].end)},
                      {"tag", m.config.unrename(tags[k])},
                      {"confidence", tagging.tag_confidence[k]}});
    }
    j["tokens"] = toks;
  }
  return j;
}

}  // namespace rnnkit::ner
