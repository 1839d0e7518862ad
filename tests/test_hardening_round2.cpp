// Hardening, round two (issue 29), the library side: no symlink is written through, no line or
// file grows memory without bound, what is not a regular file is refused, sizes have ranges, a
// run that trained nothing reports nothing, a resumed run keeps its config, a checkpoint's shapes
// must match its config, and n-gram models carry a checksum. The command line side is in
// tests/cli_hardening.sh, plugins in tests/test_plugin.cpp and tests/cli_plugin.sh.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <rnnkit/data/conll.h>
#include <rnnkit/data/embeddings.h>
#include <rnnkit/data/text.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/classification.h>
#include <rnnkit/train/config.h>
#include <rnnkit/train/log.h>
#include <rnnkit/train/system.h>
#include <rnnkit/train/train.h>
#include "lm/lm.h"
#include "lm/ngram.h"
#include "test_train_util.h"

using namespace rnnkit;
namespace fs = std::filesystem;
using rnnkit_test::expect_message;
using rnnkit_test::read_all;
using rnnkit_test::temp_dir;
using rnnkit_test::write_file;

namespace {

std::string tiny_lm(const std::string& dir) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the cat sat on the mat " + std::to_string(i % 5) + "\n";
  write_file(dir, "train.txt", text);
  write_file(dir, "valid.txt", text.substr(0, 300));
  return write_file(dir, "lm.toml",
                    "[data]\nlevel = \"char\"\ntrain = \"train.txt\"\nvalid = \"valid.txt\"\n"
                    "bptt = 8\n[model]\ncell = \"lstm\"\nembedding_size = 8\nhidden_size = 16\n"
                    "[train]\nepochs = 1\nbatch_size = 4\nlearning_rate = 0.01\nseed = 3\n");
}

/// A task whose data makes no batch at all.
class NoBatchTask : public train::Task {
 public:
  torch::nn::Module& model() override { return *lin_; }
  std::string app_name() const override { return "fake"; }
  std::string architecture() const override { return "linear"; }
  int64_t begin_epoch(int64_t) override { return 0; }
  train::BatchLoss train_batch(int64_t) override { return {}; }
  train::Metrics evaluate() override {
    ++evaluations;
    train::Metrics m;
    m.values = {{"val_loss", 1.0}};
    m.main = "val_loss";
    return m;
  }
  int evaluations = 0;

 private:
  torch::nn::Linear lin_{torch::nn::Linear(2, 1)};
};

TEST(HardeningRound2, TheLockTheLogAndMetricsAreNeverWrittenThroughASymlink) {
  const auto dir = temp_dir("symlinks");
  const auto victim = write_file(dir, "victim.txt", "precious\n");
  fs::create_directories(dir + "/run");
  fs::create_symlink(victim, dir + "/run/.lock");
  expect_message<train::IoError>([&] { train::RunDirLock lock(dir + "/run"); },
                                 {dir + "/run/.lock", "is a symbolic link", "remove it"});
  fs::create_symlink(victim, dir + "/run/train.log");
  expect_message<train::IoError>([&] { train::TrainLog log(dir + "/run/train.log", true, "x"); },
                                 {"train.log: the training log is a symbolic link"});
  fs::create_symlink(victim, dir + "/run/metrics.csv");
  expect_message<train::IoError>([&] { train::OutputFile f(dir + "/run/metrics.csv", true); },
                                 {"metrics.csv: is a symbolic link"});
  EXPECT_EQ(read_all(victim), "precious\n") << "a link's target was written";
}

TEST(HardeningRound2, ALineLongerThanTheLimitIsRefusedWithoutReadingItWhole) {
  const auto dir = temp_dir("longline");
  const auto path = write_file(dir, "long.txt", "short\n" + std::string(5000, 'a') + "\nend\n");
  data::set_max_line_bytes(1000);
  expect_message<data::DataError>([&] { data::read_text(path); },
                                  {"long.txt:2", "longer than the limit of 1000 bytes",
                                   "data.max_line_bytes", "--max-line-bytes"});
  data::set_max_line_bytes(data::kDefaultMaxLineBytes);
  EXPECT_EQ(data::read_text(path).size(), 6u + 5001u + 4u);
  // The limit comes from the config, and is range-checked there.
  const auto config = tiny_lm(dir);
  train::ConfigReader c(config, {"data.max_line_bytes=0"});
  expect_message<train::ConfigError>(
      [&] { c.get_int("data", "max_line_bytes", 1, 1, int64_t{1} << 30); },
      {"--set data.max_line_bytes", "must be in [1, 1073741824], got 0"});
}

