#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/crc32.h>

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <rnnkit/compat.h>
#include <torch/torch.h>

namespace rnnkit::train {
namespace fs = std::filesystem;
uint32_t crc32_of(const void* data, size_t size, uint32_t crc_in) {
  uLong crc = crc_in;
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {
    const auto n = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = ::crc32(crc, p, n);
    p += n;
    size -= n;
  }
  return static_cast<uint32_t>(crc);
}

namespace {

// Version 3: a 24-byte header, then a torch archive. The header is checked before LibTorch
// parses a byte: the archive's own zip CRCs go unchecked by LibTorch's reader, and its unpickler
// trusts the lengths it reads, so a damaged file could make it allocate gigabytes.
//   bytes 0-7    "RNNKITCK"
//   bytes 8-11   format version, little-endian (3)
//   bytes 12-15  CRC-32 (zlib) of the archive
//   bytes 16-23  the archive's length in bytes, little-endian
constexpr char kFileMagic[8] = {'R', 'N', 'N', 'K', 'I', 'T', 'C', 'K'};
constexpr uint32_t kVersion = 3;
constexpr size_t kHeaderSize = 24;
// Version 1 (rnnkit 0.1): a bare torch archive holding this string, without a checksum.
constexpr const char* kMagicV1 = "rnnkit-checkpoint-v1";
constexpr const char* kMagicInArchive = "rnnkit-checkpoint-v3";

std::string fmt_checksum_error(const std::string& path, uint32_t stored, uint32_t actual) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "checksum mismatch (stored %08x, computed %08x)", stored, actual);
  return path + ": the checkpoint is damaged: " + buf +
         "; it is refused rather than used (train again, or use the run's other checkpoint)";
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint64_t get_le(const std::string& in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

}  // namespace

void put_string(torch::serialize::OutputArchive& a, const std::string& key, const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  if (!s.empty()) std::memcpy(t.data_ptr(), s.data(), s.size());
  a.write(key, t, /*is_buffer=*/true);
}

std::string get_string(torch::serialize::InputArchive& a, const std::string& key) {
  torch::Tensor t;
  if (!a.try_read(key, t, true)) throw CheckpointError("the checkpoint lacks '" + key + "'");
  t = t.to(torch::kCPU).contiguous();
  return std::string(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()));
}

void put_int(torch::serialize::OutputArchive& a, const std::string& key, int64_t v) {
  a.write(key, torch::tensor({v}, torch::kLong), true);
}

int64_t get_int(torch::serialize::InputArchive& a, const std::string& key) {
  torch::Tensor t;
  if (!a.try_read(key, t, true)) throw CheckpointError("the checkpoint lacks '" + key + "'");
  return t.item<int64_t>();
}

void put_double(torch::serialize::OutputArchive& a, const std::string& key, double v) {
  a.write(key, torch::tensor({v}, torch::kDouble), true);
}

double get_double(torch::serialize::InputArchive& a, const std::string& key) {
  torch::Tensor t;
  if (!a.try_read(key, t, true)) throw CheckpointError("the checkpoint lacks '" + key + "'");
  return t.item<double>();
}

std::string checkpoint_bytes(const std::string& archive) {
  std::string out(kFileMagic, sizeof(kFileMagic));
  put_le(out, kVersion, 4);
  put_le(out, crc32_of(archive.data(), archive.size()), 4);
  put_le(out, archive.size(), 8);
  return out + archive;
}

