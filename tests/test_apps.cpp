// apps/train and apps/lm: configs, checkpoints, the training loop (resume, signals,
// divergence) and the language model's commands, end to end on tiny data.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <fmt/core.h>
#include <rnnkit/data/corpus.h>

#include <rnnkit/precision.h>
#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/config.h>
#include <rnnkit/train/train.h>
#include "lm/lm.h"
#include "lm/ngram.h"
#include "ner/ner.h"
#include "sentiment/sentiment.h"
#include "seq2seq/seq2seq.h"
#include "test_train_util.h"

using namespace rnnkit;
namespace fs = std::filesystem;

namespace {

using rnnkit_test::expect_message;
using rnnkit_test::read_all;
using rnnkit_test::temp_dir;

std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  return rnnkit_test::write_file(dir, name, text);
}

/// A corpus of a few thousand characters, and an lm config over it.
std::string tiny_lm_config(const std::string& dir, const std::string& extra = "") {
  return rnnkit_test::tiny_lm_config(dir, extra,
                                     rnnkit_test::apps_tiny_lm("embedding_dropout = 0.1\n"));
}

/// metrics.csv's rows, each cell under its header's name.
std::vector<std::map<std::string, std::string>> metrics_rows(const std::string& run_dir) {
  std::ifstream in(fs::path(run_dir) / "metrics.csv");
  auto split = [](const std::string& line) {
    std::vector<std::string> cells;
    std::string cell;
    for (std::istringstream s(line); std::getline(s, cell, ',');) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    return cells;
  };
  std::string line;
  std::getline(in, line);
  const auto names = split(line);
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    const auto cells = split(line);
    EXPECT_EQ(cells.size(), names.size()) << line;
    auto& row = rows.emplace_back();
    for (size_t i = 0; i < names.size() && i < cells.size(); ++i) row[names[i]] = cells[i];
  }
  return rows;
}

/// metrics.csv's lines without their last column (the wall-clock seconds), to compare runs.
std::vector<std::string> loss_curve(const std::string& run_dir) {
  std::ifstream in(fs::path(run_dir) / "metrics.csv");
  std::vector<std::string> rows;
  std::string line;
  while (std::getline(in, line)) rows.push_back(line.substr(0, line.rfind(',')));
  return rows;
}

}  // namespace

TEST(Config, TyposWrongTypesAndRangesNameFileLineAndKey) {
  const auto dir = temp_dir("config");
  const auto path = tiny_lm_config(dir, "learnig_rate = 0.1\n");
  train::ConfigReader typo(path);
  expect_message<train::ConfigError>([&] { lm::LMConfig::read(typo); },
                                     {"lm.toml:16: key train.learnig_rate", "unknown key"});
  train::ConfigReader wrong(tiny_lm_config(dir), {"model.hidden_size=\"big\""});
  expect_message<train::ConfigError>([&] { lm::LMConfig::read(wrong); },
                                     {"--set model.hidden_size", "expected an integer", "string"});
  train::ConfigReader range(tiny_lm_config(dir), {"model.dropout=1.5"});
  expect_message<train::ConfigError>([&] { lm::LMConfig::read(range); },
                                     {"model.dropout", "must be in [0, 0.99], got 1.5"});
  train::ConfigReader cell(tiny_lm_config(dir), {"model.cell=lstn"});
  expect_message<train::ConfigError>([&] { lm::LMConfig::read(cell); },
                                     {"unknown cell 'lstn'", "lstm_peephole"});
  expect_message<train::ConfigError>(
      [&] { train::ConfigReader(write(dir, "bad.toml", "[a]\nx = = 1\n")); },
      {"bad.toml:2", "TOML syntax error"});
  expect_message<train::ConfigError>([&] { train::ConfigReader(dir + "/missing.toml"); },
                                     {"missing.toml", "not found"});
  // A 40,000-deep table header, array or inline table once overflowed toml++'s stack (SIGSEGV).
  std::string header = "[a";
  for (int k = 0; k < 40000; ++k) header += ".a";
  expect_message<train::ConfigError>(
      [&] { train::ConfigReader(write(dir, "deep.toml", "# deep\n" + header + "]\nx = 1\n")); },
      {"deep.toml:2", "nested more than 1000 levels deep"});
  const std::string arrays = "[data]\nx = " + std::string(40000, '[') + std::string(40000, ']');
  expect_message<train::ConfigError>(
      [&] { train::ConfigReader(write(dir, "arrays.toml", arrays + "\n")); },
      {"arrays.toml:2", "nested more than 1000 levels deep"});
  expect_message<train::ConfigError>(
      [&] { train::ConfigReader(tiny_lm_config(dir), {"data.x=" + std::string(40000, '{')}); },
      {"--set data.x", "nested more than 1000 levels deep"});
  // A checkpoint's embedded config goes through the same guard (what fit.cpp's loader calls).
  expect_message<train::ConfigError>(
      [&] { train::ConfigReader::from_string("# deep\n" + header + "]\nx = 1\n", "ck.pt#config"); },
      {"ck.pt#config:2", "nested more than 1000 levels deep"});
  // Strings, comments and numbers are not nesting: a long array of floats and a bracket in a
  // string read as they always did.
  std::string floats = "[data]\nv = [";
  for (int k = 0; k < 3000; ++k) floats += "0.5, ";
  floats += "1.5] # [[[[ a comment\ns = \"" + std::string(3000, '[') + "\"\n";
  train::ConfigReader ok(write(dir, "floats.toml", floats));
  (void)ok;
}

// Config keys are declared once: configs/README.md's key tables are the code's tables
// (scripts/config_tables.sh rewrites them: RNNKIT_WRITE_CONFIG_TABLES=1 runs this test as the
// writer).
TEST(Config, ReadmeKeyTablesAreTheCodes) {
  const std::string path = std::string(RNNKIT_SOURCE_DIR) + "/configs/README.md";
  std::string readme = rnnkit_test::read_all(path);
  const std::vector<std::pair<std::string, train::KeyTable>> tables = {
      {"train", train::TrainOptions::keys()},
      {"lm", lm::LMConfig::keys()},
      {"sentiment", sentiment::SentimentConfig::keys()},
      {"ner", ner::NerConfig::keys()},
      {"seq2seq", seq2seq::Seq2SeqConfig::keys()}};
  const bool write = std::getenv("RNNKIT_WRITE_CONFIG_TABLES") != nullptr;
  for (const auto& [name, table] : tables) {
    const std::string begin =
        "<!-- keys: " + name + " (generated from the code by scripts/config_tables.sh) -->\n";
    const std::string end = "<!-- /keys: " + name + " -->";
    const auto b = readme.find(begin);
    ASSERT_NE(b, std::string::npos) << path << " lacks the line " << begin;
    const auto e = readme.find(end, b);
    ASSERT_NE(e, std::string::npos) << path << " lacks the line " << end;
    const size_t from = b + begin.size();
    if (write) {
      readme.replace(from, e - from, table.markdown());
    } else {
      EXPECT_EQ(readme.substr(from, e - from), table.markdown())
          << path << ": the table '" << name
          << "' differs from the code's; run scripts/config_tables.sh BUILD_DIR";
    }
  }
  if (write) std::ofstream(path, std::ios::binary) << readme;
}

