#pragma once
// Mixed precision: the matrix products in bf16 (or fp16 on CUDA), everything else in fp32.
//
// AutocastGuard turns on LibTorch's autocast (at::autocast) for a scope, as torch.autocast does
// in Python: ops autocast covers (addmm, mm, linear, matmul) run in the lower type, their
// weights cast once per scope. The built-in cells' fast paths then cast by hand where autocast
// cannot see (detail/recurrent_product.cpp, builtin_cells.cpp): each product's result comes
// back in the weights' type (fp32), so the gate nonlinearities and the cell state stay fp32,
// and the per-step recurrent product keeps its weight in the lower type for the whole sequence.
// Master weights, gradients and optimizer state stay fp32; a backward pass is run outside the
// guard, as in PyTorch.
#include <optional>
#include <string>

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace rnnkit {

enum class Precision { kFP32, kBF16, kFP16 };

/// "fp32", "bf16" or "fp16"; anything else is a c10::ValueError naming the three.
Precision parse_precision(const std::string& name);
std::string to_string(Precision p);

/// Autocast for `device` in `precision` while it lives (fp32: autocast off, as it was before
/// it). fp16 on a CPU is refused (a c10::ValueError): LibTorch 1.13's CPU autocast takes bf16
/// only, and fp16 needs a gradient scaler CPUs do not need.
class AutocastGuard {
 public:
  AutocastGuard(Precision precision, c10::DeviceType device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool active_ = false, was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::Float;
};

/// The type autocast runs products in for tensors on `device` in this thread, or nullopt when
/// autocast is off there.
std::optional<c10::ScalarType> autocast_dtype(c10::DeviceType device);

/// Empty when this CPU multiplies bf16 natively; otherwise the /proc/cpuinfo flag it lacks
/// ("avx512_bf16"), for the warning that bf16 will be slower here than fp32.
std::string missing_bf16_flag();

}  // namespace rnnkit
