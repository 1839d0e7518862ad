#pragma once
// A vocabulary: tokens <-> ids, with the special tokens every app shares.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace rnnkit::data {

class Vocab {
 public:
  static constexpr int64_t kPad = 0, kUnk = 1, kBos = 2, kEos = 3;
  static const std::vector<std::string>& specials();  ///< <pad>, <unk>, <bos>, <eos>

  /// Only the special tokens.
  Vocab();

  /// Counts `tokens` and keeps those seen at least `min_count` times, most frequent first, ties
  /// broken by the token's bytes (deterministic). `max_size` (0: no limit) caps the whole
  /// vocabulary, specials included. Special tokens in the input are not counted twice.
  static Vocab build(const std::vector<std::string>& tokens, size_t max_size = 0,
                     int64_t min_count = 1);
  /// The same from several token lists (sentences, documents).
  static Vocab build(const std::vector<std::vector<std::string>>& sequences, size_t max_size = 0,
                     int64_t min_count = 1);

  int64_t size() const { return static_cast<int64_t>(itos_.size()); }
  bool contains(const std::string& token) const { return stoi_.count(token) > 0; }
  /// The id of a token, or kUnk.
  int64_t id(const std::string& token) const;
  const std::string& token(int64_t id) const;  ///< throws std::out_of_range

  std::vector<int64_t> encode(const std::vector<std::string>& tokens) const;
  std::vector<std::string> decode(const std::vector<int64_t>& ids) const;

  /// Text, one token per line, in id order; the first line is a header naming the format.
  void save(const std::string& path) const;
  /// Reads what save() wrote; errors name the file and the line.
  static Vocab load(const std::string& path);
  /// The same in memory (checkpoints embed vocabularies).
  std::string to_string() const;
  static Vocab from_string(const std::string& text, const std::string& origin = "<string>");

  bool operator==(const Vocab& other) const { return itos_ == other.itos_; }

 private:
  void add(const std::string& token);
  std::vector<std::string> itos_;
  std::unordered_map<std::string, int64_t> stoi_;
};

}  // namespace rnnkit::data