// Every key a table declares is one the reader takes: a config that sets each to its default
// reads (no "unknown key"), and reads to the defaults.
TEST(Config, EveryDeclaredKeyIsReadAndItsDefaultIsTheStructs) {
  const auto dir = temp_dir("config_keys");
  std::vector<std::string> sets;
  const auto all = lm::LMConfig::keys().with(train::TrainOptions::keys());
  for (const auto& k : all.keys()) {
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, bool>) {
            sets.push_back(k.dotted() + "=" + (v ? "true" : "false"));
          } else if constexpr (std::is_same_v<T, int64_t>) {
            sets.push_back(k.dotted() + "=" + std::to_string(v));
          } else if constexpr (std::is_same_v<T, double>) {
            sets.push_back(k.dotted() + "=" + fmt::format("{:.17g}", v));
          } else if constexpr (std::is_same_v<T, std::string>) {
            sets.push_back(k.dotted() + "=\"" + v + "\"");
          }
        },
        k.fallback);
  }
  EXPECT_GE(sets.size(), 30u);
  train::ConfigReader c(tiny_lm_config(dir), sets);
  c.integer(train::common_keys().at("data", "max_line_bytes"));  // as load_config reads it
  lm::LMConfig l;
  ASSERT_NO_THROW(l = lm::LMConfig::read(c));
  const lm::LMConfig d;
  EXPECT_EQ(l.bptt, d.bptt);
  EXPECT_EQ(l.embedding_size, d.embedding_size);
  EXPECT_EQ(l.rnn.hidden_size(), d.rnn.hidden_size());
  EXPECT_EQ(l.train.learning_rate, train::TrainOptions().learning_rate);
  // Reading an undeclared key is a programming error, named.
  EXPECT_THROW(lm::LMConfig::keys().at("data", "bpt"), std::logic_error);
}

TEST(Config, OverridesAndPathsRelativeToTheConfigFile) {
  const auto dir = temp_dir("config2");
  train::ConfigReader c(tiny_lm_config(dir), {"train.epochs=5", "model.cell=gru"});
  const auto l = lm::LMConfig::read(c);
  EXPECT_EQ(l.train.epochs, 5);
  EXPECT_EQ(l.rnn.cell(), "gru");
  EXPECT_EQ(l.train_path, (fs::path(dir) / "train.txt").string());
  // The resolved config carries the resolved paths, so it works from anywhere.
  EXPECT_NE(c.resolved().find((fs::path(dir) / "valid.txt").string()), std::string::npos);
  EXPECT_NE(c.resolved().find("epochs = 5"), std::string::npos);
}

TEST(Config, ReadingChangesNothingAndPluginsLoadOnlyWhenAsked) {
  const auto dir = temp_dir("config_pure");
  train::ConfigReader c(tiny_lm_config(dir));
  const std::string before = c.resolved();
  const auto first = lm::LMConfig::read(c);
  const auto second = lm::LMConfig::read(c);  // the same config read again reads the same
  EXPECT_EQ(first.train_path, second.train_path);
  EXPECT_EQ(first.architecture(40), second.architecture(40));
  // The table is as parsed: the key still holds what the file says; resolved() shows the path
  // as it was understood.
  EXPECT_EQ(c.get<std::string>("data", "train", ""), "train.txt");
  EXPECT_EQ(before.find((fs::path(dir) / "train.txt").string()), std::string::npos);
  EXPECT_NE(c.resolved().find((fs::path(dir) / "train.txt").string()), std::string::npos);

  // A config naming a plugin: reading its cell before load_plugins is a programming error, and
  // no code is loaded by reading; load_plugins is the step that loads (here a file that is no
  // plugin, refused naming the key).
  const auto plugged =
      write(dir, "plugged.toml", "[model]\ncell = \"lstm\"\nplugins = \"not_a_plugin.so\"\n");
  write(dir, "not_a_plugin.so", "text");
  train::ConfigReader p(plugged);
  expect_message<std::logic_error>([&] { p.get_cell("model", "cell", "lstm"); },
                                   {"[model] names plugins", "load_plugins(\"model\") first"});
  expect_message<train::ConfigError>([&] { p.load_plugins("model"); },
                                     {"plugged.toml:3: key model.plugins", "not_a_plugin.so"});
  // A checkpoint's config loads nothing without consent, and its cell is then unknown.
  auto saved = train::ConfigReader::from_string(
      "[model]\ncell = \"mgu_not_loaded\"\nplugins = [\"/nowhere/libmgu.so\"]\n", "ck.pt#config");
  saved.load_plugins("model");
  expect_message<train::ConfigError>([&] { saved.get_cell("model", "cell", "lstm"); },
                                     {"ck.pt#config", "a checkpoint never loads code by itself"});
}

