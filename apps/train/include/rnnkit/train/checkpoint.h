#pragma once
// Checkpoints: torch archives written atomically (unique temp file, fsync, rename), tagged
// with the app and the architecture, and checked on load so that a truncated file, a foreign
// file, a damaged file or a checkpoint of another model is refused with a message that says
// which.
//
// Layout (version 3): a 24-byte header (magic "RNNKITCK", the version, the CRC-32 and the length
// of what follows), then a torch archive with everything fill() wrote plus the app and the
// architecture. The header is checked before LibTorch parses anything: LibTorch's zip reader
// does not check its own CRCs (a flipped byte inside a weight loaded silently), and its
// unpickler trusts the lengths it reads (a damaged length made it allocate gigabytes: found by
// fuzz_checkpoint). A checkpoint that passes the check is one rnnkit wrote; a crafted file with a
// valid CRC reaches LibTorch's unpickler, which, like torch.load, is not meant for untrusted files.
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include <torch/nn/module.h>
#include <torch/serialize/archive.h>

#include "config.h"
#include "system.h"

namespace rnnkit::train {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The bytes of a checkpoint file holding `archive` (a serialized torch archive): the header
/// with the CRC-32 and length, then the archive, as write_checkpoint writes them.
std::string checkpoint_bytes(const std::string& archive);

/// Writes `fill`'s archive to `path` atomically, adding the identifying header and checksum.
void write_checkpoint(const std::string& path, const std::string& app,
                      const std::string& architecture,
                      const std::function<void(torch::serialize::OutputArchive&)>& fill);
void write_checkpoint(const std::string& path, const std::string& app,
                      const std::string& architecture, torch::serialize::OutputArchive& archive);

/// Opens `path`, checks the header and the checksum; `app` empty takes a checkpoint of any app
/// (its "rnnkit/app" string says which), `architecture` empty skips the architecture check. Tensors
/// are mapped to `device` (default: the CPU, so that a checkpoint written on a GPU loads on a
/// CPU-only build); nullopt keeps the devices they were saved on.
torch::serialize::InputArchive open_checkpoint(
    const std::string& path, const std::string& app, const std::string& architecture,
    std::optional<torch::Device> device = torch::Device(torch::kCPU));

/// A checkpoint file's bytes, refusing what is not a regular file and a header whose length
/// disagrees with the file's size before reading past the header.
std::string read_checkpoint_file(const std::string& path);

/// The same from the file's bytes (`path` names it in messages): a data-parallel resume reads
/// the file on rank 0 and sends the bytes to the others.
torch::serialize::InputArchive open_checkpoint_bytes(
    const std::string& bytes, const std::string& path, const std::string& app,
    const std::string& architecture,
    std::optional<torch::Device> device = torch::Device(torch::kCPU));

/// Refuses (CheckpointError naming `path` and the tensor) parameters and buffers holding NaN or
/// infinity: a model loaded from `path` that could only produce garbage.
void check_finite(const torch::nn::Module& model, const std::string& path);

/// What a checkpoint written by fit() holds for an app that loads it to evaluate or predict: the
/// config it was trained with, the model's weights and the task's state (its vocabularies).
struct SavedRun {
  ConfigReader config;
  torch::serialize::InputArchive model, task;
};
SavedRun open_saved_run(const std::string& path, const std::string& app);

/// model.load(archive), after checking that every tensor in the archive has the shape of the
/// parameter or buffer it loads into: a CheckpointError naming `path` and the parameter (with
/// both shapes) otherwise, instead of a model that takes any shape it is given.
void load_weights(torch::nn::Module& model, torch::serialize::InputArchive& archive,
                  const std::string& path);

/// Strings and scalars inside archives.
void put_string(torch::serialize::OutputArchive& a, const std::string& key, const std::string& s);
std::string get_string(torch::serialize::InputArchive& a, const std::string& key);
void put_int(torch::serialize::OutputArchive& a, const std::string& key, int64_t v);
int64_t get_int(torch::serialize::InputArchive& a, const std::string& key);
void put_double(torch::serialize::OutputArchive& a, const std::string& key, double v);
double get_double(torch::serialize::InputArchive& a, const std::string& key);

}  // namespace rnnkit::train
