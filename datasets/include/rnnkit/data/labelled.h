#pragma once
// Labelled text for classification, in the three layouts the bundled and configured data use.
#include <string>
#include <utility>
#include <vector>

#include "rnnkit/data/text.h"

namespace rnnkit::data {

struct LabelledText {
  std::string label;
  std::string text;
  std::string origin;  ///< "file:line", for messages
};

/// `label<TAB>text` per line, or `text<TAB>label` with label_last (the UCI sentiment-labelled
/// sentences). A line without a tab, or with an empty label or text, is a DataError.
std::vector<LabelledText> read_tsv(const std::string& path, bool label_last = false,
                                   Encoding encoding = Encoding::kUtf8);
/// SST's stsa files: `label text`, the label the first whitespace-separated field.
std::vector<LabelledText> read_stsa(const std::string& path, Encoding encoding = Encoding::kUtf8);
/// One file per class (rt-polarity.pos / .neg): every non-empty line of a file has its label.
std::vector<LabelledText> read_class_files(
    const std::vector<std::pair<std::string, std::string>>& label_and_path,
    Encoding encoding = Encoding::kUtf8);

}  // namespace rnnkit::data
