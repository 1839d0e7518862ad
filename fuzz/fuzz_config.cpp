// The TOML config reader with --set overrides, through each app's typed config. The input's
// lines that start with "--set " are overrides; the rest is the TOML file.
#include <sstream>

#include <rnnkit/train/config.h>
#include "fuzz_util.h"
#include "lm/lm.h"
#include "ner/ner.h"
#include "sentiment/sentiment.h"

using namespace rnnkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string toml, line;
  std::vector<std::string> sets;
  while (std::getline(in, line)) {
    if (line.rfind("--set ", 0) == 0)
      sets.push_back(line.substr(6));
    else
      toml += line + "\n";
  }
  const rnnkit_fuzz::MemFile file(reinterpret_cast<const uint8_t*>(toml.data()), toml.size());
  rnnkit_fuzz::expect_clean([&] {
    train::ConfigReader c(file.path(), sets);
    lm::LMConfig::read(c);
  });
  rnnkit_fuzz::expect_clean([&] {
    train::ConfigReader c(file.path(), sets);
    sentiment::SentimentConfig::read(c);
  });
  rnnkit_fuzz::expect_clean([&] {
    train::ConfigReader c(file.path(), sets);
    ner::NerConfig::read(c);
  });
  rnnkit_fuzz::expect_clean([&] {
    train::ConfigReader c(file.path(), sets);
    train::TrainOptions::read(c);
    c.resolved();
  });
  return 0;
}
