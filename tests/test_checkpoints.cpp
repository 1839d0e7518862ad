// Checkpoints that cannot be trusted are refused before LibTorch reads them: damaged or
// non-finite ones, a damaged length, shapes that disagree with the config, n-gram models
// without their checksum.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <rnnkit/data/conll.h>
#include <rnnkit/data/embeddings.h>
#include <rnnkit/data/text.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/classification.h>
#include <rnnkit/train/config.h>
#include <rnnkit/train/log.h>
#include <rnnkit/train/signals.h>
#include <rnnkit/train/system.h>
#include <rnnkit/train/train.h>
#include "lm/lm.h"
#include "lm/ngram.h"
#include "ner/ner.h"
#include "sentiment/sentiment.h"
#include "test_train_util.h"

using namespace rnnkit;
namespace fs = std::filesystem;
using rnnkit_test::expect_message;
using rnnkit_test::quiet_run;
using rnnkit_test::read_all;
using rnnkit_test::temp_dir;
using rnnkit_test::tiny_lm_config;
using rnnkit_test::write_file;

TEST(Checkpoint, DamagedAndNonFiniteCheckpointsAreRefused) {
  const auto dir = temp_dir("damaged");
  train::ConfigReader c(tiny_lm_config(dir));
  lm::train(c, rnnkit_test::quiet_run(dir + "/run"));
  const std::string good = read_all(dir + "/run/best.pt");
  // 64 flipped bytes in the middle of the file, which is the weights' payload.
  std::string bad = good;
  for (size_t i = bad.size() / 2; i < bad.size() / 2 + 64; ++i) bad[i] = static_cast<char>(~bad[i]);
  const auto flipped = write_file(dir, "flipped.pt", bad);
  expect_message<train::CheckpointError>([&] { lm::load_model(flipped, torch::kCPU); },
                                         {"flipped.pt", "damaged", "checksum mismatch"});
  // A checkpoint that is intact but holds NaN weights (a diverged run saved by other means).
  auto m = lm::load_model(dir + "/run/best.pt", torch::kCPU);
  {
    torch::NoGradGuard no_grad;
    m.model->parameters()[1].fill_(NAN);
  }
  auto saved = train::open_saved_run(dir + "/run/best.pt", "lm");
  const auto nan_path = (fs::path(dir) / "nan.pt").string();
  train::write_checkpoint(nan_path, "lm", "", [&](torch::serialize::OutputArchive& a) {
    torch::serialize::OutputArchive model, task;
    m.model->save(model);
    train::put_string(task, "vocab", train::get_string(saved.task, "vocab"));
    a.write("model", model);
    a.write("task", task);
    train::put_string(a, "config", saved.config.resolved());
  });
  expect_message<train::CheckpointError>([&] { lm::load_model(nan_path, torch::kCPU); },
                                         {"nan.pt", "NaN or infinite values"});
  // A folder given as the checkpoint (a run dir instead of its best.pt).
  expect_message<train::CheckpointError>([&] { lm::load_model(dir, torch::kCPU); },
                                         {dir, "a directory, not a checkpoint file"});
}

TEST(Checkpoint, ADamagedLengthNeverReachesLibTorch) {
  // fuzz_checkpoint: a mutated length inside the archive's pickle made LibTorch's unpickler
  // allocate gigabytes before anything was checked. The header's CRC now covers the whole archive
  // and is checked first, whatever byte is damaged.
  const auto dir = temp_dir("header");
  const auto path = (fs::path(dir) / "c.pt").string();
  train::write_checkpoint(path, "lm", "a",
                          [](torch::serialize::OutputArchive& a) { train::put_int(a, "x", 1); });
  const std::string good = read_all(path);
  ASSERT_EQ(good.substr(0, 8), "RNNKITCK");
  for (size_t at :
       {size_t{30}, good.size() / 3, good.size() - 30}) {  // zip header, middle, central directory
    std::string bad = good;
    bad[at] = static_cast<char>(bad[at] ^ 0x40);
    const auto p = write_file(dir, "bad.pt", bad);
    expect_message<train::CheckpointError>([&] { train::open_checkpoint(p, "lm", ""); },
                                           {"checksum mismatch"});
  }
  std::string longer = good + "tail";
  expect_message<train::CheckpointError>(
      [&] { train::open_checkpoint(write_file(dir, "long.pt", longer), "lm", ""); },
      {"longer than it says"});
}