TEST(HardeningRound2, WhatIsNotARegularFileIsRefusedBeforeItIsRead) {
  const auto dir = temp_dir("nonregular");
  expect_message<data::DataError>([] { data::LineReader r("/dev/zero"); },
                                  {"/dev/zero", "is a device, not a text file"});
  const std::string fifo = dir + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Refused before it is opened: opening a FIFO without a writer would block forever.
  expect_message<data::DataError>([&] { data::LineReader r(fifo); },
                                  {"is a named pipe", "must be a regular file"});
  expect_message<train::CheckpointError>([&] { train::open_checkpoint(fifo, "lm", ""); },
                                         {fifo, "not a regular file"});
  expect_message<train::CheckpointError>([] { train::open_checkpoint("/dev/zero", "lm", ""); },
                                         {"/dev/zero: not a regular file"});
  expect_message<train::ConfigError>([] { train::ConfigReader c("/dev/zero"); },
                                     {"/dev/zero: not a regular file"});
  expect_message<train::IoError>([&] { lm::NGramModel::load(fifo); }, {"not a regular file"});
  // A checkpoint header that promises more than the file holds: refused after 24 bytes.
  std::string header = "RNNKITCK";
  header += std::string("\x03\0\0\0", 4) + std::string(4, '\0') +
            std::string("\xff\xff\xff\x7f\0\0\0\0", 8);
  const auto lying = write_file(dir, "lying.pt", header + "xyz");
  expect_message<train::CheckpointError>([&] { train::open_checkpoint(lying, "lm", ""); },
                                         {"truncated", "3 bytes after the header"});
}

TEST(HardeningRound2, AByteOrderMarkIsDroppedAndUtf16IsNamed) {
  const auto dir = temp_dir("bom");
  EXPECT_EQ(data::read_text(write_file(dir, "bom.txt", "\xEF\xBB\xBFhello\nworld\n")),
            "hello\nworld\n");
  // A BOM before -DOCSTART- made a training sentence of it.
  const auto conll = write_file(dir, "bom.conll", "\xEF\xBB\xBF-DOCSTART- -X- O O\n\nEU B-ORG\n");
  const auto sentences = data::read_conll(conll);
  ASSERT_EQ(sentences.size(), 1u);
  EXPECT_EQ(sentences[0].tokens, std::vector<std::string>{"EU"});
  expect_message<data::DataError>(
      [&] { data::read_text(write_file(dir, "le.txt", std::string("\xFF\xFEh\0i\0\n\0", 8))); },
      {"le.txt:1", "UTF-16", "iconv"});
  expect_message<data::DataError>(
      [&] { data::read_text(write_file(dir, "nobom.txt", std::string("h\0e\0l\0l\0o\0", 10))); },
      {"nobom.txt:1", "looks like UTF-16"});
}

TEST(HardeningRound2, SizesHaveRangesAndARunThatTrainedNothingReportsNothing) {
  const auto dir = temp_dir("sizes");
  const auto config = tiny_lm(dir);
  struct Case {
    std::string set, expected;
  };
  for (const Case& c : std::vector<Case>{
           {"model.num_layers=100000000", "--set model.num_layers: must be in [1, 64]"},
           {"model.hidden_size=1000000", "--set model.hidden_size: must be in [1, 65536]"},
           {"model.hidden_size=9223372036854775807", "must be in [1, 65536]"},
           {"model.embedding_size=4611686018427387904", "--set model.embedding_size: must be in"},
           {"data.bptt=9223372036854775807", "--set data.bptt: must be in [1, 100000]"},
           {"train.batch_size=9223372036854775807", "--set train.batch_size: must be in"},
       }) {
    train::ConfigReader r(config, {c.set});
    expect_message<train::ConfigError>([&] { lm::train(r, rnnkit_test::quiet_run(dir + "/r")); },
                                       {c.expected});
  }
  // Each in range, together too big for any memory.
  train::ConfigReader big(config, {"model.hidden_size=65536", "model.num_layers=64"});
  expect_message<train::ConfigError>(
      [&] { lm::train(big, rnnkit_test::quiet_run(dir + "/r")); },
      {"--set model.hidden_size", "64 layer(s) of hidden_size 65536", "GB of memory"});
  // A task whose data gives no batch (as data.bptt = INT64_MAX once did): no step, so no
  // metric and no best.pt.
  NoBatchTask none;
  train::TrainOptions o;
  o.epochs = 2;
  expect_message<std::invalid_argument>(
      [&] { train::fit(none, o, rnnkit_test::quiet_run(dir + "/none"), "x = 1\n"); },
      {"gives no batch in epoch 1", "nothing was trained, reported or saved"});
  EXPECT_EQ(none.evaluations, 0);
  EXPECT_FALSE(fs::exists(dir + "/none/best.pt"));
  EXPECT_FALSE(fs::exists(dir + "/none/last.pt"));
  EXPECT_FALSE(fs::exists(dir + "/none/metrics.csv"));
}

