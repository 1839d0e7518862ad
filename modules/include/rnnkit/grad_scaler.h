#pragma once
// Dynamic loss scaling for fp16 training, as torch.cuda.amp.GradScaler does it.
//
// fp16 keeps 5 exponent bits: a gradient below 2^-24 flushes to zero in the fp16 backward. The
// loss is multiplied by a scale S before backward, so every gradient is S times larger while
// it passes through fp16, and divided by S again before clipping and the optimizer step:
//
//   backward(S · loss)                     every gradient g is computed as S·g
//   g ← g / S                              unscale_: the true gradient again (exact: S = 2^k)
//   found_inf = any(!isfinite(g))          an overflowed product, S too large
//   found_inf: skip the step, S ← S · backoff_factor, good ← 0
//   else:      step; good ← good + 1; good = growth_interval: S ← S · growth_factor, good ← 0
//
// S stays a power of two (the defaults multiply by 2 and 0.5), so scaling and unscaling round
// nothing: without an overflow a scaled step is bit-identical to an unscaled one. The scale is
// a double on the host: the step needs a yes or no to skip the optimizer either way, which is
// the one device sync (torch.cuda.amp.GradScaler.step has it too). Gradients of any device and
// floating type; a parameter without a gradient is passed over.
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>

namespace rnnkit {

struct GradScalerOptions {
  TORCH_ARG(double, init_scale) = 65536.0;  ///< 2^16, torch.cuda.amp.GradScaler's default
  TORCH_ARG(double, growth_factor) = 2.0;
  TORCH_ARG(double, backoff_factor) = 0.5;
  /// Steps without an overflow before the scale grows.
  TORCH_ARG(int64_t, growth_interval) = 2000;
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions options = {});

  /// S, the factor the loss is multiplied by before backward.
  double scale() const { return scale_; }
  /// loss · S.
  at::Tensor scale(const at::Tensor& loss) const;
  /// Divides the gradients of `params` by S in place; returns whether any of them holds an inf
  /// or a NaN (then the optimizer step must be skipped: the gradients are not usable).
  bool unscale_(const std::vector<at::Tensor>& params) const;
  /// After each step: backs off on an overflow, grows after growth_interval steps without one.
  void update(bool found_inf);

  /// Steps since the last overflow or growth (what a checkpoint keeps with the scale).
  int64_t growth_tracker() const { return growth_tracker_; }
  /// Restores what scale() and growth_tracker() gave: a resumed run scales as it would have.
  void load(double scale, int64_t growth_tracker);
  const GradScalerOptions& options() const { return options_; }

 private:
  GradScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
};

}  // namespace rnnkit
