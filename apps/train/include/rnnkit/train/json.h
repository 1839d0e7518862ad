#pragma once
// JSON output through nlohmann-json: keys in insertion order, one object per line, strings
// always valid UTF-8 (invalid bytes in user text become U+FFFD, never copied raw), and no
// non-finite number ever printed as null: a metric that is NaN or infinite is an error.
#include <ostream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace rnnkit::train {

using Json = nlohmann::ordered_json;

/// A NaN or infinite number in JSON output; what() names its key.
class NonFiniteMetric : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// `j` as one line of text; throws NonFiniteMetric for a NaN or infinite number anywhere in it.
std::string json_line(const Json& j);
/// Writes json_line(j) and a newline to `out`, and flushes (so that a pipe sees it at once).
void print_json(std::ostream& out, const Json& j);

}  // namespace rnnkit::train
