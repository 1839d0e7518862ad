#pragma once
// What rnnkit-ner's training (task.cpp) and predictions (predict.cpp) share: a sentence encoded
// for the tagger and its batches. Not installed; the app's public face is ner.h.
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "ner.h"

namespace rnnkit::ner::internal {

/// One sentence as ids: words, casing classes, each word's characters, and (for training) tags.
struct Encoded {
  std::vector<int64_t> words, casing, tags;
  std::vector<std::vector<int64_t>> chars;
};
/// `tokens` (and their internal-scheme tags, when given) as ids of `lx`.
Encoded encode(const Lexicon& lx, const std::vector<std::string>& tokens,
               const std::vector<std::string>& internal_tags = {});
/// The sentences `idx` of `data`, padded into one batch.
TaggerBatch make_batch(const std::vector<Encoded>& data, const std::vector<size_t>& idx);
/// Tag ids as names.
std::vector<std::string> tag_names(const Lexicon& lx, const std::vector<int64_t>& ids);
/// One string per line and back (the vocabularies as a checkpoint stores them).
std::string join(const std::vector<std::string>& v);
std::vector<std::string> split_lines(const std::string& s);
/// The tagger `c` describes over `lx`, with the CRF's constraints of its scheme.
TaggerOptions model_options(const NerConfig& c, const Lexicon& lx);
Tagger build_model(const NerConfig& c, const Lexicon& lx);
std::vector<size_t> sentence_lengths(const std::vector<Encoded>& sentences);
/// The sentences of `c`'s CoNLL file with the config's tag renames applied.
std::vector<data::TaggedSentence> read_renamed(const NerConfig& c, const std::string& path);
/// The tag ids of every sentence (empty for an empty one), in the input order.
std::vector<std::vector<int64_t>> decode_all(TaggerImpl& model, const std::vector<Encoded>& data,
                                             const torch::Device& device);

/// Runs body(idx, batch) over the non-empty sentences of `data` in batches of up to 64 of
/// similar length (sorted, so that a batch pads little; idx are their positions in `data`), with
/// the model in eval mode.
template <class Body>
void for_each_batch(TaggerImpl& model, const std::vector<Encoded>& data,
                    const torch::Device& device, Body body) {
  struct EvalMode {
    TaggerImpl& model;
    bool was_training = model.is_training();
    ~EvalMode() { model.train(was_training); }
  } mode{model};
  model.eval();
  std::vector<size_t> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return data[a].words.size() < data[b].words.size(); });
  for (size_t a = 0; a < order.size(); a += 64) {
    std::vector<size_t> idx;
    for (size_t i = a; i < std::min(order.size(), a + 64); ++i) {
      if (!data[order[i]].words.empty()) idx.push_back(order[i]);
    }
    if (!idx.empty()) body(idx, make_batch(data, idx).to_device(device));
  }
}

}  // namespace rnnkit::ner::internal
