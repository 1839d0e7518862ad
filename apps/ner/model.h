#pragma once
// The many-to-many tagger: one tag per token.
//
//     w<t>   = E_w[word<t>]                                 word embedding (pretrained or random)
//     c<t>   = CharCNN(chars<t>) | CharBiRNN(chars<t>)      optional: max over filters, or the
//                                                            final states of a char BiRNN
//     k<t>   = E_k[casing<t>]                                optional casing class embedding
//     x<t>   = dropout([w<t>; c<t>; k<t>])
//     a<t>   = BiRNN(x<1..T>)                                stacked, dropout between layers
//     s<t>   = W_y dropout(a<t>) + b_y                       emission scores, one per tag
//     ŷ      = softmax(s<t>) per token | CRF(s<1..T>)        the decoder
//
// Shapes: B batch, T steps (words), W real words in the batch, L characters per word, K tags,
// E word embedding size, C char feature size, H hidden size, D directions (2).
#include <string>
#include <utility>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <rnnkit/compat.h>
#include <rnnkit/crf.h>
#include <rnnkit/registry.h>
#include <rnnkit/rnn.h>

namespace rnnkit::ner {

enum class CharFeatures { kNone, kRNN, kCNN };
CharFeatures parse_char_features(const std::string& name);  ///< none, rnn, cnn
enum class Decoder { kSoftmax, kCRF };
Decoder parse_decoder(const std::string& name);  ///< softmax, crf

/// Casing classes of a word (Reimers & Gurevych 2017): 0 is padding.
enum Casing : int64_t {
  kCasingPad = 0,
  kNumeric,
  kMainlyNumeric,
  kAllLower,
  kAllUpper,
  kInitialUpper,
  kContainsDigit,
  kOther,
  kNumCasings
};
int64_t casing(const std::string& word);

struct TaggerOptions {
  TaggerOptions(int64_t vocab_size, int64_t num_chars, int64_t num_tags, RNNOptions rnn)
      : vocab_size_(vocab_size), num_chars_(num_chars), num_tags_(num_tags), rnn_(std::move(rnn)) {}
  TORCH_ARG(int64_t, vocab_size);
  TORCH_ARG(int64_t, num_chars);
  TORCH_ARG(int64_t, num_tags);
  /// The word-level recurrent network, whole. The model sets input_size (the concatenated
  /// features' width) and makes it bidirectional and batch-first, as a tagger reads both sides.
  /// Its dropout also acts on the features, the character embeddings and the states before the
  /// output layer; its init also initialises the character RNN.
  TORCH_ARG(RNNOptions, rnn);
  TORCH_ARG(int64_t, word_embedding_size) = 100;
  TORCH_ARG(CharFeatures, char_features) = CharFeatures::kCNN;
  TORCH_ARG(std::string, char_cell) = "lstm";
  TORCH_ARG(int64_t, char_embedding_size) = 25;
  TORCH_ARG(int64_t, char_hidden_size) = 25;  ///< per direction (rnn) or filters (cnn)
  TORCH_ARG(int64_t, char_kernel) = 3;
  TORCH_ARG(int64_t, casing_size) = 0;  ///< 0: no casing features
  TORCH_ARG(Decoder, decoder) = Decoder::kCRF;
};

/// One padded batch of sentences.
struct TaggerBatch {
  torch::Tensor words;         ///< [B, T] int64, 0 past each length
  torch::Tensor casing;        ///< [B, T] int64
  torch::Tensor lengths;       ///< [B] int64
  torch::Tensor chars;         ///< [W, L] int64: the characters of each real word, in (b, t) order
  torch::Tensor char_lengths;  ///< [W] int64
  torch::Tensor positions;     ///< [W] int64: b * T + t of each real word
  torch::Tensor tags;          ///< [B, T] int64 (training); 0 past each length
  TaggerBatch to_device(const torch::Device& device) const;
};

class TaggerImpl : public torch::nn::Cloneable<TaggerImpl> {
 public:
  explicit TaggerImpl(TaggerOptions options);
  void reset() override;
  void pretty_print(std::ostream& os) const override;

  /// Emission scores s [B, T, K].
  torch::Tensor forward(const TaggerBatch& batch);
  /// Mean loss per sentence (CRF: negative log-likelihood of the path; softmax: the sum of
  /// token cross-entropies), over the batch.
  torch::Tensor loss(const TaggerBatch& batch);
  /// The best tag sequence of each sentence (CRF: Viterbi; softmax: argmax per token).
  std::vector<std::vector<int64_t>> decode(const TaggerBatch& batch);
  /// c<t> for the words of the batch: [W, C].
  torch::Tensor char_features(const TaggerBatch& batch);

  TaggerOptions options;
  torch::nn::Embedding words{nullptr}, chars{nullptr}, casing{nullptr};
  torch::nn::Conv1d char_cnn{nullptr};
  RNN char_rnn{nullptr}, rnn{nullptr};
  torch::nn::Linear output{nullptr};
  CRF crf{nullptr};
};
TORCH_MODULE(Tagger);

}  // namespace rnnkit::ner