// Mixed precision end to end (rnnkit/precision.h; the cells' own test is test_precision.cpp):
// the same fixed-seed run in bf16 ends near the fp32 run, each run's checkpoint (fp32 weights
// either way) evaluates under the other precision, and fp16 on a CPU is refused.
TEST(Precision, Bf16LanguageModelTrainsAsFp32AndCheckpointsCrossLoad) {
  const auto dir = temp_dir("lm_bf16");
  const auto config = tiny_lm_config(dir);
  const auto runs = rnnkit_test::fp32_and_bf16(lm::train, config, dir);
  const auto &r32 = runs.fp32, &r16 = runs.bf16;
  const double l32 = runs.loss32, l16 = runs.loss16;
  // bf16 rounds each product's inputs to 8 significant bits (2^-8 = 0.4% relative), errors
  // that mostly cancel in a sum of products and in a mean over steps: the two runs' losses must
  // stay within 1% (measured: 0.06% apart in train loss, 0.12% in validation loss).
  EXPECT_NEAR(l16, l32, 0.01 * l32) << "train loss";
  EXPECT_NEAR(r16.last.get("val_loss"), r32.last.get("val_loss"), 0.01 * r32.last.get("val_loss"));
  EXPECT_NE(l16, l32) << "the bf16 run equals the fp32 run: nothing ran in bf16";
  // Each checkpoint under the other precision: the validation loss it was saved with, within
  // the products' rounding (0.5%; measured 0.013% and 0.006%).
  auto m32 = lm::load_model(dir + "/fp32/last.pt", torch::kCPU);
  auto m16 = lm::load_model(dir + "/bf16/last.pt", torch::kCPU);
  const auto valid = lm::encode_stream(m32.vocab, data::read_char_corpus(dir + "/valid.txt"));
  const double fp32_of_bf16 = lm::evaluate_stream(*m16.model, valid, 8, 1, torch::kCPU).loss;
  double bf16_of_fp32 = 0;
  {
    AutocastGuard bf16(Precision::kBF16, c10::DeviceType::CPU);
    bf16_of_fp32 = lm::evaluate_stream(*m32.model, valid, 8, 1, torch::kCPU).loss;
  }
  EXPECT_NEAR(fp32_of_bf16, r16.last.get("val_loss"), 0.005 * r16.last.get("val_loss"));
  EXPECT_NEAR(bf16_of_fp32, r32.last.get("val_loss"), 0.005 * r32.last.get("val_loss"));
  EXPECT_NE(bf16_of_fp32, r32.last.get("val_loss")) << "the bf16 evaluation ran in fp32";
  for (const auto& p : m16.model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);

  // metrics.csv says each epoch's precision. A run begun before the column existed (its file
  // without it) and resumed in bf16 gets the column, empty where it was not recorded.
  for (const auto& [run, precision] : {std::pair{"fp32", "fp32"}, std::pair{"bf16", "bf16"}}) {
    const auto rows = metrics_rows(dir + "/" + run);
    ASSERT_EQ(rows.size(), 2u) << run;
    for (const auto& row : rows) EXPECT_EQ(row.at("precision"), precision) << run;
  }
  const auto csv = dir + "/fp32/metrics.csv";
  std::string old_csv;
  {
    std::ifstream in(csv);
    for (std::string line; std::getline(in, line);) {
      const auto seconds = line.rfind(','), precision = line.rfind(',', seconds - 1);
      old_csv += line.substr(0, precision) + line.substr(seconds) + "\n";
    }
  }
  ASSERT_EQ(old_csv.substr(0, old_csv.find('\n')),
            "epoch,step,train_loss,val_loss,val_ppl,val_bpc,lr,seconds");
  write(dir + "/fp32", "metrics.csv", old_csv);
  auto resumed = rnnkit_test::quiet_run(dir + "/fp32");
  resumed.resume = true;
  train::ConfigReader c_more(config, {"train.precision=bf16", "train.epochs=3"});
  lm::train(c_more, resumed);
  const auto rows = metrics_rows(dir + "/fp32");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].at("precision"), "");
  EXPECT_EQ(rows[1].at("precision"), "");
  EXPECT_EQ(rows[2].at("precision"), "bf16");
  EXPECT_EQ(rows[1].at("val_loss"), fmt::format("{:.6f}", r32.last.get("val_loss")))
      << "the earlier rows are kept as they were";

  train::ConfigReader c_half(config, {"train.precision=fp16"});
  expect_message<c10::ValueError>([&] { lm::train(c_half, rnnkit_test::quiet_run(dir + "/fp16")); },
                                  {"fp16 is for CUDA devices only"});
}

// Loss scaling in fit() (train.grad_scaler, rnnkit/grad_scaler.h). In fp32 a power-of-two
// scale rounds nothing, so a run with it is the run without, bit for bit: the scale reaches
// the backward and is taken out again before the step. A first scale of 2^140 overflows (fp32
// ends below 2^128): those steps are skipped, halving the scale each time, and the run trains on
// from where the scale fits. A run stopped there and resumed scales as the run straight through
// (the scale and its count of good steps are in the checkpoint).
TEST(Precision, LossScalingIsExactSkipsOverflowedStepsAndResumes) {
  const auto dir = temp_dir("lm_scaler");
  const auto config = tiny_lm_config(dir);
  const auto weights = [](const std::string& checkpoint) {
    return lm::load_model(checkpoint, torch::kCPU).model->parameters();
  };
  const auto same = [](const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
  };
  train::ConfigReader plain(config), dynamic(config, {"train.grad_scaler=dynamic"});
  const auto r_plain = lm::train(plain, rnnkit_test::quiet_run(dir + "/plain"));
  const auto r_dynamic = lm::train(dynamic, rnnkit_test::quiet_run(dir + "/dynamic"));
  EXPECT_EQ(r_dynamic.skipped_steps, 0);
  same(weights(dir + "/plain/last.pt"), weights(dir + "/dynamic/last.pt"));
  EXPECT_EQ(r_dynamic.last.get("val_loss"), r_plain.last.get("val_loss"));

  const std::vector<std::string> huge = {"train.grad_scaler=dynamic",
                                         "train.grad_scaler_init=1.393796574908164e+42"};
  train::ConfigReader overflowing(config, huge);
  const auto r_over = lm::train(overflowing, rnnkit_test::quiet_run(dir + "/over"));
  // 2^140 down to 2^127 at least: from 2^128 up the scale itself is inf in fp32, and so is
  // every gradient (measured: 13 skipped steps, the first 13); the rest of the steps train.
  EXPECT_GE(r_over.skipped_steps, 13);
  EXPECT_LT(r_over.skipped_steps, r_over.steps / 4);
  auto saved = train::open_checkpoint(dir + "/over/last.pt", "lm", "");
  EXPECT_EQ(train::get_double(saved, "scaler/scale"), std::ldexp(1.0, 140 - r_over.skipped_steps))
      << "halved once per skipped step, never grown (grad_scaler_interval 2000)";
  EXPECT_LT(r_over.last.get("val_loss"), 1.25 * r_plain.last.get("val_loss"));

  auto first = rnnkit_test::quiet_run(dir + "/pieces");
  first.max_steps = 8;  // inside the overflowing steps
  train::ConfigReader c1(config, huge), c2(config, huge);
  const auto r1 = lm::train(c1, first);
  EXPECT_TRUE(r1.interrupted);
  first.max_steps = 0;
  first.resume = true;
  const auto r2 = lm::train(c2, first);
  EXPECT_EQ(r1.skipped_steps + r2.skipped_steps, r_over.skipped_steps);
  same(weights(dir + "/over/last.pt"), weights(dir + "/pieces/last.pt"));

  // A resumed run may turn loss scaling on or off, as it may change train.precision.
  auto on_again = rnnkit_test::quiet_run(dir + "/plain");
  on_again.resume = true;
  train::ConfigReader c3(config, {"train.grad_scaler=dynamic", "train.epochs=3"});
  EXPECT_EQ(lm::train(c3, on_again).epochs_done, 3);
}

