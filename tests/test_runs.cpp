// A run's life and its run dir, under faults and careless use: thread limits, one run per run
// dir, no silent overwrite, stale temp files, stops that are seen (and a second signal that
// aborts), divergence, nothing written through a symlink, sizes with ranges, a run that trained
// nothing, a resumed run that keeps its config, a full disk named. The command line side is in
// tests/cli_hardening.sh.
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

namespace {

/// A quadratic task whose evaluation can raise a signal part-way and then polls for stops.
class EvalTask : public train::Task {
 public:
  explicit EvalTask(int signal_in_eval = 0)
      : signal_(signal_in_eval), lin_(torch::nn::Linear(2, 1)) {}
  torch::nn::Module& model() override { return *lin_; }
  std::string app_name() const override { return "fake"; }
  std::string architecture() const override { return "linear"; }
  int64_t begin_epoch(int64_t) override { return 3; }
  train::BatchLoss train_batch(int64_t) override {
    return {lin_->forward(torch::ones({4, 2})).pow(2).mean(), 4};
  }
  train::Metrics evaluate() override {
    for (int batch = 0; batch < 100; ++batch) {
      train::throw_if_stopped();
      if (batch == 2 && signal_ != 0) std::raise(signal_);
      ++eval_batches;
    }
    train::Metrics m;
    m.values = {{"val_loss", lin_->forward(torch::ones({1, 2})).pow(2).item<double>()}};
    m.main = "val_loss";
    return m;
  }
  int eval_batches = 0;

 private:
  int signal_;
  torch::nn::Linear lin_;
};

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

}  // namespace

TEST(Runs, ThreadCountsAreBoundedAndFollowAffinityAndOmp) {
  const int cores = train::available_cores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, static_cast<int>(std::thread::hardware_concurrency()));
  ::unsetenv("OMP_NUM_THREADS");
  EXPECT_EQ(train::resolve_threads(0), cores);
  EXPECT_EQ(train::resolve_threads(1), 1);
  expect_message<std::invalid_argument>([] { train::resolve_threads(-1); },
                                        {"--threads must be 0", "got -1"});
  expect_message<std::invalid_argument>(
      [] { train::resolve_threads(100000); },
      {"--threads 100000 is far above", "core(s) this process may use"});
  ::setenv("OMP_NUM_THREADS", "1", 1);
  EXPECT_EQ(train::resolve_threads(0), 1) << "OMP_NUM_THREADS is the default when set";
  ::setenv("OMP_NUM_THREADS", "lots", 1);
  expect_message<std::invalid_argument>([] { train::resolve_threads(0); },
                                        {"OMP_NUM_THREADS='lots'"});
  ::unsetenv("OMP_NUM_THREADS");
}

