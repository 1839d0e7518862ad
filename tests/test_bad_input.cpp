// Input that used to be accepted silently gets an error naming the file, line or field: text
// readers (NUL bytes, directories, long lines, what is not a regular file, byte-order marks and
// UTF-16), fuzz findings, config messages, tag schemes, rare labels and unknown words,
// cross-validation folds, reports and vectors; and long lines are scored in chunks.
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

TEST(BadInput, LongLinesAreScoredInChunksWithTheSameResult) {
  const auto dir = temp_dir("score");
  train::ConfigReader c(tiny_lm_config(dir));
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

TEST(BadInput, TextReadersRefuseNulBytesAndDirectories) {
  const auto dir = temp_dir("nul");
  const auto path = write_file(dir, "nul.txt", std::string("fine\nbad\0line\n", 14));
  expect_message<data::DataError>([&] { data::read_text(path); },
                                  {"nul.txt:2", "NUL byte at byte 4"});
  expect_message<data::DataError>([&] { data::LineReader r(dir); },
                                  {"is a directory; expected a text file"});
  const auto conll = write_file(dir, "nul.conll", std::string("a O\nb\0 O\n", 10));
  expect_message<data::DataError>([&] { data::read_conll(conll); }, {"nul.conll:2", "NUL byte"});
}

TEST(BadInput, FuzzFindingsStayFixed) {
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

TEST(BadInput, ConfigMessagesSayWhatIsWrong) {
  const auto dir = temp_dir("configmsg");
  train::ConfigReader no_level(write_file(dir, "a.toml", "[data]\ntrain = \"t\"\nvalid = \"v\"\n"));
  expect_message<train::ConfigError>([&] { lm::LMConfig::read(no_level); },
                                     {"missing required key data.level", "char, word"});
  expect_message<train::ConfigError>(
      [&] { train::ConfigReader(write_file(dir, "empty.toml", "")); },
      {"empty.toml", "the config is empty"});
  expect_message<train::ConfigError>([&] { train::ConfigReader r(dir); }, {"is a directory"});
  train::ConfigReader seed(tiny_lm_config(dir), {"train.seed=-5"});
  seed.set_origin("train.seed", "--seed");
  expect_message<train::ConfigError>([&] { lm::LMConfig::read(seed); },
                                     {"--seed: must be in [0, inf], got -5"});
}

TEST(BadInput, TagSchemesAreCheckedNotSilentlyRepaired) {
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

TEST(BadInput, RareLabelsAndUnknownWordsGetWarnings) {
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

TEST(BadInput, CrossValidationChecksEveryFoldBeforeTraining) {
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

TEST(BadInput, ALineLongerThanTheLimitIsRefusedWithoutReadingItWhole) {
  const auto dir = temp_dir("longline");
  const auto path = write_file(dir, "long.txt", "short\n" + std::string(5000, 'a') + "\nend\n");
  data::set_max_line_bytes(1000);
  expect_message<data::DataError>([&] { data::read_text(path); },
                                  {"long.txt:2", "longer than the limit of 1000 bytes",
                                   "data.max_line_bytes", "--max-line-bytes"});
  data::set_max_line_bytes(data::kDefaultMaxLineBytes);
  EXPECT_EQ(data::read_text(path).size(), 6u + 5001u + 4u);
  // The limit comes from the config, and is range-checked there.
  const auto config = tiny_lm_config(dir);
  train::ConfigReader c(config, {"data.max_line_bytes=0"});
  expect_message<train::ConfigError>(
      [&] { c.get_int("data", "max_line_bytes", 1, 1, int64_t{1} << 30); },
      {"--set data.max_line_bytes", "must be in [1, 1073741824], got 0"});
}

TEST(BadInput, WhatIsNotARegularFileIsRefusedBeforeItIsRead) {
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

TEST(BadInput, AByteOrderMarkIsDroppedAndUtf16IsNamed) {
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

TEST(BadInput, ReportsAndVectorsSayWhatIsWrong) {
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