// fp16 on CUDA (skipped without a GPU): the same fixed-seed run as fp32, with dynamic loss
// scaling on by default; fp16's 11-bit significand (u = 2^-11) rounds less than bf16, so the
// runs end within bf16's 1%, and the checkpoint (fp32 weights) evaluates on a CPU.
TEST(Precision, Fp16OnCudaTrainsNearFp32WithLossScaling) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto dir = temp_dir("lm_fp16");
  const auto config = tiny_lm_config(dir);
  auto on_gpu = [&](const std::string& name) {
    auto r = rnnkit_test::quiet_run(dir + "/" + name);
    r.device = "cuda";
    return r;
  };
  train::ConfigReader c32(config), c16(config, {"train.precision=fp16"});
  const auto r32 = lm::train(c32, on_gpu("fp32"));
  const auto r16 = lm::train(c16, on_gpu("fp16"));
  const double l32 = rnnkit_test::last_train_loss(dir + "/fp32");
  const double l16 = rnnkit_test::last_train_loss(dir + "/fp16");
  EXPECT_NEAR(l16, l32, 0.01 * l32);
  EXPECT_NE(l16, l32) << "nothing ran in fp16";
  EXPECT_NEAR(r16.last.get("val_loss"), r32.last.get("val_loss"), 0.01 * r32.last.get("val_loss"));
  EXPECT_LT(r16.skipped_steps, r16.steps / 4);
  auto saved = train::open_checkpoint(dir + "/fp16/last.pt", "lm", "");
  EXPECT_GT(train::get_double(saved, "scaler/scale"), 1.0);
  auto m16 = lm::load_model(dir + "/fp16/last.pt", torch::kCPU);
  for (const auto& p : m16.model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
}

TEST(Checkpoint, AtomicAndRefusesTruncatedForeignAndOtherModels) {
  const auto dir = temp_dir("ckpt");
  const auto path = (fs::path(dir) / "c.pt").string();
  train::write_checkpoint(path, "lm", "arch-A",
                          [](torch::serialize::OutputArchive& a) { train::put_int(a, "x", 42); });
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos)
        << "a temp file was left: " << e.path();
  }
  auto a = train::open_checkpoint(path, "lm", "arch-A");
  EXPECT_EQ(train::get_int(a, "x"), 42);
  expect_message<train::CheckpointError>([&] { train::open_checkpoint(path, "lm", "arch-B"); },
                                         {"differs from the config", "arch-A", "arch-B"});
  expect_message<train::CheckpointError>([&] { train::open_checkpoint(path, "ner", ""); },
                                         {"rnnkit-lm, not of rnnkit-ner"});
  const std::string bytes = read_all(path);
  const auto trunc = write(dir, "t.pt", bytes.substr(0, bytes.size() / 2));
  expect_message<train::CheckpointError>([&] { train::open_checkpoint(trunc, "lm", ""); },
                                         {"t.pt", "the checkpoint is truncated", "expected)"});
  const auto foreign = write(dir, "f.pt", "just some text");
  expect_message<train::CheckpointError>([&] { train::open_checkpoint(foreign, "lm", ""); },
                                         {"f.pt", "not an rnnkit checkpoint"});
  torch::serialize::OutputArchive plain;
  plain.write("w", torch::ones({2}));
  const auto other = (fs::path(dir) / "o.pt").string();
  plain.save_to(other);
  expect_message<train::CheckpointError>(
      [&] { train::open_checkpoint(other, "lm", ""); },
      {"o.pt", "without a checksum", "RNNKIT_ALLOW_UNVERIFIED_CHECKPOINTS"});
  ::setenv("RNNKIT_ALLOW_UNVERIFIED_CHECKPOINTS", "1", 1);
  expect_message<train::CheckpointError>([&] { train::open_checkpoint(other, "lm", ""); },
                                         {"a torch archive, but not an rnnkit checkpoint"});
  ::unsetenv("RNNKIT_ALLOW_UNVERIFIED_CHECKPOINTS");
}

TEST(Training, InterruptedAndResumedRunGivesTheSameLossCurve) {
  const auto dir = temp_dir("resume");
  const auto config = tiny_lm_config(dir);
  train::ConfigReader c1(config);
  const auto whole = lm::train(c1, rnnkit_test::quiet_run(dir + "/whole"));
  EXPECT_FALSE(whole.interrupted);
  ASSERT_EQ(whole.epochs_done, 2);

  auto run = rnnkit_test::quiet_run(dir + "/parts");
  run.max_steps = 23;  // mid-epoch (an epoch has 43 windows here)
  train::ConfigReader c2(config);
  EXPECT_TRUE(lm::train(c2, run).interrupted);
  run.resume = true;
  run.max_steps = 30;  // into the second epoch, past one end-of-epoch evaluation
  train::ConfigReader c3(config);
  EXPECT_TRUE(lm::train(c3, run).interrupted);
  run.max_steps = 0;
  train::ConfigReader c4(config);
  const auto rest = lm::train(c4, run);
  EXPECT_EQ(rest.steps, whole.steps);
  const auto a = loss_curve(dir + "/whole"), b = loss_curve(dir + "/parts");
  ASSERT_EQ(a.size(), 3u);  // header and two epochs
  EXPECT_EQ(a, b);
}

