#pragma once
// What rnnkit-sentiment's training (task.cpp), predictions (predict.cpp) and cross-validation
// (cv.cpp) share. Not installed; the app's public face is sentiment.h.
#include <string>
#include <vector>

#include "sentiment.h"

namespace rnnkit::sentiment::internal {

/// A label that hardly occurs is most likely a typo that would silently add a class: warned.
void warn_rare_labels(const std::vector<data::LabelledText>& examples);
/// The distinct labels of `examples`, sorted: the classes, in their order.
std::vector<std::string> sorted_labels(const std::vector<data::LabelledText>& examples);
/// Class probabilities of encoded texts, in batches, in their order.
torch::Tensor predict_probs(ClassifierImpl& model, const std::vector<std::vector<int64_t>>& x,
                            const torch::Device& device);
/// The most probable class of each row.
std::vector<int64_t> predicted_classes(const torch::Tensor& probs);
/// Builds the vocabulary and model from `train`, and fits with `valid` as validation (after
/// pretraining in the sub-run RUN_DIR/pretrain, when [pretrain] asks for it).
train::FitResult fit_split(const SentimentConfig& c, const std::vector<data::LabelledText>& train,
                           const std::vector<data::LabelledText>& valid,
                           const train::RunOptions& run, const torch::Device& device,
                           const std::string& config_text);
/// The report of `models`' (averaged) predictions on labelled examples.
ClassificationReport evaluate_examples(std::vector<Loaded>& models,
                                       const std::vector<data::LabelledText>& examples,
                                       const torch::Device& device);

}  // namespace rnnkit::sentiment::internal
