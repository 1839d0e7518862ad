#include "checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <torch/torch.h>

namespace rnnkit::app {
namespace fs = std::filesystem;
namespace {

constexpr const char* kMagic = "rnnkit-checkpoint-v1";

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void commit(const std::string& tmp, const std::string& path) {
  fsync_path(tmp, false);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw CheckpointError("cannot rename " + tmp + " to " + path);
  }
  const auto dir = fs::absolute(path).parent_path().string();
  fsync_path(dir, true);
}

}  // namespace

void put_string(torch::serialize::OutputArchive& a, const std::string& key, const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), s.data(), s.size());
  a.write(key, t, /*is_buffer=*/true);
}

std::string get_string(torch::serialize::InputArchive& a, const std::string& key) {
  torch::Tensor t;
  if (!a.try_read(key, t, true)) throw CheckpointError("the checkpoint lacks '" + key + "'");
  t = t.contiguous();
  return std::string(static_cast<const char*>(t.data_ptr()), t.numel());
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

void write_checkpoint(const std::string& path, const std::string& app,
                      const std::string& architecture,
                      const std::function<void(torch::serialize::OutputArchive&)>& fill) {
  torch::serialize::OutputArchive archive;
  put_string(archive, "rnnkit/magic", kMagic);
  put_string(archive, "rnnkit/app", app);
  put_string(archive, "rnnkit/architecture", architecture);
  fill(archive);
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  commit(tmp, path);
}

torch::serialize::InputArchive open_checkpoint(const std::string& path, const std::string& app,
                                               const std::string& architecture) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot open the checkpoint");
  char head[4] = {};
  in.read(head, 4);
  if (in.gcount() < 4 || std::string(head, 4) != std::string("PK\x03\x04", 4)) {
    throw CheckpointError(path + ": not an rnnkit checkpoint (not a torch archive at all)");
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
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
  if (magic != kMagic) throw CheckpointError(path + ": unknown checkpoint version '" + magic + "'");
  const std::string their_app = get_string(archive, "rnnkit/app");
  if (their_app != app) {
    throw CheckpointError(path + ": a checkpoint of rnnkit-" + their_app + ", not of rnnkit-" + app);
  }
  const std::string arch = get_string(archive, "rnnkit/architecture");
  if (!architecture.empty() && arch != architecture) {
    throw CheckpointError(path + ": the checkpoint's model differs from the config's\n  checkpoint: " +
                          arch + "\n  config:     " + architecture);
  }
  return archive;
}

SavedRun open_saved_run(const std::string& path, const std::string& app) {
  auto a = open_checkpoint(path, app, "");
  SavedRun run{ConfigReader::from_string(get_string(a, "config"), path + "#config"), {}, {}};
  a.read("model", run.model);
  a.read("task", run.task);
  return run;
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out) throw CheckpointError("cannot write " + tmp);
  }
  commit(tmp, path);
}

}  // namespace rnnkit::app
