#pragma once
// CRC-32 (zlib's) of any size: checkpoints, n-gram models and the data files ranks compare.
#include <cstddef>
#include <cstdint>

namespace rnnkit::train {

/// The CRC-32 of `size` bytes at `data`, continuing `crc` (0 to start), fed to zlib in pieces
/// under its 32-bit length limit.
uint32_t crc32_of(const void* data, size_t size, uint32_t crc = 0);

}  // namespace rnnkit::train