void write_checkpoint(const std::string& path, const std::string& app,
                      const std::string& architecture, torch::serialize::OutputArchive& archive) {
  put_string(archive, "rnnkit/magic", kMagicInArchive);
  put_string(archive, "rnnkit/app", app);
  put_string(archive, "rnnkit/architecture", architecture);
  std::string bytes;
  archive.save_to([&](const void* data, size_t n) -> size_t {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  bytes = checkpoint_bytes(bytes);
  const std::string tmp = unique_temp_path(path);
  try {
    OutputFile out(tmp);
    out.stream().write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  commit_file(tmp, path);
}

void write_checkpoint(const std::string& path, const std::string& app,
                      const std::string& architecture,
                      const std::function<void(torch::serialize::OutputArchive&)>& fill) {
  torch::serialize::OutputArchive inner;
  fill(inner);
  write_checkpoint(path, app, architecture, inner);
}

std::string read_checkpoint_file(const std::string& path) {
  // A checkpoint is a regular file whose header states its length: a FIFO (which would block),
  // a device (/dev/zero never ends) or a file longer than its header says is refused before
  // more than the header is read.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw CheckpointError(path + ": cannot open the checkpoint: " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) throw CheckpointError(path + ": a directory, not a checkpoint file");
  if (!S_ISREG(st.st_mode)) {
    throw CheckpointError(path +
                          ": not a regular file (a pipe, a device or a socket); a "
                          "checkpoint is a file that train wrote");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot open the checkpoint: " + std::strerror(errno));
  const auto size = static_cast<uint64_t>(st.st_size);
  std::string bytes(static_cast<size_t>(std::min<uint64_t>(size, kHeaderSize)), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<size_t>(in.gcount()) != bytes.size())
    throw CheckpointError(path + ": cannot read the checkpoint: " + std::strerror(errno));
  const bool v3 = bytes.size() == kHeaderSize &&
                  bytes.compare(0, sizeof(kFileMagic), kFileMagic, sizeof(kFileMagic)) == 0;
  if (v3 && get_le(bytes, 16, 8) != size - kHeaderSize) {
    const uint64_t length = get_le(bytes, 16, 8);
    throw CheckpointError(
        path + ": the checkpoint is " +
        (length > size - kHeaderSize ? std::string("truncated") : "longer than it says") + " (" +
        std::to_string(size - kHeaderSize) + " bytes after the header, " + std::to_string(length) +
        " expected)");
  }
  bytes.resize(static_cast<size_t>(size));
  in.read(bytes.data() + kHeaderSize * (size >= kHeaderSize),
          static_cast<std::streamsize>(size - std::min<uint64_t>(size, kHeaderSize)));
  if (in.bad() ||
      static_cast<uint64_t>(in.gcount()) + std::min<uint64_t>(size, kHeaderSize) != size)
    throw CheckpointError(path + ": cannot read the checkpoint (it changed while it was read, or " +
                          std::strerror(errno) + ")");
  return bytes;
}

torch::serialize::InputArchive open_checkpoint(const std::string& path, const std::string& app,
                                               const std::string& architecture,
                                               std::optional<torch::Device> device) {
  return open_checkpoint_bytes(read_checkpoint_file(path), path, app, architecture, device);
}

torch::serialize::InputArchive open_checkpoint_bytes(const std::string& bytes,
                                                     const std::string& path,
                                                     const std::string& app,
                                                     const std::string& architecture,
                                                     std::optional<torch::Device> device) {
  const rnnkit::optional<torch::Device> map_to =
      device ? rnnkit::optional<torch::Device>(*device) : rnnkit::nullopt;
  const bool v3 = bytes.size() >= sizeof(kFileMagic) &&
                  bytes.compare(0, sizeof(kFileMagic), kFileMagic, sizeof(kFileMagic)) == 0;
  const bool zip = bytes.size() >= 4 && bytes.compare(0, 4, std::string("PK\x03\x04", 4)) == 0;
  if (!v3 && !zip)
    throw CheckpointError(path +
                          ": not an rnnkit checkpoint (neither its header nor a torch archive)");
  if (!v3 && std::getenv("RNNKIT_ALLOW_UNVERIFIED_CHECKPOINTS") == nullptr) {
    // rnnkit 0.1's checkpoints (and any bare torch archive) carry no checksum: a damaged one
    // cannot be told from a good one before LibTorch parses it.
    throw CheckpointError(
        path +
        ": a checkpoint without a checksum (rnnkit 0.1's format, or not rnnkit's); "
        "it cannot be verified, so it is refused. To load an old checkpoint you trust, set "
        "RNNKIT_ALLOW_UNVERIFIED_CHECKPOINTS=1 (a run resumed from it writes the new format)");
  }
  size_t offset = 0;
  if (v3) {
    if (bytes.size() < kHeaderSize) {
      throw CheckpointError(path + ": the checkpoint is truncated (" +
                            std::to_string(bytes.size()) + " bytes, shorter than its header)");
    }
    const auto version = get_le(bytes, 8, 4);
    if (version != kVersion) {
      throw CheckpointError(path + ": checkpoint format version " + std::to_string(version) +
                            ", this rnnkit reads " + std::to_string(kVersion));
    }
    const auto stored = static_cast<uint32_t>(get_le(bytes, 12, 4));
    const uint64_t length = get_le(bytes, 16, 8);
    if (length != bytes.size() - kHeaderSize) {
      throw CheckpointError(
          path + ": the checkpoint is " +
          (length > bytes.size() - kHeaderSize ? std::string("truncated") : "longer than it says") +
          " (" + std::to_string(bytes.size() - kHeaderSize) + " bytes after the header, " +
          std::to_string(length) + " expected)");
    }
    const uint32_t actual = crc32_of(bytes.data() + kHeaderSize, static_cast<size_t>(length));
    if (stored != actual) throw CheckpointError(fmt_checksum_error(path, stored, actual));
    offset = kHeaderSize;
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data() + offset, bytes.size() - offset, map_to);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": the checkpoint is truncated or corrupt (" +
                          e.what_without_backtrace() + ")");
  }
  std::string magic;
  try {
    magic = get_string(archive, "rnnkit/magic");
  } catch (const std::exception&) {
    throw CheckpointError(path + ": a torch archive, but not an rnnkit checkpoint");
  }
  if (magic != (v3 ? kMagicInArchive : kMagicV1)) {
    throw CheckpointError(path + ": unknown checkpoint version '" + magic + "'");
  }
  const std::string their_app = get_string(archive, "rnnkit/app");
  if (!app.empty() && their_app != app) {  // empty: any app (rnnkit-serve finds out which)
    throw CheckpointError(path + ": a checkpoint of rnnkit-" + their_app + ", not of rnnkit-" +
                          app);
  }
  const std::string arch = get_string(archive, "rnnkit/architecture");
  if (!architecture.empty() && arch != architecture) {
    throw CheckpointError(
        path + ": the checkpoint's model differs from the config's\n  checkpoint: " + arch +
        "\n  config:     " + architecture);
  }
  if (!v3) {
    std::cerr << "warning: " << path
              << " was written by an rnnkit without checksums; its tensors cannot be verified\n";
  }
  return archive;
}

void check_finite(const torch::nn::Module& model, const std::string& path) {
  torch::NoGradGuard no_grad;
  auto check = [&](const std::string& name, const torch::Tensor& t) {
    if (t.defined() && t.is_floating_point() && !torch::isfinite(t).all().item<bool>()) {
      throw CheckpointError(
          path + ": " + name +
          " holds NaN or infinite values; the checkpoint is damaged or comes from a "
          "run that diverged");
    }
  };
  for (const auto& p : model.named_parameters()) check("parameter " + p.key(), p.value());
  for (const auto& b : model.named_buffers()) check("buffer " + b.key(), b.value());
}

namespace {
std::string shape_text(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

/// Module::load copies whatever shape a tensor has into the parameter (Tensor::set_): a config
/// edited to another size would load and then fail (or worse) later. Compare first.
void check_shapes(const torch::nn::Module& m, torch::serialize::InputArchive& a,
                  const std::string& prefix, const std::string& path) {
  auto check = [&](const std::string& name, const torch::Tensor& want, bool buffer) {
    torch::Tensor got;
    if (!want.defined() || !a.try_read(name, got, buffer)) return;
    if (got.sizes() != want.sizes()) {
      throw CheckpointError(
          path + ": " + (buffer ? "buffer " : "parameter ") + prefix + name + " is " +
          shape_text(got.sizes()) + " in the checkpoint, but the model its config describes has " +
          shape_text(want.sizes()) +
          "; the config and the weights disagree (an edited checkpoint?), so it is refused");
    }
  };
  for (const auto& p : m.named_parameters(/*recurse=*/false)) check(p.key(), p.value(), false);
  for (const auto& b : m.named_buffers(/*recurse=*/false)) check(b.key(), b.value(), true);
  for (const auto& c : m.named_children()) {
    torch::serialize::InputArchive sub;
    if (a.try_read(c.key(), sub)) check_shapes(*c.value(), sub, prefix + c.key() + ".", path);
  }
}
}  // namespace

void load_weights(torch::nn::Module& model, torch::serialize::InputArchive& archive,
                  const std::string& path) {
  check_shapes(model, archive, "", path);
  try {
    model.load(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError(path +
                          ": the checkpoint's weights do not fit the model its config "
                          "describes (" +
                          e.what_without_backtrace() + ")");
  }
}

}  // namespace rnnkit::train
