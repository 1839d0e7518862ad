#pragma once
// Attention over a source sequence (docs/equations.md, "Attention"). The decoder's state s asks,
// every source position t' answers with h<t'>, and the context c<t> is their weighted mean:
//
//   additive (Bahdanau et al. 2015):
//     e<t,t'> = vᵀ tanh(W_s s + W_h h<t'> + b)       W_h h<t'> + b computed once per sentence
//   multiplicative (Luong et al. 2015):
//     dot:     e<t,t'> = sᵀ h<t'>                      (needs query_size == memory_size)
//     general: e<t,t'> = sᵀ W h<t'>                    W h<t'> computed once per sentence
//   all:
//     α<t,t'> = exp(e<t,t'>) / Σ_{t'' < length} exp(e<t,t''>)    padded positions: exactly 0
//     c<t>    = Σ_t' α<t,t'> h<t'>
//
// Padded positions are filled with -inf before the softmax, so their weight is exactly 0 and no
// gradient reaches their h<t'> or their keys.
//
//     rnnkit::AdditiveAttention att(rnnkit::AttentionOptions(256, 512));
//     auto memory = att->memory(h, lengths);   // h [S, B, 512]: once per sentence
//     auto out = att(s, memory);               // s [B, 256] -> out.context [B, 512]
//
// Shapes: S source positions, B batch, Dq query size, Dh memory size, A attention size.
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>

#include <rnnkit/cloneable.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace rnnkit {

/// What the attention reads of one batch of source sentences, computed once per sentence.
struct AttentionMemory {
  torch::Tensor values;  ///< h<t'> [B, S, Dh]
  torch::Tensor keys;    ///< what a score multiplies: W_h h + b [B, S, A], W h [B, S, Dq], or h
  torch::Tensor mask;    ///< [B, S] bool: true at the real (unpadded) positions

  int64_t batch() const { return values.size(0); }
  /// The memory of the rows `index` [N] (beam search repeats and reorders sentences).
  AttentionMemory index_select(const torch::Tensor& index) const;
};

struct AttentionOutput {
  torch::Tensor context;  ///< c [B, Dh] (or [T, B, Dh] for several queries)
  torch::Tensor weights;  ///< α [B, S] (or [T, B, S])
};

/// The [B, S] mask of real positions for `lengths` [B] (each in 1..S), on `like`'s device.
torch::Tensor length_mask(const torch::Tensor& lengths, int64_t S, const torch::Tensor& like);

struct AttentionOptions {
  AttentionOptions(int64_t query_size, int64_t memory_size)
      : query_size_(query_size), memory_size_(memory_size) {}
  TORCH_ARG(int64_t, query_size);   ///< Dq: the decoder state's width
  TORCH_ARG(int64_t, memory_size);  ///< Dh: the encoder outputs' width
  /// Additive: A, the width of the tanh layer (0: query_size). Unused by the others.
  TORCH_ARG(int64_t, attention_size) = 0;
  /// Multiplicative: "dot" or "general".
  TORCH_ARG(std::string, score) = "general";
};

/// What every attention does; the decoder holds one of these.
class AttentionImplBase : public virtual torch::nn::Module {
 public:
  /// h [S, B, Dh], lengths [B] int64 (each 1..S; undefined: all S) -> the sentence's memory.
  virtual AttentionMemory memory(const torch::Tensor& h, const torch::Tensor& lengths) const = 0;
  /// Scores e [B, T, S] of T queries s [B, T, Dq] (unmasked).
  virtual torch::Tensor scores(const torch::Tensor& s, const AttentionMemory& m) const = 0;
  /// One query s [B, Dq] -> c [B, Dh], α [B, S].
  AttentionOutput attend(const torch::Tensor& s, const AttentionMemory& m) const;
  /// T queries at once, s [T, B, Dq] -> c [T, B, Dh], α [T, B, S] (teacher forcing, when the
  /// queries do not depend on earlier contexts).
  AttentionOutput attend_all(const torch::Tensor& s, const AttentionMemory& m) const;
};

class AdditiveAttentionImpl : public rnnkit::Cloneable<AdditiveAttentionImpl>,
                              public AttentionImplBase {
 public:
  explicit AdditiveAttentionImpl(AttentionOptions options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& os) const override;
  AttentionMemory memory(const torch::Tensor& h, const torch::Tensor& lengths) const override;
  torch::Tensor scores(const torch::Tensor& s, const AttentionMemory& m) const override;
  AttentionOutput forward(const torch::Tensor& s, const AttentionMemory& m) const {
    return attend(s, m);
  }

  AttentionOptions options;
  torch::Tensor W_s;  ///< [A, Dq]
  torch::Tensor W_h;  ///< [A, Dh]
  torch::Tensor b;    ///< [A]
  torch::Tensor v;    ///< [A]
};
TORCH_MODULE(AdditiveAttention);

class MultiplicativeAttentionImpl : public rnnkit::Cloneable<MultiplicativeAttentionImpl>,
                                    public AttentionImplBase {
 public:
  explicit MultiplicativeAttentionImpl(AttentionOptions options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& os) const override;
  AttentionMemory memory(const torch::Tensor& h, const torch::Tensor& lengths) const override;
  torch::Tensor scores(const torch::Tensor& s, const AttentionMemory& m) const override;
  AttentionOutput forward(const torch::Tensor& s, const AttentionMemory& m) const {
    return attend(s, m);
  }

  AttentionOptions options;
  torch::Tensor W;  ///< general: [Dq, Dh]; undefined for dot
};
TORCH_MODULE(MultiplicativeAttention);

/// "additive", "dot" or "general" -> that attention; anything else throws, listing the three.
std::shared_ptr<AttentionImplBase> make_attention(const std::string& kind,
                                                  const AttentionOptions& options);

}  // namespace rnnkit