TEST(Checkpoint, ACheckpointWhoseConfigDisagreesWithItsTensorsIsRefused) {
  const auto dir = temp_dir("shapes");
  const auto config = tiny_lm_config(dir);
  train::ConfigReader c(config);
  lm::train(c, rnnkit_test::quiet_run(dir + "/run"));
  // Rewrite the checkpoint's config (with a valid checksum, as an attacker would) to another
  // hidden size.
  auto a = train::open_checkpoint(dir + "/run/best.pt", "lm", "");
  torch::serialize::InputArchive model, task;
  a.read("model", model);
  a.read("task", task);
  std::string text = train::get_string(a, "config");
  text.replace(text.find("hidden_size = 16"), 16, "hidden_size = 12");
  train::write_checkpoint(dir + "/edited.pt", "lm", "", [&](torch::serialize::OutputArchive& out) {
    train::put_string(out, "config", text);
    auto m = lm::load_model(dir + "/run/best.pt", torch::kCPU);
    torch::serialize::OutputArchive mo, to;
    m.model->save(mo);
    train::put_string(to, "vocab", m.vocab.to_string());
    out.write("model", mo);
    out.write("task", to);
  });
  expect_message<train::CheckpointError>([&] { lm::load_model(dir + "/edited.pt", torch::kCPU); },
                                         {"edited.pt: parameter ",
                                          "in the checkpoint, but the model "
                                          "its config describes has",
                                          "12"});
}

TEST(Checkpoint, NGramModelsCarryAChecksum) {
  const auto dir = temp_dir("ngramcrc");
  const std::vector<std::string> words{"a", "b", "a", "c", "<eos>", "a", "b"};
  lm::NGramModel m(3, lm::Smoothing::kKneserNey, 0, data::Vocab::build(words));
  m.train(lm::encode_stream(m.vocab(), words));
  const std::string path = dir + "/m.ngram";
  m.save(path);
  const std::string good = read_all(path);
  EXPECT_EQ(good.rfind("#rnnkit-ngram v2 ", 0), 0u);
  EXPECT_NO_THROW(lm::NGramModel::load(path));
  // A count multiplied by 1000: the body's CRC no longer matches.
  std::string edited = good;
  const auto last = edited.rfind(" 1\n");
  ASSERT_NE(last, std::string::npos);
  edited.replace(last, 3, " 1000\n");
  const auto body = edited.substr(edited.find('\n') + 1);
  // Same length claim, other bytes: the length check or the checksum refuses it.
  expect_message<data::DataError>(
      [&] { lm::NGramModel::load(write_file(dir, "edited.ngram", edited)); }, {"edited.ngram"});
  const auto header_len = good.find('\n') + 1;
  std::string same_length = good;
  char& digit = same_length[same_length.size() - 2];  // the last count's last digit
  digit = digit == '7' ? '8' : '7';
  expect_message<data::DataError>(
      [&] { lm::NGramModel::load(write_file(dir, "flip.ngram", same_length)); },
      {"flip.ngram", "checksum mismatch"});
  (void)header_len;
  // A body with a valid header but an absurd count of 1-grams: refused, not reserved.
  std::string absurd = good.substr(header_len);
  const size_t first_eol = absurd.find('\n');
  const size_t vocab_bytes = std::stoul(absurd.substr(absurd.rfind(' ', first_eol) + 1));
  const size_t count_at = first_eol + 1 + vocab_bytes;
  absurd.replace(count_at, absurd.find('\n', count_at) - count_at, "99999999999999");
  expect_message<data::DataError>(
      [&] { lm::NGramModel::from_bytes(lm::NGramModel::with_header(absurd), "absurd.ngram"); },
      {"absurd.ngram", "more than the file can hold"});
  // rnnkit 0.1's format has no checksum: refused, saying how to get a checked one.
  expect_message<data::DataError>(
      [&] {
        lm::NGramModel::load(write_file(dir, "v1.ngram", "#rnnkit-ngram v1\n3 kn 0 word 0\n"));
      },
      {"v1.ngram:1", "without a checksum", "build it again"});
  (void)body;
}