TEST(Runs, ARunDirIsLockedAgainstOtherProcesses) {
  const auto dir = temp_dir("lock");
  {
    train::RunDirLock a(dir);
    train::RunDirLock again(dir);  // the same process may nest (sentiment's pretraining)
  }
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // holds the lock until the parent has tried
    int status = 0;
    try {
      train::RunDirLock held(dir);
      char c = 1;
      if (::write(ready[1], &c, 1) != 1) status = 3;
      if (::read(done[0], &c, 1) != 1) status = 4;
    } catch (...) {
      status = 5;
    }
    ::_exit(status);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  expect_message<train::RunDirBusy>(
      [&] { train::RunDirLock second(dir); },
      {"is in use by another run", "process " + std::to_string(child)});
  // fit() refuses to start there too, before touching anything.
  train::TrainOptions o;
  o.epochs = 1;
  EvalTask t;
  expect_message<train::RunDirBusy>(
      [&] { train::fit(t, o, rnnkit_test::quiet_run(dir), "x = 1\n"); }, {"in use by another run"});
  EXPECT_FALSE(fs::exists(fs::path(dir) / "config.toml"));
  c = 1;
  ASSERT_EQ(::write(done[1], &c, 1), 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  train::RunDirLock after(dir);  // the holder is gone, so is its lock
}

TEST(Runs, TrainRefusesToOverwriteARunUnlessAsked) {
  const auto dir = temp_dir("overwrite");
  const auto config = tiny_lm_config(dir);
  train::ConfigReader c1(config);
  lm::train(c1, rnnkit_test::quiet_run(dir + "/run"));
  const std::string best = read_all(dir + "/run/best.pt");
  train::ConfigReader c2(config, {"train.learning_rate=0.05"});
  expect_message<train::RunDirError>([&] { lm::train(c2, rnnkit_test::quiet_run(dir + "/run")); },
                                     {"already holds a run", "--resume", "--overwrite"});
  EXPECT_EQ(read_all(dir + "/run/best.pt"), best) << "the refused run touched nothing";
  auto run = rnnkit_test::quiet_run(dir + "/run");
  run.overwrite = true;
  train::ConfigReader c3(config, {"train.learning_rate=0.05"});
  lm::train(c3, run);
  EXPECT_NE(read_all(dir + "/run/best.pt"), best);
  EXPECT_NE(read_all(dir + "/run/config.toml").find("learning_rate = 0.05"), std::string::npos);
  // --resume without a run to resume says so.
  auto resume = rnnkit_test::quiet_run(dir + "/empty");
  resume.resume = true;
  train::ConfigReader c4(config);
  expect_message<train::RunDirError>([&] { lm::train(c4, resume); }, {"holds no last.pt"});
}

TEST(Runs, StaleTempFilesOfAKilledWriterAreRemovedAndNamesAreUnique) {
  const auto dir = temp_dir("stale");
  const auto a = train::unique_temp_path(dir + "/last.pt"),
             b = train::unique_temp_path(dir + "/last.pt");
  EXPECT_NE(a, b);
  write_file(dir, fs::path(a).filename().string(), "half a checkpoint");
  train::TrainOptions o;
  o.epochs = 1;
  EvalTask t;
  train::fit(t, o, rnnkit_test::quiet_run(dir), "x = 1\n");
  EXPECT_FALSE(fs::exists(a));
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST(Runs, AStopDuringEvaluationIsSeenAtOnceAndResumeEvaluatesAgain) {
  const auto dir = temp_dir("evalstop");
  train::TrainOptions o;
  o.epochs = 2;
  EvalTask t(SIGINT);
  const auto r = train::fit(t, o, rnnkit_test::quiet_run(dir), "x = 1\n");
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.signal, SIGINT);
  EXPECT_EQ(train::exit_status(r), 130);
  EXPECT_EQ(t.eval_batches, 3) << "the evaluation stopped at its next batch";
  auto a = train::open_checkpoint(dir + "/last.pt", "fake", "linear");
  EXPECT_EQ(train::get_int(a, "train/epoch"), 0);
  EXPECT_EQ(train::get_int(a, "train/batch"), 3) << "the epoch's training is kept";
  auto run = rnnkit_test::quiet_run(dir);
  run.resume = true;
  EvalTask again;
  const auto r2 = train::fit(again, o, run, "x = 1\n");
  EXPECT_FALSE(r2.interrupted);
  EXPECT_EQ(r2.steps, 6) << "3 steps before the stop and 3 after: none repeated";
  EXPECT_EQ(again.eval_batches, 200) << "epoch 1 evaluated again, then epoch 2";
}

TEST(Runs, ASecondSignalAbortsAtOnce) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    train::StopGuard guard;
    std::raise(SIGINT);  // the first only asks to stop...
    if (train::stop_signal() != SIGINT) ::_exit(3);
    std::raise(SIGINT);  // ...the second ends the process by SIGINT
    ::_exit(4);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "exited with " << WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    EXPECT_EQ(WTERMSIG(status), SIGINT);
  }
}

TEST(Runs, DivergenceWithoutACheckpointSaysSo) {
  const auto dir = temp_dir("diverge0");
  struct NanTask : EvalTask {
    train::BatchLoss train_batch(int64_t i) override {
      auto b = EvalTask::train_batch(i);
      b.loss = b.loss * std::numeric_limits<double>::quiet_NaN();
      return b;
    }
  } t;
  train::TrainOptions o;
  expect_message<train::TrainingDiverged>(
      [&] { train::fit(t, o, rnnkit_test::quiet_run(dir), "x = 1\n"); },
      {"loss is nan at step 1", "no checkpoint was written"});
}

TEST(Runs, TheLockTheLogAndMetricsAreNeverWrittenThroughASymlink) {
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

TEST(Runs, SizesHaveRangesAndARunThatTrainedNothingReportsNothing) {
  const auto dir = temp_dir("sizes");
  const auto config = tiny_lm_config(dir);
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

TEST(Runs, AResumedRunKeepsItsConfigOrSaysWhy) {
  const auto dir = temp_dir("resumecfg");
  const auto config = tiny_lm_config(dir);
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

TEST(Runs, AFullDeviceIsNamedNotAnUnknownError) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  expect_message<train::IoError>(
      [] {
        train::OutputFile f("/dev/full");
        f << std::string(1 << 16, 'x');
        f.close();
      },
      {"/dev/full", "No space left on device"});
}
