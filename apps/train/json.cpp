#include <rnnkit/train/json.h>

#include <cmath>

namespace rnnkit::train {
namespace {

void check_finite(const Json& j, const std::string& path) {
  if (j.is_number_float()) {
    const double v = j.get<double>();
    if (!std::isfinite(v)) {
      throw NonFiniteMetric(
          "'" + path + "' is " + (std::isnan(v) ? "NaN" : "infinite") +
          "; the model produces non-finite values (a damaged checkpoint, or a run that "
          "diverged)");
    }
  } else if (j.is_object()) {
    for (const auto& [k, v] : j.items()) check_finite(v, path.empty() ? k : path + "." + k);
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) check_finite(j[i], path + "[" + std::to_string(i) + "]");
  }
}

}  // namespace

std::string json_line(const Json& j) {
  check_finite(j, "");
  return j.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

void print_json(std::ostream& out, const Json& j) {
  out << json_line(j) << '\n';
  out.flush();
}

}  // namespace rnnkit::train
