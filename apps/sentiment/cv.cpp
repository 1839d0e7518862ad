// rnnkit-sentiment cv: k-fold cross-validation as a loop of fits, each fold a sub-run of the run
// dir (RUN_DIR/foldK) that resumes where it stopped.
#include "internal.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <torch/nn/functional/loss.h>

#include <rnnkit/data/batching.h>
#include <rnnkit/data/embeddings.h>
#include <rnnkit/registry.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/signals.h>

namespace rnnkit::sentiment {

using data::Vocab;
using torch::Tensor;
namespace F = torch::nn::functional;
namespace fs = std::filesystem;

using namespace internal;

double CrossValidation::mean_accuracy() const {
  return accuracy.empty()
             ? 0.0
             : std::accumulate(accuracy.begin(), accuracy.end(), 0.0) / accuracy.size();
}

double CrossValidation::std_accuracy() const {
  const double m = mean_accuracy();
  double v = 0;
  for (double a : accuracy) v += (a - m) * (a - m);
  return accuracy.size() > 1 ? std::sqrt(v / (accuracy.size() - 1)) : 0.0;
}

CrossValidation cross_validate(train::ConfigReader& config, const train::RunOptions& run) {
  SentimentConfig c = SentimentConfig::read(config);
  const bool select = c.valid_fraction > 0;
  if (!select && (c.train.early_stopping > 0 || c.train.schedule == "plateau")) {
    // Without a validation part both would look at the held-out fold, which must stay unseen.
    fmt::print(stderr,
               "cv: data.valid_fraction = 0, so early_stopping and schedule = \"plateau\" are "
               "turned off: they would select on the test fold\n");
    c.train.early_stopping = 0;
    if (c.train.schedule == "plateau") c.train.schedule = "none";
  }
  const torch::Device device = train::setup_runtime(run, c.train.seed);
  if (c.phrases) {
    // Folds of phrases would put parts of a test sentence in training.
    throw train::ConfigError(config.path() +
                             ": cv splits sentences into folds; set data.phrases = \"roots\"");
  }
  const auto all = c.read(c.train_paths);
  warn_rare_labels(all);
  auto fold = [&](int64_t k) {  // {train, test}
    return data::fold_split(all, c.folds, k, static_cast<uint64_t>(c.train.seed));
  };
  // Every fold is checked before the first trains: a fold that cannot work fails now, not
  // after hours, and leaves nothing on disk.
  if (static_cast<int64_t>(all.size()) < 2 * c.folds) {
    throw train::ConfigError(c.train_paths.front() + ": " + std::to_string(all.size()) +
                             " examples are too few for " + std::to_string(c.folds) +
                             "-fold cross-validation (data.folds); at least " +
                             std::to_string(2 * c.folds) + " are needed");
  }
  for (int64_t k = 0; k < c.folds; ++k) {
    const auto [train, test] = fold(k);
    const auto fit_part = select ? data::hold_out(train, c.valid_fraction,
                                                  static_cast<uint64_t>(c.train.seed + k + 1))
                                       .first
                                 : train;
    if (fit_part.empty()) {
      throw train::ConfigError(
          fmt::format("fold {}: no training examples left after data.valid_fraction = {}", k + 1,
                      c.valid_fraction));
    }
    const auto labels = sorted_labels(fit_part);
    if (labels.size() < 2) {
      throw train::ConfigError(
          fmt::format("fold {}: its training part holds only the label '{}'; a classifier "
                      "needs two classes (more examples, or fewer folds)",
                      k + 1, labels.front()));
    }
    for (const auto& e : test) {
      if (!std::binary_search(labels.begin(), labels.end(), e.label)) {
        throw data::DataError(
            e.origin, 0,
            fmt::format("label '{}' falls in test fold {} but not in its training "
                        "part; every class needs examples in every fold (fewer "
                        "folds, or more examples of '{}')",
                        e.label, k + 1, e.label));
      }
    }
  }
  CrossValidation cv;
  for (int64_t k = 0; k < c.folds; ++k) {
    const auto [train, test] = fold(k);
    const train::RunOptions fold_run = train::sub_run(run, "fold" + std::to_string(k + 1));
    ClassificationReport r;
    if (select) {
      // Model selection (best epoch, early stopping, plateau) on a part of the fold's training
      // data; the test fold is scored once, by the selected checkpoint.
      const auto [fit_part, valid_part] =
          data::hold_out(train, c.valid_fraction, static_cast<uint64_t>(c.train.seed + k + 1));
      const auto fit = fit_split(c, fit_part, valid_part, fold_run, device, config.resolved());
      if (fit.interrupted) {
        cv.interrupted = true;
        cv.signal = fit.signal;
        return cv;
      }
      std::vector<Loaded> best{load_model(train::best_checkpoint(fold_run), device)};
      r = evaluate_examples(best, test, device);
    } else {
      const auto fit = fit_split(c, train, test, fold_run, device, config.resolved());
      if (fit.interrupted) {
        cv.interrupted = true;
        cv.signal = fit.signal;
        return cv;
      }
      r.accuracy = fit.last.get("val_accuracy");
      r.macro_f1 = fit.last.get("val_macro_f1");
    }
    cv.accuracy.push_back(r.accuracy);
    cv.macro_f1.push_back(r.macro_f1);
    if (!run.quiet) {
      fmt::print(stderr, "fold {}/{}: accuracy {:.2f}%\n", k + 1, c.folds,
                 100 * cv.accuracy.back());
    }
  }
  return cv;
}

}  // namespace rnnkit::sentiment
