#pragma once
// What differs between the LibTorch builds rnnkit compiles against: Debian's 1.13 (CPU) and the
// 2.x releases from pytorch.org (CPU or CUDA). Code elsewhere uses these names and never tests
// TORCH_VERSION itself.
//   - optional: c10::optional is its own class in 1.13 and an alias of std::optional in 2.x;
//     rnnkit::optional is whichever c10 has, so TORCH_ARG fields match torch's own options.
//   - cuda_generator(): CUDAHooksInterface::getDefaultCUDAGenerator is gone in recent 2.x; the
//     context's defaultGenerator(device) exists in both.
//   - CommBackend: ProcessGroupGloo/NCCL derive from c10d::ProcessGroup in 1.13 and from
//     c10d::Backend in 2.x; both offer the collectives rnnkit calls.
#include <ATen/Context.h>
#include <c10/util/Optional.h>
#include <torch/version.h>

#define RNNKIT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||         \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace rnnkit {

template <class T>
using optional = c10::optional<T>;
using c10::nullopt;

/// The default random generator of CUDA device `index` (its state is saved in checkpoints).
inline at::Generator cuda_generator(c10::DeviceIndex index) {
  return at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CUDA, index));
}

#if RNNKIT_TORCH_AT_LEAST(2, 0)
using CommBackend = c10d::Backend;
#else
using CommBackend = c10d::ProcessGroup;
#endif

/// "1.13.0": the LibTorch rnnkit was compiled against.
inline const char* torch_version() { return TORCH_VERSION; }

}  // namespace rnnkit