TEST(Training, CosineScheduleAnnealsByStepAndResumesExactly) {
  EXPECT_DOUBLE_EQ(train::cosine_learning_rate(0.01, 0.001, 0.0), 0.01);
  EXPECT_DOUBLE_EQ(train::cosine_learning_rate(0.01, 0.001, 0.5), 0.0055);
  EXPECT_DOUBLE_EQ(train::cosine_learning_rate(0.01, 0.001, 1.0), 0.001);
  EXPECT_DOUBLE_EQ(train::cosine_learning_rate(0.01, 0.001, 1.5), 0.001);

  // Variational dropout on the inputs, between the layers and on the outputs, so that the
  // resumed run must also replay its dropout draws.
  const auto dir = temp_dir("cosine");
  const auto config = tiny_lm_config(dir, "schedule = \"cosine\"\nmin_lr = 0.001\n");
  const std::vector<std::string> model = {"model.num_layers=2", "model.dropout=0.3",
                                          "model.variational_dropout=true"};
  train::ConfigReader c1(config, model);
  const auto whole = lm::train(c1, rnnkit_test::quiet_run(dir + "/whole"));
  ASSERT_EQ(whole.epochs_done, 2);
  auto run = rnnkit_test::quiet_run(dir + "/parts");
  run.max_steps = 23;  // mid-epoch
  train::ConfigReader c2(config, model);
  EXPECT_TRUE(lm::train(c2, run).interrupted);
  run.resume = true;
  run.max_steps = 0;
  train::ConfigReader c3(config, model);
  lm::train(c3, run);
  const auto a = loss_curve(dir + "/whole");
  EXPECT_EQ(a, loss_curve(dir + "/parts"));
  // metrics.csv reports the rate the next epoch starts at: halfway, then min_lr.
  const auto rows = metrics_rows(dir + "/whole");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_DOUBLE_EQ(std::stod(rows[0].at("lr")), 0.0055);
  EXPECT_DOUBLE_EQ(std::stod(rows[1].at("lr")), 0.001);

  train::ConfigReader bad(config, {"train.min_lr=0.5"});
  expect_message<train::ConfigError>(
      [&] { train::TrainOptions::read(bad); },
      {"--set train.min_lr", "min_lr = 0.5 is above learning_rate = 0.01"});
}

TEST(Training, ResumeRefusesACheckpointOfAnotherModel) {
  const auto dir = temp_dir("othermodel");
  auto run = rnnkit_test::quiet_run(dir + "/run");
  run.max_steps = 2;
  train::ConfigReader c1(tiny_lm_config(dir));
  lm::train(c1, run);
  run.resume = true;
  train::ConfigReader c2(tiny_lm_config(dir), {"model.hidden_size=32"});
  expect_message<train::CheckpointError>([&] { lm::train(c2, run); },
                                         {"differs from the config", "hidden=16", "hidden=32"});
}

namespace {
/// A task whose loss is a plain quadratic, with hooks for NaN and signals at chosen batches.
class FakeTask : public train::Task {
 public:
  explicit FakeTask(int64_t nan_at = -1, int64_t signal_at = -1)
      : nan_at_(nan_at), signal_at_(signal_at), lin_(torch::nn::Linear(2, 1)) {}
  torch::nn::Module& model() override { return *lin_; }
  std::string app_name() const override { return "fake"; }
  std::string architecture() const override { return "linear"; }
  int64_t begin_epoch(int64_t) override { return 5; }
  train::BatchLoss train_batch(int64_t i) override {
    ++calls_;
    if (calls_ == signal_at_) std::raise(SIGTERM);
    auto loss = lin_->forward(torch::ones({4, 2})).pow(2).mean();
    if (calls_ == nan_at_) loss = loss * std::numeric_limits<double>::quiet_NaN();
    return {loss, 4};
  }
  train::Metrics evaluate() override {
    train::Metrics m;
    m.values = {{"val_loss", lin_->forward(torch::ones({1, 2})).pow(2).item<double>()}};
    m.main = "val_loss";
    return m;
  }

 private:
  int64_t nan_at_, signal_at_, calls_ = 0;
  torch::nn::Linear lin_;
};
}  // namespace

TEST(Training, DivergenceStopsNamingTheStepAndKeepsTheLastGoodCheckpoint) {
  const auto dir = temp_dir("nan");
  train::TrainOptions o;
  o.epochs = 1;
  FakeTask ok;
  train::fit(ok, o, rnnkit_test::quiet_run(dir), "x = 1\n");
  const std::string before = read_all(dir + "/last.pt");
  o.epochs = 2;
  auto run = rnnkit_test::quiet_run(dir);
  run.resume = true;
  FakeTask bad(/*nan_at=*/3);
  expect_message<train::TrainingDiverged>(
      [&] { train::fit(bad, o, run, "x = 1\n"); },
      {"loss is nan at step 8", "epoch 2, batch 3", "last good checkpoint"});
  EXPECT_EQ(read_all(dir + "/last.pt"), before);
}

// Under loss scaling a step whose gradients are inf or NaN is skipped, leaving the weights as
// they were; gradients that stay so while the scale falls below 1e-4 are a divergence, named,
// not a run that trains nothing for ever.
TEST(Training, GradientsNotFiniteAtAnyLossScaleAreADivergence) {
  class NanGradients : public FakeTask {
   public:
    train::BatchLoss train_batch(int64_t i) override {
      auto b = FakeTask::train_batch(i);
      return {(b.loss * 0).sqrt(), b.count};  // loss 0, gradient 0 · 1/(2·sqrt(0)) = NaN
    }
  };
  const auto dir = temp_dir("nan_grads");
  train::TrainOptions o;
  o.epochs = 4;
  o.grad_scaler = "dynamic";
  o.grad_scaler_init = 1;
  torch::manual_seed(1);
  NanGradients task;
  std::vector<torch::Tensor> before;
  for (const auto& p : task.model().parameters()) before.push_back(p.detach().clone());
  // 1, 1/2, ..., 2^-13 skipped; the 14th halving reaches 2^-14 < 1e-4.
  expect_message<train::TrainingDiverged>(
      [&] { train::fit(task, o, rnnkit_test::quiet_run(dir), "x = 1\n"); },
      {"gradients are not finite at any loss scale (step 14, epoch 3, batch 4",
       "at scale 0.00012207", "after 14 skipped steps", "last good checkpoint is kept in"});
  const auto after = task.model().parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i]));
}

TEST(Training, SigtermFinishesTheStepWritesLastAndReturns) {
  const auto dir = temp_dir("signal");
  train::TrainOptions o;
  o.epochs = 3;
  FakeTask t(-1, /*signal_at=*/4);
  const auto r = train::fit(t, o, rnnkit_test::quiet_run(dir), "x = 1\n");
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.steps, 4);
  auto a = train::open_checkpoint(dir + "/last.pt", "fake", "linear");
  EXPECT_EQ(train::get_int(a, "train/step"), 4);
  EXPECT_EQ(train::get_int(a, "train/batch"), 4);
}

