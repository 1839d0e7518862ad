#pragma once
// Checkpoints: torch archives written atomically (temp file, fsync, rename), tagged with the
// app and the architecture, and checked on load so that a truncated file, a foreign file or a
// checkpoint of another model is refused with a message that says which.
#include <functional>
#include <stdexcept>
#include <string>

#include <torch/serialize/archive.h>

#include "config.h"

namespace rnnkit::app {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Writes `fill`'s archive to `path` atomically, adding the identifying header.
void write_checkpoint(const std::string& path, const std::string& app,
                      const std::string& architecture,
                      const std::function<void(torch::serialize::OutputArchive&)>& fill);

/// Opens `path` and checks the header; `architecture` empty skips the architecture check.
torch::serialize::InputArchive open_checkpoint(const std::string& path, const std::string& app,
                                               const std::string& architecture);

/// What a checkpoint written by fit() holds for an app that loads it to evaluate or predict: the
/// config it was trained with, the model's weights and the task's state (its vocabularies).
struct SavedRun {
  ConfigReader config;
  torch::serialize::InputArchive model, task;
};
SavedRun open_saved_run(const std::string& path, const std::string& app);

/// Strings and scalars inside archives.
void put_string(torch::serialize::OutputArchive& a, const std::string& key, const std::string& s);
std::string get_string(torch::serialize::InputArchive& a, const std::string& key);
void put_int(torch::serialize::OutputArchive& a, const std::string& key, int64_t v);
int64_t get_int(torch::serialize::InputArchive& a, const std::string& key);
void put_double(torch::serialize::OutputArchive& a, const std::string& key, double v);
double get_double(torch::serialize::InputArchive& a, const std::string& key);

/// Writes a small text file atomically.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace rnnkit::app