TEST(HardeningRound2, AResumedRunKeepsItsConfigOrSaysWhy) {
  const auto dir = temp_dir("resumecfg");
  const auto config = tiny_lm(dir);
  auto first = rnnkit_test::quiet_run(dir + "/run");
  first.max_steps = 2;
  train::ConfigReader c0(config);
  lm::train(c0, first);
  ASSERT_TRUE(fs::exists(dir + "/run/last.pt"));
  auto resume = rnnkit_test::quiet_run(dir + "/run");
  resume.resume = true;
  resume.max_steps = 1;
  train::ConfigReader changed(config, {"train.learning_rate=0.5"});
  expect_message<train::RunDirError>([&] { lm::train(changed, resume); },
                                     {"--resume: the config differs from the run's at key "
                                      "train.learning_rate (0.01 in",
                                      "0.5 now"});
  // An edited config.toml is seen too.
  const std::string recorded = read_all(dir + "/run/config.toml");
  std::string edited = recorded;
  edited.replace(edited.find("hidden_size = 16"), 16, "hidden_size = 17");
  write_file(dir + "/run", "config.toml", edited);
  train::ConfigReader same(config);
  expect_message<train::RunDirError>([&] { lm::train(same, resume); },
                                     {"config.toml was edited", "model.hidden_size"});
  write_file(dir + "/run", "config.toml", recorded);
  // A resume killed before its first checkpoint leaves config.toml with the new epochs and
  // last.pt with the old: every later --resume was refused, so torchrun could not restart it.
  std::string interrupted = recorded;
  const auto at = interrupted.find("epochs = ");
  ASSERT_NE(at, std::string::npos) << recorded;
  interrupted.replace(at, interrupted.find('\n', at) - at, "epochs = 7");
  write_file(dir + "/run", "config.toml", interrupted);
  lm::train(same, resume);
  EXPECT_NE(read_all(dir + "/run/config.toml").find("epochs = 1\n"), std::string::npos)
      << "the config resumed with is recorded";
  // How long to go on may change, and is recorded.
  train::ConfigReader longer(config, {"train.epochs=2"});
  lm::train(longer, resume);
  EXPECT_NE(read_all(dir + "/run/config.toml").find("epochs = 2"), std::string::npos);
}

TEST(HardeningRound2, ACheckpointWhoseConfigDisagreesWithItsTensorsIsRefused) {
  const auto dir = temp_dir("shapes");
  const auto config = tiny_lm(dir);
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

TEST(HardeningRound2, NGramModelsCarryAChecksum) {
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

TEST(HardeningRound2, ReportsAndVectorsSayWhatIsWrong) {
  // NaN in a pretrained-vectors file: the file and line, not "training diverged" later.
  const auto dir = temp_dir("vectors");
  const auto path = write_file(dir, "v.txt", "the 0.1 0.2\ncat nan 0.3\n");
  expect_message<data::DataError>([&] { data::read_word_vectors(path); },
                                  {"v.txt:2", "'nan', not a finite number"});
  // 31 classes: the report leaves the confusion matrix to --json; absent classes are named.
  std::vector<int64_t> gold, pred;
  for (int64_t i = 0; i < 62; ++i) gold.push_back(i % 30), pred.push_back((i * 7) % 30);
  std::vector<std::string> labels;
  for (int k = 0; k < 31; ++k) labels.push_back("c" + std::to_string(k));
  const std::string report =
      train::format_report(train::classification_report(gold, pred, 31), labels);
  EXPECT_NE(report.find("confusion matrix: not shown for 31 classes (more than 30); --json has it"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("note: 1 class(es) have no example in this file (c30)"), std::string::npos)
      << report;
  EXPECT_LT(report.size(), 5000u);
}

TEST(HardeningRound2, AFullDeviceIsNamedNotAnUnknownError) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  expect_message<train::IoError>(
      [] {
        train::OutputFile f("/dev/full");
        f << std::string(1 << 16, 'x');
        f.close();
      },
      {"/dev/full", "No space left on device"});
}

}  // namespace
