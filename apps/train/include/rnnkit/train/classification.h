#pragma once
// Classification metrics as scikit-learn's classification_report gives them: precision, recall,
// F1 and support per class, accuracy, and the macro and support-weighted averages; plus the
// confusion matrix. The text layout is classification_report's; to_json has the same numbers.
#include <cstdint>
#include <string>
#include <vector>

#include "json.h"

namespace rnnkit::train {

struct ClassificationReport {
  std::vector<double> precision, recall,
      f1;                        ///< per class (0 where undefined, as sklearn's zero_division=0)
  std::vector<int64_t> support;  ///< gold examples per class
  double accuracy = 0;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  double weighted_precision = 0, weighted_recall = 0, weighted_f1 = 0;
  std::vector<std::vector<int64_t>> confusion;  ///< rows: gold, columns: predicted
  int64_t total() const;
};

/// The report of `predicted` against `gold`, both class indices below `num_classes`.
ClassificationReport classification_report(const std::vector<int64_t>& gold,
                                           const std::vector<int64_t>& predicted,
                                           int64_t num_classes);

/// classification_report's table (4 digits), then the confusion matrix.
std::string format_report(const ClassificationReport& r, const std::vector<std::string>& labels);
/// {"accuracy", "macro_f1", "labels", "classes": {label: {precision, recall, f1, support}},
///  "macro avg", "weighted avg", "confusion"}. "macro avg" has "absent_classes": the classes
///  with no example in the file, each of which counts as 0 in the macro average.
Json to_json(const ClassificationReport& r, const std::vector<std::string>& labels);

}  // namespace rnnkit::train
