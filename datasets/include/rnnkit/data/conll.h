#pragma once
// CoNLL column files and entity tag schemes.
#include <string>
#include <vector>

#include "rnnkit/data/text.h"

namespace rnnkit::data {

struct ConllOptions {
  int token_column = 0;  ///< 0-based
  int tag_column = -1;   ///< 0-based; negative counts from the end (-1: the last column)
  Encoding encoding = Encoding::kUtf8;
  bool has_tags = true;  ///< false: only the token column is required; tags stay empty
};

struct TaggedSentence {
  std::vector<std::string> tokens;
  std::vector<std::string> tags;
  size_t line = 0;                 ///< the line of the first token, for messages
  std::vector<std::string> lines;  ///< each token's line as read, to echo it with a prediction
};

/// Reads a CoNLL column file. Sentences are separated by blank or whitespace-only lines;
/// -DOCSTART- lines (and the break after them) are document markers, not sentences. Columns are
/// split on tabs when the line has one (tokens may then contain spaces), otherwise on
/// whitespace. CRLF works. A line with too few columns, or an empty file, is a DataError.
std::vector<TaggedSentence> read_conll(const std::string& path, const ConllOptions& options = {});

/// Entity tag schemes. IOB1: I-X starts an entity unless it follows X, B-X only splits two
/// adjacent X entities (CoNLL-2003). IOB2 (BIO): every entity starts with B-X. IOBES: S-X for
/// single tokens, E-X ends. IO: no boundaries. "O" is outside in all of them.
enum class TagScheme { kIOB1, kIOB2, kIOBES, kIO };
TagScheme parse_tag_scheme(const std::string& name);  ///< iob1, iob2 (or bio), iobes, io
std::string to_string(TagScheme scheme);

struct Span {
  size_t start, end;  ///< token range [start, end)
  std::string type;
  bool operator==(const Span& o) const {
    return start == o.start && end == o.end && type == o.type;
  }
};

/// Checks that every tag is "O" or PREFIX-TYPE with a prefix of the scheme; returns the index
/// of the first bad tag, or -1.
int64_t first_tag_outside_scheme(const std::vector<std::string>& tags, TagScheme scheme);
/// The entities of a tag sequence, decoded leniently as conlleval does (an I-X after O or after
/// another type starts an entity).
std::vector<Span> tags_to_spans(const std::vector<std::string>& tags, TagScheme scheme);
std::vector<std::string> spans_to_tags(const std::vector<Span>& spans, size_t length,
                                       TagScheme scheme);
/// Converts a tag sequence between schemes (through its spans).
std::vector<std::string> convert_tags(const std::vector<std::string>& tags, TagScheme from,
                                      TagScheme to);
/// Whether `tag` may directly follow `prev` in `scheme`; an empty `prev` is the sentence start
/// and an empty `tag` its end. IOB2 forbids I-X after anything but B-X or I-X; IOB1 forbids
/// B-X after anything but I-X or B-X; IOBES also forbids O, B-, S- or the end after B- or I-,
/// and I-X or E-X after anything but B-X or I-X. IO allows everything.
bool allowed_transition(const std::string& prev, const std::string& tag, TagScheme scheme);
/// The scheme of a corpus, and why: IOBES if S-/E- occur, else IOB1 if some entity starts
/// with I- and B- occurs, else IOB2 if B- occurs, else IO. A file that fits none (E-/S- tags and
/// entities that start with I-) is a DataError naming both lines of `path`.
struct SchemeGuess {
  TagScheme scheme;
  std::string reason;
};
SchemeGuess guess_tag_scheme(const std::vector<TaggedSentence>& sentences, const std::string& path);
TagScheme detect_tag_scheme(const std::vector<TaggedSentence>& sentences);
/// Throws DataError naming the file and the line of the first tag outside `scheme`, or of the
/// first transition the scheme forbids (allowed_transition), such as I-X after O in IOB2 or a
/// sentence that ends inside an IOBES entity. IOB1 and IO have no transition to forbid here (a
/// B-X after O starts an entity, as conlleval reads it).
void check_tags(const std::vector<TaggedSentence>& sentences, TagScheme scheme,
                const std::string& path);
/// The index of the first tag whose transition from the previous one `scheme` forbids
/// (tags.size() for a forbidden end), or -1; always -1 for IOB1 and IO.
int64_t first_invalid_transition(const std::vector<std::string>& tags, TagScheme scheme);
/// Rewrites sentences with forbidden transitions as conlleval would read them (tags_to_spans,
/// then spans_to_tags in the same scheme); returns how many tags changed.
int64_t repair_tags(std::vector<TaggedSentence>& sentences, TagScheme scheme);

}  // namespace rnnkit::data
