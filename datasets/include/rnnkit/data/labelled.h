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
/// The Stanford Sentiment Treebank's own files (train.txt, dev.txt): one binarized parse tree per
/// line, `(label left right)` or `(label word)`, a label 0-4 at every node. Tokens are split on
/// ASCII space and parentheses only (a few contain U+00A0), and the PTB escapes are undone
/// (-LRB- -> "(", -RRB- -> ")", -LSB-/-RSB-, -LCB-/-RCB-, \/ -> "/", \* -> "*"); the text of a
/// phrase is its tokens joined by spaces.
struct SSTOptions {
  /// false: the root sentence of every tree; true: every node, deduplicated by text (the first
  /// occurrence is kept; SST labels each distinct phrase once, so duplicates agree).
  bool phrases = false;
  /// true: SST-2 labels, 0-1 -> "0", 3-4 -> "1", neutral nodes (2) dropped; false: "0".."4".
  bool binary = true;
};
/// Malformed trees are a DataError naming file:line:column and what was expected.
std::vector<LabelledText> read_sst_trees(const std::string& path, const SSTOptions& options = {},
                                         Encoding encoding = Encoding::kUtf8);

/// One file per class (rt-polarity.pos / .neg): every non-empty line of a file has its label.
std::vector<LabelledText> read_class_files(
    const std::vector<std::pair<std::string, std::string>>& label_and_path,
    Encoding encoding = Encoding::kUtf8);

}  // namespace rnnkit::data
