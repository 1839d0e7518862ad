#include "rnnkit/grad_scaler.h"

#include <cmath>
#include <optional>

#include <ATen/ops/isfinite.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>

namespace rnnkit {
namespace {

void check_scale(double scale, const char* what) {
  TORCH_CHECK_VALUE(std::isfinite(scale) && scale > 0, "GradScaler: expected a ", what,
                    " that is finite and positive, got ", scale);
}

}  // namespace

GradScaler::GradScaler(GradScalerOptions options)
    : options_(options), scale_(options.init_scale()) {
  check_scale(options_.init_scale(), "init_scale");
  TORCH_CHECK_VALUE(options_.growth_factor() > 1, "GradScaler: expected growth_factor > 1, got ",
                    options_.growth_factor());
  TORCH_CHECK_VALUE(options_.backoff_factor() > 0 && options_.backoff_factor() < 1,
                    "GradScaler: expected backoff_factor in (0, 1), got ",
                    options_.backoff_factor());
  TORCH_CHECK_VALUE(options_.growth_interval() >= 1,
                    "GradScaler: expected growth_interval >= 1, got ", options_.growth_interval());
}

at::Tensor GradScaler::scale(const at::Tensor& loss) const { return loss * scale_; }

bool GradScaler::unscale_(const std::vector<at::Tensor>& params) const {
  torch::NoGradGuard no_grad;
  const double inverse = 1.0 / scale_;
  std::optional<at::Tensor> nonfinite;  // one flag on the gradients' device, read once
  for (const auto& p : params) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    g.mul_(inverse);
    const at::Tensor bad = at::isfinite(g).logical_not_().any();
    nonfinite = nonfinite ? nonfinite->logical_or_(bad.to(nonfinite->device())) : bad;
  }
  return nonfinite && nonfinite->item<bool>();
}

void GradScaler::update(bool found_inf) {
  if (found_inf) {
    scale_ *= options_.backoff_factor();
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ >= options_.growth_interval()) {
    const double grown = scale_ * options_.growth_factor();
    if (std::isfinite(grown)) scale_ = grown;  // as torch: never grows into inf
    growth_tracker_ = 0;
  }
}

void GradScaler::load(double scale, int64_t growth_tracker) {
  check_scale(scale, "saved scale");
  TORCH_CHECK_VALUE(growth_tracker >= 0, "GradScaler: expected a saved growth tracker >= 0, got ",
                    growth_tracker);
  scale_ = scale;
  growth_tracker_ = growth_tracker;
}

}  // namespace rnnkit
