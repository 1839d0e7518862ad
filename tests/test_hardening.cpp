// Faults and careless use (issue: hardening): thread limits, one run per run dir, no silent
// overwrite, stops that are seen (and a second signal that aborts), damaged checkpoints refused,
// long lines scored in chunks, and input that used to be accepted silently.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <rnnkit/data/conll.h>
#include <rnnkit/data/text.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/config.h>
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
using rnnkit_test::read_all;
using rnnkit_test::temp_dir;
using rnnkit_test::write_file;

namespace {

std::string tiny_lm(const std::string& dir, const std::string& extra = "") {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the cat sat on the mat " + std::to_string(i % 5) + "\n";
  write_file(dir, "train.txt", text);
  write_file(dir, "valid.txt", text.substr(0, 300));
  return write_file(
      dir, "lm.toml",
      "[data]\nlevel = \"char\"\ntrain = \"train.txt\"\nvalid = \"valid.txt\"\nbptt = 8\n"
      "[model]\ncell = \"lstm\"\nembedding_size = 8\nhidden_size = 16\n"
      "[train]\nepochs = 1\nbatch_size = 4\nlearning_rate = 0.01\nseed = 3\n" +
          extra);
}

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

}  // namespace

TEST(Hardening, ThreadCountsAreBoundedAndFollowAffinityAndOmp) {
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

TEST(Hardening, ARunDirIsLockedAgainstOtherProcesses) {
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

TEST(Hardening, TrainRefusesToOverwriteARunUnlessAsked) {
  const auto dir = temp_dir("overwrite");
  const auto config = tiny_lm(dir);
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

TEST(Hardening, StaleTempFilesOfAKilledWriterAreRemovedAndNamesAreUnique) {
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

TEST(Hardening, AStopDuringEvaluationIsSeenAtOnceAndResumeEvaluatesAgain) {
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

TEST(Hardening, ASecondSignalAbortsAtOnce) {
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

TEST(Hardening, DamagedAndNonFiniteCheckpointsAreRefused) {
  const auto dir = temp_dir("damaged");
  train::ConfigReader c(tiny_lm(dir));
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
}

TEST(Hardening, ADamagedLengthNeverReachesLibTorch) {
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

TEST(Hardening, DivergenceWithoutACheckpointSaysSo) {
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

TEST(Hardening, LongLinesAreScoredInChunksWithTheSameResult) {
  const auto dir = temp_dir("score");
  train::ConfigReader c(tiny_lm(dir));
  lm::train(c, rnnkit_test::quiet_run(dir + "/run"));
  auto m = lm::load_model(dir + "/run/best.pt", torch::kCPU);
  std::string line;
  for (int i = 0; i < 30; ++i) line += "the mat sat on the cat ";
  const auto chunked = lm::score_line(m, line, torch::kCPU);  // bptt = 8: 86 chunks
  // One pass over the whole line, as score did before.
  torch::NoGradGuard no_grad;
  const auto ids = lm::encode_stream(m.vocab, m.config.tokenize_line(line));
  const auto x = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end() - 1)).view({-1, 1});
  const auto y = torch::tensor(std::vector<int64_t>(ids.begin() + 1, ids.end())).view({-1, 1});
  const auto logp = torch::log_softmax(m.model->forward(x).logits.squeeze(1).to(torch::kDouble), 1);
  EXPECT_EQ(chunked.tokens, static_cast<int64_t>(line.size()));
  // float32 sums in another order: equal to about 1e-9 of the total.
  EXPECT_NEAR(chunked.logprob, logp.gather(1, y).sum().item<double>(),
              1e-8 * std::abs(chunked.logprob));
}

TEST(Hardening, TextReadersRefuseNulBytesAndDirectories) {
  const auto dir = temp_dir("nul");
  const auto path = write_file(dir, "nul.txt", std::string("fine\nbad\0line\n", 14));
  expect_message<data::DataError>([&] { data::read_text(path); },
                                  {"nul.txt:2", "NUL byte at byte 4"});
  expect_message<data::DataError>([&] { data::LineReader r(dir); },
                                  {"is a directory; expected a text file"});
  const auto conll = write_file(dir, "nul.conll", std::string("a O\nb\0 O\n", 10));
  expect_message<data::DataError>([&] { data::read_conll(conll); }, {"nul.conll:2", "NUL byte"});
}

TEST(Hardening, FuzzFindingsStayFixed) {
  const auto dir = temp_dir("fuzzfound");
  // fuzz_conll: a line of carriage returns only was not blank, split into no columns, and was
  // indexed (undefined behaviour). It is a sentence break now.
  const auto crs = write_file(dir, "cr.conll", "a O\n\r\r\r\nb O\n");
  EXPECT_EQ(data::read_conll(crs).size(), 2u);
  expect_message<data::DataError>(
      [&] { data::read_conll(write_file(dir, "e.conll", "a O\n\tO\n")); },
      {"e.conll:2", "empty token in column 1"});
  // UBSan: the Kneser-Ney n-gram stepped a null history pointer (an empty history).
  const std::vector<std::string> words{"a", "b", "a", "c"};
  lm::NGramModel kn(3, lm::Smoothing::kKneserNey, 0, data::Vocab::build(words));
  kn.train(lm::encode_stream(kn.vocab(), words));
  EXPECT_TRUE(std::isfinite(kn.logprob(nullptr, 0, kn.vocab().id("a"))));
}

TEST(Hardening, ConfigMessagesSayWhatIsWrong) {
  const auto dir = temp_dir("configmsg");
  train::ConfigReader no_level(write_file(dir, "a.toml", "[data]\ntrain = \"t\"\nvalid = \"v\"\n"));
  expect_message<train::ConfigError>([&] { lm::LMConfig::read(no_level); },
                                     {"missing required key data.level", "char, word"});
  expect_message<train::ConfigError>(
      [&] { train::ConfigReader(write_file(dir, "empty.toml", "")); },
      {"empty.toml", "the config is empty"});
  expect_message<train::ConfigError>([&] { train::ConfigReader r(dir); }, {"is a directory"});
  train::ConfigReader seed(tiny_lm(dir), {"train.seed=-5"});
  seed.set_origin("train.seed", "--seed");
  expect_message<train::ConfigError>([&] { lm::LMConfig::read(seed); },
                                     {"--seed: must be in [0, inf], got -5"});
}

TEST(Hardening, TagSchemesAreCheckedNotSilentlyRepaired) {
  const auto dir = temp_dir("schemes");
  const auto iob2 = write_file(dir, "x.conll", "John B-PER\nSmith I-PER\n\nin O\nParis I-LOC\n");
  const auto sentences = data::read_conll(iob2);
  expect_message<data::DataError>(
      [&] { data::check_tags(sentences, data::TagScheme::kIOB2, iob2); },
      {"x.conll:5", "'I-LOC' follows 'O'", "IOB2 entity starts with B-", "data.repair_tags"});
  auto repaired = sentences;
  EXPECT_EQ(data::repair_tags(repaired, data::TagScheme::kIOB2), 1);
  EXPECT_EQ(repaired[1].tags[1], "B-LOC");
  EXPECT_NO_THROW(data::check_tags(repaired, data::TagScheme::kIOB2, iob2));
  // A stray E- in an IO file contradicts every scheme; detection says which lines.
  const auto io = write_file(dir, "io.conll", "a I-PER\nb I-PER\nc O\n\nd I-LOC\ne E-MISC\n");
  expect_message<data::DataError>([&] { data::guess_tag_scheme(data::read_conll(io), io); },
                                  {"io.conll:6", "'E-MISC'", "io.conll:1", "'I-PER' follows 'O'"});
  const auto guess = data::guess_tag_scheme(sentences, iob2);
  EXPECT_EQ(guess.scheme, data::TagScheme::kIOB1);
  EXPECT_NE(guess.reason.find("x.conll:5"), std::string::npos) << guess.reason;
  // The NER app: declared iob2 with an I- start is refused at its line; repair_tags warns.
  write_file(dir, "dev.conll", "Anna B-PER\nwent O\n");
  const auto cfg =
      write_file(dir, "ner.toml",
                 "[data]\ntrain = \"x.conll\"\nvalid = \"dev.conll\"\nscheme = \"iob2\"\n"
                 "[model]\nhidden_size = 4\nword_embedding_size = 4\nchar_features = \"none\"\n"
                 "[train]\nepochs = 1\n");
  train::ConfigReader strict(cfg);
  expect_message<data::DataError>([&] { ner::train(strict, rnnkit_test::quiet_run(dir + "/run")); },
                                  {"x.conll:5", "invalid iob2 tags"});
  train::ConfigReader lenient(cfg, {"data.repair_tags=true"});
  testing::internal::CaptureStderr();
  ner::train(lenient, rnnkit_test::quiet_run(dir + "/run2"));
  EXPECT_NE(
      testing::internal::GetCapturedStderr().find("repaired 1 tag(s) that broke the iob2 scheme"),
      std::string::npos);
}

TEST(Hardening, RareLabelsAndUnknownWordsGetWarnings) {
  const auto dir = temp_dir("warnings");
  std::string tsv;
  for (int i = 0; i < 40; ++i)
    tsv += std::string(i % 2 ? "1" : "0") + "\tsome text " + std::to_string(i) + "\n";
  tsv += "positive\ta typo label\n";
  write_file(dir, "t.tsv", tsv);
  write_file(dir, "v.tsv", "0\tsome text\n1\tother text\n");
  const auto cfg =
      write_file(dir, "s.toml",
                 "[data]\nformat = \"tsv\"\ntrain = \"t.tsv\"\nvalid = \"v.tsv\"\n"
                 "[model]\nembedding_size = 4\nhidden_size = 4\n[train]\nepochs = 1\n");
  train::ConfigReader c(cfg);
  testing::internal::CaptureStderr();
  sentiment::train(c, rnnkit_test::quiet_run(dir + "/run"));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("label 'positive' occurs in only 1 of"), std::string::npos) << err;
  EXPECT_NE(err.find("t.tsv:41"), std::string::npos) << err;
  // An LM validation file of mostly unknown characters.
  write_file(dir, "train.txt", "aaaa bbbb\naaaa bbbb\n");
  write_file(dir, "valid.txt", "zzzz yyyy xxxx\n");
  const auto data = lm::encode_stream(data::Vocab::build(data::split_code_points("aaaa bbbb\n")),
                                      data::split_code_points("zzzz yyyy xxxx\n"));
  EXPECT_GT(lm::unk_rate(data::Vocab::build(data::split_code_points("ab \n")), data), 0.7);
  testing::internal::CaptureStderr();
  lm::report_unk_rate("valid.txt", data::Vocab::build(data::split_code_points("ab \n")), data,
                      true);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("% of the tokens of valid.txt are <unk>"),
            std::string::npos);
}

TEST(Hardening, CrossValidationChecksEveryFoldBeforeTraining) {
  const auto dir = temp_dir("cvcheck");
  std::string tsv;
  for (int i = 0; i < 7; ++i)
    tsv += std::string(i % 2 ? "1" : "0") + "\ttext " + std::to_string(i) + "\n";
  write_file(dir, "t.tsv", tsv);
  const auto cfg =
      write_file(dir, "s.toml",
                 "[data]\nformat = \"tsv\"\ntrain = \"t.tsv\"\nfolds = 5\n"
                 "[model]\nembedding_size = 4\nhidden_size = 4\n[train]\nepochs = 1\n");
  train::ConfigReader c(cfg);
  expect_message<train::ConfigError>(
      [&] { sentiment::cross_validate(c, rnnkit_test::quiet_run(dir + "/cv")); },
      {"7 examples are too few for 5-fold"});
  EXPECT_FALSE(fs::exists(dir + "/cv/fold1")) << "nothing trained, nothing left on disk";
}