namespace {
/// FakeTask whose validation loss is scripted by where training stands: 3, 2, 1 after whole
/// epochs 1, 2, 3 (steady improvement), and 0.5, better than any, part-way through an epoch.
class ScriptedTask : public FakeTask {
 public:
  int64_t begin_epoch(int64_t epoch) override {
    epoch_ = epoch;
    done_ = 0;
    return FakeTask::begin_epoch(epoch);
  }
  train::BatchLoss train_batch(int64_t i) override {
    done_ = i + 1;
    return FakeTask::train_batch(i);
  }
  train::Metrics evaluate() override {
    train::Metrics m;
    m.values = {{"val_loss", done_ == 5 ? 3.0 - static_cast<double>(epoch_) : 0.5}};
    m.main = "val_loss";
    return m;
  }

 private:
  int64_t epoch_ = 0, done_ = 0;
};
}  // namespace

TEST(Training, MaxMinutesStopMidEpochLeavesBestScheduleAndMetricsToWholeEpochs) {
  const auto dir = temp_dir("midepoch");
  train::TrainOptions o;
  o.epochs = 3;
  o.optimizer = "sgd";
  o.learning_rate = 0.1;
  o.schedule = "plateau";
  o.gamma = 0.5;          // patience 0: any epoch without a new best halves the rate
  torch::manual_seed(1);  // the same initial weights in every piece
  ScriptedTask t1;
  const auto whole = train::fit(t1, o, rnnkit_test::quiet_run(dir + "/whole"), "x = 1\n");
  EXPECT_DOUBLE_EQ(whole.best.get("val_loss"), 1.0);

  auto run = rnnkit_test::quiet_run(dir + "/parts");
  run.max_steps = 7;  // epoch 2, batch 2
  torch::manual_seed(1);
  ScriptedTask t2;
  EXPECT_TRUE(train::fit(t2, o, run, "x = 1\n").interrupted);
  run.resume = true;
  run.max_steps = 0;
  o.max_minutes = 1e-9;  // already past: one step, then a stop inside epoch 2
  torch::manual_seed(1);
  ScriptedTask t3;
  const auto paused = train::fit(t3, o, run, "x = 1\n");
  EXPECT_FALSE(paused.interrupted);
  EXPECT_EQ(paused.steps, 8);
  EXPECT_EQ(paused.epochs_done, 1);
  EXPECT_DOUBLE_EQ(paused.last.get("val_loss"), 0.5) << "the pause reports its evaluation";
  auto a = train::open_checkpoint(dir + "/parts/last.pt", "fake", "linear");
  EXPECT_EQ(train::get_int(a, "train/epoch"), 1);
  EXPECT_EQ(train::get_int(a, "train/batch"), 3);
  auto b = train::open_checkpoint(dir + "/parts/best.pt", "fake", "linear");
  EXPECT_EQ(train::get_int(a, "train/step"), 8);
  EXPECT_EQ(train::get_int(b, "train/step"), 5) << "the paused evaluation is no best checkpoint";
  o.max_minutes = 0;
  torch::manual_seed(1);
  ScriptedTask t4;
  const auto rest = train::fit(t4, o, run, "x = 1\n");
  EXPECT_EQ(rest.steps, 15);
  EXPECT_DOUBLE_EQ(rest.best.get("val_loss"), 1.0);
  // Each whole epoch improved, so the plateau schedule never decayed, in either run.
  const auto w = metrics_rows(dir + "/whole");
  ASSERT_EQ(w.size(), 3u);
  for (const auto& row : w) EXPECT_DOUBLE_EQ(std::stod(row.at("lr")), 0.1);
  EXPECT_EQ(loss_curve(dir + "/whole"), loss_curve(dir + "/parts"));
}

namespace {
/// FakeTask whose validation loss improves by 0.4% of the first value per epoch: 1.0, 0.996,
/// 0.992, 0.988.
class SlowTask : public FakeTask {
 public:
  int64_t begin_epoch(int64_t epoch) override {
    epoch_ = epoch;
    return FakeTask::begin_epoch(epoch);
  }
  train::Metrics evaluate() override {
    train::Metrics m;
    m.values = {{"val_loss", 1.0 - 0.004 * static_cast<double>(epoch_)}};
    m.main = "val_loss";
    return m;
  }

 private:
  int64_t epoch_ = 0;
};

std::vector<double> lr_column(const std::string& run_dir) {
  std::vector<double> lr;
  for (const auto& row : metrics_rows(run_dir)) lr.push_back(std::stod(row.at("lr")));
  return lr;
}
}  // namespace

TEST(Training, PlateauThresholdCountsOnlyRelativeGainsAboveItAndAddsUpSmallOnes) {
  EXPECT_TRUE(train::improves_on(5.0, NAN, false, 0.5)) << "the first epoch always improves";
  EXPECT_TRUE(train::improves_on(0.98, 1.0, false, 0.01));
  EXPECT_FALSE(train::improves_on(0.995, 1.0, false, 0.01));
  EXPECT_TRUE(train::improves_on(0.995, 1.0, false, 0.0));
  EXPECT_FALSE(train::improves_on(1.0, 1.0, false, 0.0));
  EXPECT_TRUE(train::improves_on(0.81, 0.8, true, 0.01));
  EXPECT_FALSE(train::improves_on(0.805, 0.8, true, 0.01));

  const auto dir = temp_dir("plateau_threshold");
  train::TrainOptions o;
  o.epochs = 4;
  o.optimizer = "sgd";
  o.learning_rate = 0.1;
  o.schedule = "plateau";
  o.gamma = 0.5;
  SlowTask t1;
  train::fit(t1, o, rnnkit_test::quiet_run(dir + "/strict"), "x = 1\n");
  EXPECT_EQ(lr_column(dir + "/strict"), (std::vector<double>{0.1, 0.1, 0.1, 0.1}))
      << "threshold 0: every gain counts";
  // 1%: 0.996 and 0.992 fall short of 1.0 * 0.99, so both halve the rate; 0.988 is 1.2% below
  // the reference 1.0, which stayed put, so the small gains add up to an improvement.
  o.plateau_threshold = 0.01;
  SlowTask t2;
  train::fit(t2, o, rnnkit_test::quiet_run(dir + "/rel"), "x = 1\n");
  EXPECT_EQ(lr_column(dir + "/rel"), (std::vector<double>{0.1, 0.05, 0.025, 0.025}));

  train::ConfigReader bad(tiny_lm_config(dir), {"train.plateau_threshold=0.7"});
  expect_message<train::ConfigError>([&] { train::TrainOptions::read(bad); },
                                     {"--set train.plateau_threshold", "0.7"});
}

