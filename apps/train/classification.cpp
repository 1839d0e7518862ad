#include <rnnkit/train/classification.h>

#include <algorithm>
#include <numeric>
#include <sstream>

#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <fmt/ranges.h>

namespace rnnkit::train {

int64_t ClassificationReport::total() const {
  return std::accumulate(support.begin(), support.end(), int64_t{0});
}

ClassificationReport classification_report(const std::vector<int64_t>& gold,
                                           const std::vector<int64_t>& predicted, int64_t C) {
  TORCH_CHECK(gold.size() == predicted.size(), "classification_report: ", gold.size(),
              " gold labels, ", predicted.size(), " predictions");
  ClassificationReport r;
  r.confusion.assign(static_cast<size_t>(C), std::vector<int64_t>(static_cast<size_t>(C), 0));
  int64_t correct = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    TORCH_CHECK(gold[i] >= 0 && gold[i] < C && predicted[i] >= 0 && predicted[i] < C,
                "classification_report: class index outside [0, ", C, ")");
    ++r.confusion[static_cast<size_t>(gold[i])][static_cast<size_t>(predicted[i])];
    correct += gold[i] == predicted[i];
  }
  r.accuracy = gold.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(gold.size());
  const double n = static_cast<double>(gold.size());
  for (size_t k = 0; k < static_cast<size_t>(C); ++k) {
    int64_t gold_k = 0, pred_k = 0;
    for (size_t j = 0; j < static_cast<size_t>(C); ++j)
      gold_k += r.confusion[k][j], pred_k += r.confusion[j][k];
    const auto tp = static_cast<double>(r.confusion[k][k]);
    const double p = pred_k ? tp / static_cast<double>(pred_k) : 0.0;
    const double rec = gold_k ? tp / static_cast<double>(gold_k) : 0.0;
    const double f1 = p + rec > 0 ? 2 * p * rec / (p + rec) : 0.0;
    r.precision.push_back(p);
    r.recall.push_back(rec);
    r.f1.push_back(f1);
    r.support.push_back(gold_k);
    const double w = n > 0 ? static_cast<double>(gold_k) / n : 0.0;
    r.weighted_precision += w * p;
    r.weighted_recall += w * rec;
    r.weighted_f1 += w * f1;
  }
  auto mean = [&](const std::vector<double>& v) {
    return C ? std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(C) : 0.0;
  };
  r.macro_precision = mean(r.precision);
  r.macro_recall = mean(r.recall);
  r.macro_f1 = mean(r.f1);
  return r;
}

namespace {
/// The classes with no example in the file: each counts as 0 in the macro average.
std::vector<std::string> absent_classes(const ClassificationReport& r,
                                        const std::vector<std::string>& labels) {
  std::vector<std::string> absent;
  for (size_t k = 0; k < labels.size(); ++k) {
    if (r.support[k] == 0) absent.push_back(labels[k]);
  }
  return absent;
}
}  // namespace

std::string format_report(const ClassificationReport& r, const std::vector<std::string>& labels) {
  // sklearn's layout: the first column as wide as the longest label or "weighted avg" and a
  // space, then " {:>9}" per column; blank lines after the header and before accuracy.
  size_t width = std::string("weighted avg").size();
  for (const auto& l : labels) width = std::max(width, l.size());
  auto row = [&](const std::string& name, double p, double rec, double f1, int64_t support) {
    return fmt::format("{:>{}}  {:>9.4f} {:>9.4f} {:>9.4f} {:>9}\n", name, width, p, rec, f1,
                       support);
  };
  std::ostringstream os;
  os << fmt::format("{:>{}}  {:>9} {:>9} {:>9} {:>9}\n\n", "", width, "precision", "recall",
                    "f1-score", "support");
  for (size_t k = 0; k < labels.size(); ++k)
    os << row(labels[k], r.precision[k], r.recall[k], r.f1[k], r.support[k]);
  const int64_t n = r.total();
  os << "\n"
     << fmt::format("{:>{}}  {:>9} {:>9} {:>9.4f} {:>9}\n", "accuracy", width, "", "", r.accuracy,
                    n);
  os << row("macro avg", r.macro_precision, r.macro_recall, r.macro_f1, n);
  os << row("weighted avg", r.weighted_precision, r.weighted_recall, r.weighted_f1, n);
  // sklearn warns too: a class with no example scores 0 and pulls the macro average down.
  const auto absent = absent_classes(r, labels);
  if (!absent.empty()) {
    os << fmt::format(
        "\nnote: {} class(es) have no example in this file ({}{}); each counts as 0 in the macro "
        "average\n",
        absent.size(),
        fmt::join(absent.begin(), absent.begin() + std::min<size_t>(absent.size(), 10), ", "),
        absent.size() > 10 ? ", ..." : "");
  }
  // A 1,000-class matrix is megabytes of text: --json keeps it whole.
  constexpr size_t kMostClassesShown = 30;
  if (labels.size() > kMostClassesShown) {
    os << fmt::format(
        "\nconfusion matrix: not shown for {} classes (more than {}); --json has it\n",
        labels.size(), kMostClassesShown);
    return os.str();
  }
  os << "\nconfusion matrix (rows: gold, columns: predicted)\n"
     << fmt::format("{:>{}} ", "", width);
  for (const auto& l : labels) os << fmt::format(" {:>9}", l);
  os << "\n";
  for (size_t k = 0; k < labels.size(); ++k) {
    os << fmt::format("{:>{}} ", labels[k], width);
    for (const auto v : r.confusion[k]) os << fmt::format(" {:>9}", v);
    os << "\n";
  }
  return os.str();
}

Json to_json(const ClassificationReport& r, const std::vector<std::string>& labels) {
  Json classes = Json::object();
  for (size_t k = 0; k < labels.size(); ++k) {
    classes[labels[k]] = {{"precision", r.precision[k]},
                          {"recall", r.recall[k]},
                          {"f1", r.f1[k]},
                          {"support", r.support[k]}};
  }
  return {{"accuracy", r.accuracy},
          {"macro_f1", r.macro_f1},
          {"labels", labels},
          {"classes", classes},
          {"macro avg",
           {{"precision", r.macro_precision},
            {"recall", r.macro_recall},
            {"f1", r.macro_f1},
            {"support", r.total()},
            {"absent_classes", absent_classes(r, labels)}}},
          {"weighted avg",
           {{"precision", r.weighted_precision},
            {"recall", r.weighted_recall},
            {"f1", r.weighted_f1},
            {"support", r.total()}}},
          {"confusion", r.confusion}};
}

}  // namespace rnnkit::train
