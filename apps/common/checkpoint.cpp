#include "checkpoint.h"

#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <rnnkit/compat.h>
#include <torch/torch.h>

namespace rnnkit::app {
namespace fs = std::filesystem;
namespace {

constexpr const char* kMagicV1 = "rnnkit-checkpoint-v1";  // no checksum; still readable
constexpr const char* kMagic = "rnnkit-checkpoint-v2";

uint32_t crc32_of(uint32_t crc, const void* data, size_t size) {
  // zlib's crc32 takes 32-bit lengths: feed large payloads in pieces.
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {
    const auto n = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = static_cast<uint32_t>(::crc32(crc, p, n));
    p += n;
    size -= n;
  }
  return crc;
}

std::string fmt_checksum_error(const std::string& path, uint32_t stored, uint32_t actual) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "checksum mismatch (stored %08x, computed %08x)", stored, actual);
  return path + ": the checkpoint is damaged: " + buf +
         "; it is refused rather than used (train again, or use the run's other checkpoint)";
}

uint32_t header_and_payload_crc(const std::string& app, const std::string& arch, const void* payload,
                                size_t size) {
  uint32_t crc = crc32_of(0, app.data(), app.size());
  crc = crc32_of(crc, "\n", 1);
  crc = crc32_of(crc, arch.data(), arch.size());
  crc = crc32_of(crc, "\n", 1);
  return crc32_of(crc, payload, size);
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

namespace {

torch::serialize::OutputArchive outer_archive(const std::string& app, const std::string& architecture,
                                              std::string& payload) {
  torch::serialize::OutputArchive outer;
  put_string(outer, "rnnkit/magic", kMagic);
  put_string(outer, "rnnkit/app", app);
  put_string(outer, "rnnkit/architecture", architecture);
  put_int(outer, "rnnkit/crc32", header_and_payload_crc(app, architecture, payload.data(), payload.size()));
  outer.write("rnnkit/payload",
              torch::from_blob(payload.data(), {static_cast<int64_t>(payload.size())}, torch::kUInt8),
              /*is_buffer=*/true);
  return outer;
}

}  // namespace

std::string checkpoint_bytes(const std::string& app, const std::string& architecture, const std::string& payload) {
  std::string copy = payload, out;
  outer_archive(app, architecture, copy).save_to([&](const void* data, size_t n) -> size_t {
    out.append(static_cast<const char*>(data), n);
    return n;
  });
  return out;
}

void write_checkpoint(const std::string& path, const std::string& app,
                      const std::string& architecture, torch::serialize::OutputArchive& inner) {
  std::string payload;
  inner.save_to([&](const void* data, size_t n) -> size_t {
    payload.append(static_cast<const char*>(data), n);
    return n;
  });
  auto outer = outer_archive(app, architecture, payload);
  const std::string tmp = unique_temp_path(path);
  errno = 0;
  try {
    outer.save_to(tmp);
  } catch (const c10::Error& e) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw IoError("cannot write the checkpoint " + tmp + ": " +
                  (err ? std::strerror(err) : e.what_without_backtrace()));
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

torch::serialize::InputArchive open_checkpoint(const std::string& path, const std::string& app,
                                               const std::string& architecture,
                                               std::optional<torch::Device> device) {
  if (fs::is_directory(path)) throw CheckpointError(path + ": a directory, not a checkpoint file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot open the checkpoint: " + std::strerror(errno));
  const std::string bytes{std::istreambuf_iterator<char>(in), {}};
  if (in.bad()) throw CheckpointError(path + ": cannot read the checkpoint: " + std::strerror(errno));
  return open_checkpoint_bytes(bytes, path, app, architecture, device);
}

torch::serialize::InputArchive open_checkpoint_bytes(const std::string& bytes, const std::string& path,
                                                     const std::string& app, const std::string& architecture,
                                                     std::optional<torch::Device> device) {
  if (bytes.size() < 4 || bytes.compare(0, 4, std::string("PK\x03\x04", 4)) != 0) {
    throw CheckpointError(path + ": not an rnnkit checkpoint (not a torch archive at all)");
  }
  const rnnkit::optional<torch::Device> map_to =
      device ? rnnkit::optional<torch::Device>(*device) : rnnkit::nullopt;
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data(), bytes.size(), map_to);
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
  if (magic != kMagic && magic != kMagicV1) {
    throw CheckpointError(path + ": unknown checkpoint version '" + magic + "'");
  }
  const std::string their_app = get_string(archive, "rnnkit/app");
  if (their_app != app) {
    throw CheckpointError(path + ": a checkpoint of rnnkit-" + their_app + ", not of rnnkit-" + app);
  }
  const std::string arch = get_string(archive, "rnnkit/architecture");
  if (!architecture.empty() && arch != architecture) {
    throw CheckpointError(path + ": the checkpoint's model differs from the config's\n  checkpoint: " +
                          arch + "\n  config:     " + architecture);
  }
  if (magic == kMagicV1) {
    std::cerr << "warning: " << path
              << " was written by an rnnkit without checksums; its tensors cannot be verified\n";
    return archive;
  }
  torch::Tensor payload;
  if (!archive.try_read("rnnkit/payload", payload, true)) {
    throw CheckpointError(path + ": the checkpoint lacks its payload");
  }
  payload = payload.to(torch::kCPU).contiguous();
  const auto* data = static_cast<const char*>(payload.data_ptr());
  const auto size = static_cast<size_t>(payload.numel());
  const auto stored = static_cast<uint32_t>(get_int(archive, "rnnkit/crc32"));
  const uint32_t actual = header_and_payload_crc(their_app, arch, data, size);
  if (stored != actual) {
    throw CheckpointError(fmt_checksum_error(path, stored, actual));
  }
  torch::serialize::InputArchive inner;
  try {
    inner.load_from(data, size, map_to);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": the checkpoint's payload is corrupt (" + e.what_without_backtrace() + ")");
  }
  return inner;
}

void check_finite(const torch::nn::Module& model, const std::string& path) {
  torch::NoGradGuard no_grad;
  auto check = [&](const std::string& name, const torch::Tensor& t) {
    if (t.defined() && t.is_floating_point() && !torch::isfinite(t).all().item<bool>()) {
      throw CheckpointError(path + ": " + name +
                            " holds NaN or infinite values; the checkpoint is damaged or comes from a "
                            "run that diverged");
    }
  };
  for (const auto& p : model.named_parameters()) check("parameter " + p.key(), p.value());
  for (const auto& b : model.named_buffers()) check("buffer " + b.key(), b.value());
}

SavedRun open_saved_run(const std::string& path, const std::string& app) {
  auto a = open_checkpoint(path, app, "");
  SavedRun run{ConfigReader::from_string(get_string(a, "config"), path + "#config"), {}, {}};
  a.read("model", run.model);
  a.read("task", run.task);
  return run;
}

}  // namespace rnnkit::app