TEST(Training, APauseInTheFirstEpochScoresNoTestSetAndTheResumedRunDoes) {
  const auto dir = temp_dir("pausetest");
  const auto config = tiny_lm_config(dir);
  const std::vector<std::string> test = {"data.test=\"valid.txt\""};
  auto run = rnnkit_test::quiet_run(dir + "/run");
  run.max_steps = 3;
  train::ConfigReader c1(config, test);
  EXPECT_TRUE(lm::train(c1, run).interrupted);
  run.resume = true;
  run.max_steps = 0;
  auto paused = test;
  paused.push_back("train.max_minutes=1e-9");  // already past: one step, a pause in epoch 1
  train::ConfigReader c2(config, paused);
  const auto r = lm::train(c2, run);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.epochs_done, 0);
  EXPECT_TRUE(r.test.values.empty()) << "no best checkpoint to score the test set with yet";
  EXPECT_FALSE(fs::exists(dir + "/run/best.pt"));
  EXPECT_FALSE(fs::exists(dir + "/run/test.json"));
  train::ConfigReader c3(config, test);
  const auto rest = lm::train(c3, run);
  EXPECT_EQ(rest.epochs_done, 2);
  EXPECT_GT(rest.test.get("test_ppl"), 1.0);
  EXPECT_TRUE(fs::exists(dir + "/run/test.json"));
}

TEST(LanguageModel, EvalSampleAndScoreFromACheckpoint) {
  const auto dir = temp_dir("lmcmds");
  train::ConfigReader c(tiny_lm_config(dir));
  lm::train(c, rnnkit_test::quiet_run(dir + "/run"));
  auto m = lm::load_model(dir + "/run/best.pt", torch::kCPU);
  lm::SampleOptions o;
  o.max_length = 40;
  o.seed = 5;
  const auto s1 = lm::sample(m, o, torch::kCPU), s2 = lm::sample(m, o, torch::kCPU);
  EXPECT_EQ(s1, s2) << "the same seed gives the same text";
  EXPECT_EQ(data::split_code_points(s1).size(), 40u);
  o.seed = 6;
  EXPECT_NE(lm::sample(m, o, torch::kCPU), s1);
  o.greedy = true;
  const auto greedy = lm::sample(m, o, torch::kCPU);
  EXPECT_EQ(greedy, lm::sample(m, o, torch::kCPU));
  // A tiny or denormal temperature is greedy (its division would overflow to inf and NaN), and
  // one just above the threshold samples without overflowing.
  o.greedy = false;
  for (const double t : {1e-320, 1e-310, 1e-45, 0.9e-6}) {
    o.temperature = t;
    EXPECT_EQ(lm::sample(m, o, torch::kCPU), greedy) << t;
  }
  o.temperature = 2e-6;
  EXPECT_EQ(data::split_code_points(lm::sample(m, o, torch::kCPU)).size(), 40u);
  // A line like the training text is more likely than a scrambled one.
  const auto good = lm::score_line(m, "the cat sat on the mat 3", torch::kCPU);
  const auto bad = lm::score_line(m, "mat the on sat cat the 3", torch::kCPU);
  EXPECT_EQ(good.tokens, 24);
  EXPECT_GT(good.logprob, bad.logprob);
  // Perplexity is exp of the mean cross-entropy over all tokens, not a mean of per-batch exps.
  std::vector<int64_t> ids{data::Vocab::kEos};
  for (auto id : m.vocab.encode(data::read_char_corpus(dir + "/valid.txt"))) ids.push_back(id);
  const auto p = lm::evaluate_stream(*m.model, ids, 8, 1, torch::kCPU);
  EXPECT_EQ(p.tokens, 400);
  EXPECT_NEAR(p.perplexity(), std::exp(p.loss), 1e-12);
  EXPECT_NEAR(p.bits_per_token(), p.loss / std::log(2.0), 1e-12);
}

TEST(Cli, JsonOutputIsValidUtf8AndNeverHidesANonFiniteMetric) {
  EXPECT_EQ(train::json_line({{"file", "a\"b\\c\n"}, {"n", 3}, {"x", 0.5}}),
            "{\"file\":\"a\\\"b\\\\c\\n\",\"n\":3,\"x\":0.5}");
  // Invalid UTF-8 in user text is replaced (U+FFFD), never copied raw.
  EXPECT_EQ(train::json_line({{"text", std::string("ok\xff")}}), "{\"text\":\"ok\xef\xbf\xbd\"}");
  // NaN or infinity is an error naming the key, never null.
  expect_message<train::NonFiniteMetric>(
      [] {
        train::json_line({{"perplexity", NAN}});
      },
      {"'perplexity' is NaN"});
  expect_message<train::NonFiniteMetric>(
      [] {
        train::json_line({{"types", {{"PER", {{"f1", INFINITY}}}}}});
      },
      {"'types.PER.f1' is infinite"});
}

