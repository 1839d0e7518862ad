// rnnkit-sentiment's predictions: a loaded checkpoint (or an ensemble of them) classifying texts
// for the CLI, the server and Python, their JSON, and evaluation.
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

Tensor Loaded::probabilities(const std::vector<std::string>& texts, const torch::Device& device) {
  std::vector<std::vector<int64_t>> x;
  for (const auto& t : texts) {
    auto ids = vocab.encode(config.tokenize(t));
    if (ids.empty()) ids.push_back(Vocab::kUnk);  // an empty line still gets an answer
    x.push_back(std::move(ids));
  }
  return predict_probs(*model, x, device);
}

Loaded load_model(const std::string& checkpoint, const torch::Device& device) {
  auto saved = train::open_saved_run(checkpoint, "sentiment");
  Loaded m;
  m.config = SentimentConfig::read(saved.config);
  m.vocab = Vocab::from_string(train::get_string(saved.task, "vocab"), checkpoint + "#vocab");
  std::istringstream labels(train::get_string(saved.task, "labels"));
  for (std::string l; std::getline(labels, l);) m.labels.push_back(l);
  m.model =
      Classifier(m.config.model_options(m.vocab.size(), static_cast<int64_t>(m.labels.size())));
  train::load_weights(*m.model, saved.model, checkpoint);
  train::check_finite(*m.model, checkpoint);
  m.model->to(device);
  m.model->eval();
  return m;
}

std::vector<Loaded> load_models(const std::vector<std::string>& checkpoints,
                                const torch::Device& device) {
  TORCH_CHECK(!checkpoints.empty(), "load_models: expected at least one checkpoint");
  std::vector<Loaded> models;
  for (const auto& path : checkpoints) {
    models.push_back(load_model(path, device));
    if (models.back().labels != models.front().labels) {
      throw train::CheckpointError(
          fmt::format("{}: labels {}, but {} has {}; an ensemble needs the same labels", path,
                      fmt::join(models.back().labels, ","), checkpoints.front(),
                      fmt::join(models.front().labels, ",")));
    }
  }
  return models;
}

Tensor ensemble_probabilities(std::vector<Loaded>& models, const std::vector<std::string>& texts,
                              const torch::Device& device) {
  TORCH_CHECK(!models.empty(), "ensemble_probabilities: expected at least one model");
  Tensor sum = models.front().probabilities(texts, device);
  for (size_t i = 1; i < models.size(); ++i) sum = sum + models[i].probabilities(texts, device);
  return sum / static_cast<double>(models.size());
}

train::Json classification_json(const std::string& text, const torch::Tensor& probabilities,
                                const std::vector<std::string>& labels) {
  TORCH_CHECK(
      probabilities.dim() == 1 && probabilities.size(0) == static_cast<int64_t>(labels.size()),
      "classification_json: expected probabilities [", labels.size(), "], got ",
      probabilities.sizes());
  const auto p = probabilities.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* q = p.data_ptr<double>();
  train::Json by_label = train::Json::object();
  size_t best = 0;
  for (size_t c = 0; c < labels.size(); ++c) {
    by_label[labels[c]] = q[c];
    if (q[c] > q[best]) best = c;
  }
  return {{"text", text}, {"label", labels[best]}, {"probabilities", by_label}};
}

std::vector<train::Json> classify_json(std::vector<Loaded>& models,
                                       const std::vector<std::string>& texts,
                                       const torch::Device& device) {
  const auto probs = ensemble_probabilities(models, texts, device).cpu();
  std::vector<train::Json> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    out.push_back(
        classification_json(texts[i], probs[static_cast<int64_t>(i)], models.front().labels));
  }
  return out;
}

namespace internal {

ClassificationReport evaluate_examples(std::vector<Loaded>& models,
                                       const std::vector<data::LabelledText>& examples,
                                       const torch::Device& device) {
  TORCH_CHECK(!models.empty(), "evaluate: expected at least one model");
  const Loaded& m = models.front();
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < m.labels.size(); ++i) index[m.labels[i]] = static_cast<int64_t>(i);
  std::vector<std::string> texts;
  std::vector<int64_t> gold;
  for (const auto& e : examples) {
    const auto it = index.find(e.label);
    if (it == index.end())
      throw data::DataError(e.origin, 0, "label '" + e.label + "' is not one of the model's");
    texts.push_back(e.text);
    gold.push_back(it->second);
  }
  return train::classification_report(
      gold, predicted_classes(ensemble_probabilities(models, texts, device)),
      static_cast<int64_t>(m.labels.size()));
}

}  // namespace internal

ClassificationReport evaluate(Loaded& m, const std::vector<std::string>& paths,
                              const torch::Device& device) {
  std::vector<Loaded> one{m};
  return evaluate(one, paths, device);
}

ClassificationReport evaluate(std::vector<Loaded>& models, const std::vector<std::string>& paths,
                              const torch::Device& device) {
  TORCH_CHECK(!models.empty(), "evaluate: expected at least one model");
  return evaluate_examples(models, models.front().config.read(paths), device);
}

}  // namespace rnnkit::sentiment
