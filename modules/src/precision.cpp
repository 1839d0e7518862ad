#include "rnnkit/precision.h"

#include <fstream>
#include <sstream>

#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>

namespace rnnkit {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFP32;
  if (name == "bf16") return Precision::kBF16;
  if (name == "fp16") return Precision::kFP16;
  TORCH_CHECK_VALUE(false, "precision: expected fp32, bf16 or fp16, got '", name, "'");
}

std::string to_string(Precision p) {
  switch (p) {
    case Precision::kBF16:
      return "bf16";
    case Precision::kFP16:
      return "fp16";
    default:
      return "fp32";
  }
}

AutocastGuard::AutocastGuard(Precision precision, c10::DeviceType device) : device_(device) {
  const bool cpu = device == c10::DeviceType::CPU;
  TORCH_CHECK_VALUE(device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA,
                    "mixed precision: expected a CPU or CUDA device, got ", device);
  TORCH_CHECK_VALUE(!(cpu && precision == Precision::kFP16),
                    "precision fp16 is for CUDA devices only (with a gradient scaler); on a CPU "
                    "use bf16 or fp32");
  was_enabled_ = cpu ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
  was_dtype_ =
      cpu ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
  const bool on = precision != Precision::kFP32;
  const auto dtype = precision == Precision::kFP16 ? at::kHalf : at::kBFloat16;
  if (cpu) {
    at::autocast::set_cpu_enabled(on);
    if (on) at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(on);
    if (on) at::autocast::set_autocast_gpu_dtype(dtype);
  }
  // As torch.autocast's __enter__/__exit__: the cache of cast weights lives as long as the
  // outermost guard.
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  if (device_ == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(was_dtype_);
  } else {
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(was_dtype_);
  }
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

std::optional<c10::ScalarType> autocast_dtype(c10::DeviceType device) {
  if (device == c10::DeviceType::CPU) {
    if (at::autocast::is_cpu_enabled()) return at::autocast::get_autocast_cpu_dtype();
  } else if (device == c10::DeviceType::CUDA) {
    if (at::autocast::is_enabled()) return at::autocast::get_autocast_gpu_dtype();
  }
  return std::nullopt;
}

std::string missing_bf16_flag() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    for (std::string w; words >> w;) {
      if (w == "avx512_bf16" || w == "amx_bf16") return "";
    }
    return "avx512_bf16";
  }
  return "";  // no /proc/cpuinfo (not Linux, or not x86): nothing to say
}

}  // namespace rnnkit