TEST(NGram, EverySmoothingIsADistributionAndSurvivesSaveAndLoad) {
  const auto dir = temp_dir("ngram");
  const std::vector<std::string> words{"the",   "cat",   "sat", "on",  "the", "mat",
                                       "<eos>", "the",   "dog", "sat", "on",  "a",
                                       "log",   "<eos>", "a",   "cat", "ran"};
  const auto vocab = data::Vocab::build(words);
  const auto ids = lm::encode_stream(vocab, words);
  for (auto sm : {lm::Smoothing::kAddDelta, lm::Smoothing::kBackoff, lm::Smoothing::kKneserNey}) {
    for (int order = 1; order <= 5; ++order) {
      lm::NGramModel m(order, sm, 0.5, vocab);
      m.train(ids);
      // Seen, unseen and partly seen histories: P(. | h) sums to 1 over the vocabulary.
      const std::vector<std::vector<int64_t>> histories{
          {vocab.id("the"), vocab.id("cat")},
          {vocab.id("log"), vocab.id("the")},
          {vocab.id("ran"), vocab.id("ran"), vocab.id("ran"), vocab.id("ran")},
          {}};
      for (const auto& h : histories) {
        double sum = 0;
        for (int64_t w = 0; w < vocab.size(); ++w)
          sum += std::exp(m.logprob(h.data(), h.size(), w));
        EXPECT_NEAR(sum, 1.0, 1e-9) << lm::to_string(sm) << " order " << order;
      }
      const std::string path = dir + "/m.txt";
      m.save(path);
      const auto back = lm::NGramModel::load(path);
      EXPECT_DOUBLE_EQ(back.cross_entropy(ids), m.cross_entropy(ids));
    }
  }
  // Add-δ by hand: P(sat | cat) = (c(cat sat) + δ) / (c(cat) + δV) with c(cat sat) = 1, c(cat) = 2.
  lm::NGramModel add(2, lm::Smoothing::kAddDelta, 0.5, vocab);
  add.train(ids);
  const int64_t cat = vocab.id("cat");
  EXPECT_NEAR(std::exp(add.logprob(&cat, 1, vocab.id("sat"))), 1.5 / (2 + 0.5 * vocab.size()),
              1e-12);
  // On held-out text from the same source (a seeded second-order Markov chain), Kneser–Ney
  // beats add-δ.
  std::mt19937_64 rng(5);
  std::vector<std::string> stream{"w0", "w1"};
  for (int i = 0; i < 3000; ++i) {
    const size_t a = stream[stream.size() - 2][1] - '0', b = stream.back()[1] - '0';
    const size_t next = (a * 3 + b + std::uniform_int_distribution<size_t>(0, 2)(rng)) % 10;
    stream.push_back("w" + std::to_string(next));
  }
  const std::vector<std::string> train(stream.begin(), stream.begin() + 2500);
  const std::vector<std::string> test(stream.begin() + 2500, stream.end());
  const auto v2 = data::Vocab::build(train);
  lm::NGramModel kn(3, lm::Smoothing::kKneserNey, 0, v2), ad(3, lm::Smoothing::kAddDelta, 1.0, v2);
  kn.train(lm::encode_stream(v2, train));
  ad.train(lm::encode_stream(v2, train));
  EXPECT_LT(kn.cross_entropy(lm::encode_stream(v2, test)),
            ad.cross_entropy(lm::encode_stream(v2, test)));
  EXPECT_LT(std::exp(kn.cross_entropy(lm::encode_stream(v2, test))), 3.8)
      << "the source has 3 choices per step";
  expect_message<data::DataError>([&] { lm::NGramModel::load(write(dir, "x.txt", "nope\n")); },
                                  {"x.txt:1", "not an rnnkit n-gram model"});
  EXPECT_THROW(lm::NGramModel(6, lm::Smoothing::kKneserNey, 0, vocab), std::invalid_argument);
}

TEST(Configs, EveryShippedRecipeReads) {
  // A typo in a shipped recipe (an unknown key, a wrong type, an out-of-range value) fails here,
  // not in a user's first run. Data paths are not opened: those in the data root
  // (${RNNKIT_DATA}/...) get empty stand-ins in a temporary root.
  const auto root = temp_dir("data_root");
  for (const auto& entry : fs::directory_iterator(fs::path(RNNKIT_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    const std::string text = read_all(entry.path().string());
    const std::string tag = "${RNNKIT_DATA}/";
    for (auto at = text.find(tag); at != std::string::npos; at = text.find(tag, at + 1)) {
      const auto rel = text.substr(at + tag.size(), text.find('"', at) - at - tag.size());
      fs::create_directories((fs::path(root) / rel).parent_path());
      write(root, rel, "");
    }
  }
  ::setenv("RNNKIT_DATA", root.c_str(), 1);
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(RNNKIT_SOURCE_DIR) / "configs")) {
    const auto name = entry.path().filename().string();
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(name);
    train::ConfigReader c(entry.path().string());
    if (name.rfind("lm_", 0) == 0) {
      EXPECT_NO_THROW(lm::LMConfig::read(c));
    } else if (name.rfind("sentiment_", 0) == 0) {
      EXPECT_NO_THROW(sentiment::SentimentConfig::read(c));
    } else if (name.rfind("ner_", 0) == 0) {
      EXPECT_NO_THROW(ner::NerConfig::read(c));
    } else if (name.rfind("seq2seq_", 0) == 0) {
      EXPECT_NO_THROW(seq2seq::Seq2SeqConfig::read(c));
    } else {
      continue;  // gradflow and the custom-cell example read theirs in their main.cpp
    }
    ++checked;
  }
  EXPECT_GE(checked, 15);
  ::unsetenv("RNNKIT_DATA");
}

TEST(Configs, DataRootPathsAndTheScriptThatFillsThem) {
  const auto dir = temp_dir("data_root2");
  fs::create_directories(fs::path(dir) / "configs");
  const auto path = write(dir, "configs/s.toml",
                          "[data]\ntrain = \"${RNNKIT_DATA}/sst2/stsa.binary.train\"\n"
                          "valid = \"${RNNKIT_DATA}/sst2/stsa.binary.dev\"\n");
  ::unsetenv("RNNKIT_DATA");
  {
    // Missing: the error names the key's line, the resolved path and the script.
    train::ConfigReader c(path);
    expect_message<train::ConfigError>(
        [&] { sentiment::SentimentConfig::read(c); },
        {"s.toml:2: key data.train", (fs::path(dir) / "data/sst2/stsa.binary.train").string(),
         "scripts/fetch_data.sh sst2", "scripts/fetch_data.sh --from DIR sst2"});
  }
  // Default root: data/ beside configs/.
  fs::create_directories(fs::path(dir) / "data/sst2");
  write(dir, "data/sst2/stsa.binary.train", "1 good\n0 bad\n");
  write(dir, "data/sst2/stsa.binary.dev", "1 good\n");
  {
    train::ConfigReader c(path);
    EXPECT_EQ(c.get_path("data", "train"),
              (fs::path(dir) / "data/sst2/stsa.binary.train").string());
    // The resolved config (saved with checkpoints) holds the absolute path.
    EXPECT_NE(c.resolved().find((fs::path(dir) / "data/sst2/stsa.binary.train").string()),
              std::string::npos);
  }
  // RNNKIT_DATA wins.
  const auto other = temp_dir("data_root3");
  fs::create_directories(fs::path(other) / "sst2");
  write(other, "sst2/stsa.binary.train", "1 good\n");
  ::setenv("RNNKIT_DATA", other.c_str(), 1);
  {
    train::ConfigReader c(path);
    EXPECT_EQ(c.get_path("data", "train"), (fs::path(other) / "sst2/stsa.binary.train").string());
  }
  ::unsetenv("RNNKIT_DATA");
}
