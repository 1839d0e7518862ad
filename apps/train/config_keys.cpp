#include <rnnkit/train/config.h>
#include <rnnkit/train/config_keys.h>

#include <cmath>
#include <stdexcept>
#include <utility>

#include <fmt/core.h>
#include <fmt/format.h>

namespace rnnkit::train {

namespace {
Key make(std::string section, std::string name, Key::Type type, std::string help) {
  Key k;
  k.section = std::move(section);
  k.name = std::move(name);
  k.type = type;
  k.help = std::move(help);
  return k;
}

std::string number_text(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:g}", v);
}

std::string escaped(std::string s) {
  // A | inside a cell would end it.
  for (size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
  return s;
}
}  // namespace

Key flag(std::string section, std::string name, bool fallback, std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kBool, std::move(help));
  k.fallback = fallback;
  return k;
}

Key integer(std::string section, std::string name, int64_t fallback, int64_t min, int64_t max,
            std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kInt, std::move(help));
  k.fallback = fallback;
  k.min = static_cast<double>(min);
  k.max = max == INT64_MAX ? std::numeric_limits<double>::infinity() : static_cast<double>(max);
  return k;
}

Key number(std::string section, std::string name, double fallback, double min, double max,
           std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kNumber, std::move(help));
  k.fallback = fallback;
  k.min = min;
  k.max = max;
  return k;
}

Key text(std::string section, std::string name, std::string fallback, std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kString, std::move(help));
  if (!fallback.empty()) k.fallback = std::move(fallback);
  return k;
}

Key choice(std::string section, std::string name, std::string fallback,
           std::vector<std::string> choices, std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kChoice, std::move(help));
  k.required = fallback.empty();
  if (!fallback.empty()) k.fallback = std::move(fallback);
  k.choices = std::move(choices);
  return k;
}

Key path(std::string section, std::string name, bool required, std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kPath, std::move(help));
  k.required = required;
  return k;
}

Key paths(std::string section, std::string name, bool required, std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kPaths, std::move(help));
  k.required = required;
  return k;
}

Key strings(std::string section, std::string name, std::string help) {
  return make(std::move(section), std::move(name), Key::Type::kStrings, std::move(help));
}

Key integers(std::string section, std::string name, std::vector<int64_t> fallback, int64_t min,
             int64_t max, std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kInts, std::move(help));
  k.fallback = std::move(fallback);
  k.min = static_cast<double>(min);
  k.max = max == INT64_MAX ? std::numeric_limits<double>::infinity() : static_cast<double>(max);
  return k;
}

Key cell(std::string section, std::string name, std::string fallback, std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kCell, std::move(help));
  k.fallback = std::move(fallback);
  return k;
}

Key table(std::string section, std::string name, std::string help) {
  return make(std::move(section), std::move(name), Key::Type::kTable, std::move(help));
}

Key encoding(std::string section, std::string name, std::string help) {
  Key k = make(std::move(section), std::move(name), Key::Type::kEncoding, std::move(help));
  k.fallback = std::string("utf8");
  k.choices = {"utf8", "latin1", "cp1252"};
  return k;
}

Key shown(Key key, std::string shown) {
  key.shown_default = std::move(shown);
  return key;
}

const char* Key::type_name() const {
  switch (type) {
    case Type::kBool:
      return "boolean";
    case Type::kInt:
      return "integer";
    case Type::kNumber:
      return "number";
    case Type::kString:
      return "string";
    case Type::kChoice:
      return "string";
    case Type::kPath:
      return "path";
    case Type::kPaths:
      return "path or list of paths";
    case Type::kStrings:
      return "list of strings";
    case Type::kInts:
      return "list of integers";
    case Type::kCell:
      return "cell name";
    case Type::kTable:
      return "table";
    case Type::kEncoding:
      return "string";
  }
  return "?";
}

std::string Key::default_text() const {
  if (!shown_default.empty()) return shown_default;
  return std::visit(
      [&](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return required ? "(required)" : "(none)";
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return std::to_string(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return number_text(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return "`\"" + v + "\"`";
        } else {
          return fmt::format("`[{}]`", fmt::join(v, ", "));
        }
      },
      fallback);
}

std::string Key::allowed_text() const {
  switch (type) {
    case Type::kInt:
    case Type::kInts: {
      auto i = [](double v) { return std::to_string(static_cast<int64_t>(v)); };
      if (std::isinf(max)) return "≥ " + i(min);
      return i(min) + " to " + i(max);
    }
    case Type::kNumber:
      if (std::isinf(max)) return "≥ " + number_text(min);
      return number_text(min) + " to " + number_text(max);
    case Type::kChoice:
    case Type::kEncoding: {
      std::string s;
      for (const auto& c : choices) s += (s.empty() ? "" : ", ") + ("`" + c + "`");
      return s;
    }
    case Type::kCell:
      return "a registered cell";
    default:
      return "";
  }
}

Key Key::in(const std::string& other_section) const {
  Key k = *this;
  k.section = other_section;
  return k;
}

KeyTable::KeyTable(std::vector<Key> keys) : keys_(std::move(keys)) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (keys_[i].dotted() == keys_[j].dotted())
        throw std::logic_error("config key " + keys_[i].dotted() + " is declared twice");
    }
  }
}

bool KeyTable::has(const std::string& section, const std::string& name) const {
  for (const auto& k : keys_) {
    if (k.section == section && k.name == name) return true;
  }
  return false;
}

const Key& KeyTable::at(const std::string& section, const std::string& name) const {
  for (const auto& k : keys_) {
    if (k.section == section && k.name == name) return k;
  }
  throw std::logic_error("config key " + section + "." + name +
                         " is read but not declared in its app's key table");
}

KeyTable KeyTable::with(const KeyTable& more) const {
  std::vector<Key> all = keys_;
  all.insert(all.end(), more.keys_.begin(), more.keys_.end());
  return KeyTable(std::move(all));
}

std::string KeyTable::markdown() const {
  std::string out = "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
  for (const auto& k : keys_) {
    out += fmt::format("| `{}` | {} | {} | {} | {} |\n", k.dotted(), k.type_name(),
                       escaped(k.default_text()), escaped(k.allowed_text()), escaped(k.help));
  }
  return out;
}

std::string KeyTable::help_text() const {
  std::string out;
  for (const auto& k : keys_) {
    const std::string a = k.allowed_text();
    std::string line =
        fmt::format("  {} ({}, default {}{}){}{}\n", k.dotted(), k.type_name(), k.default_text(),
                    a.empty() ? "" : "; " + a, k.help.empty() ? "" : ": ", k.help);
    // Plain text: no Markdown backticks.
    for (size_t i; (i = line.find('`')) != std::string::npos;) line.erase(i, 1);
    out += line;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ConfigReader's typed readers: a key of a table, read as its declared type.

namespace {
void expect_type(const Key& k, std::initializer_list<Key::Type> types, const char* method) {
  for (const auto t : types) {
    if (k.type == t) return;
  }
  throw std::logic_error(std::string("ConfigReader::") + method + ": key " + k.dotted() +
                         " is declared as " + k.type_name());
}
int64_t int_bound(double v) {
  if (std::isinf(v)) return v > 0 ? INT64_MAX : INT64_MIN;
  return static_cast<int64_t>(v);
}
template <class T>
T fallback_of(const Key& k, T none) {
  if (const T* v = std::get_if<T>(&k.fallback)) return *v;
  return none;
}
}  // namespace

bool ConfigReader::flag(const Key& k) {
  expect_type(k, {Key::Type::kBool}, "flag");
  return get<bool>(k.section, k.name, fallback_of<bool>(k, false));
}

int64_t ConfigReader::integer(const Key& k) {
  expect_type(k, {Key::Type::kInt}, "integer");
  if (k.required) return require<int64_t>(k.section, k.name);
  return get_int(k.section, k.name, fallback_of<int64_t>(k, 0), int_bound(k.min), int_bound(k.max));
}

double ConfigReader::number(const Key& k) {
  expect_type(k, {Key::Type::kNumber}, "number");
  return get_double(k.section, k.name, fallback_of<double>(k, 0.0), k.min, k.max);
}

std::optional<double> ConfigReader::optional_number(const Key& k) {
  expect_type(k, {Key::Type::kNumber}, "optional_number");
  if (!has_key(k.section, k.name)) return std::nullopt;
  return get_double(k.section, k.name, 0.0, k.min, k.max);
}

std::string ConfigReader::text(const Key& k) {
  expect_type(k, {Key::Type::kString}, "text");
  return get<std::string>(k.section, k.name, fallback_of<std::string>(k, ""));
}

std::string ConfigReader::choice(const Key& k) {
  expect_type(k, {Key::Type::kChoice}, "choice");
  return get_choice(k.section, k.name, fallback_of<std::string>(k, ""), k.choices);
}

std::string ConfigReader::path(const Key& k) {
  expect_type(k, {Key::Type::kPath}, "path");
  return get_path(k.section, k.name);
}

std::vector<std::string> ConfigReader::paths(const Key& k) {
  expect_type(k, {Key::Type::kPaths}, "paths");
  return get_path_list(k.section, k.name);
}

std::vector<std::string> ConfigReader::strings(const Key& k) {
  expect_type(k, {Key::Type::kStrings}, "strings");
  return get_string_list(k.section, k.name);
}

std::vector<int64_t> ConfigReader::integers(const Key& k) {
  expect_type(k, {Key::Type::kInts}, "integers");
  return get_int_list(k.section, k.name, fallback_of<std::vector<int64_t>>(k, {}), int_bound(k.min),
                      int_bound(k.max));
}

data::Encoding ConfigReader::encoding(const Key& k) {
  expect_type(k, {Key::Type::kEncoding}, "encoding");
  return get_encoding(k.section, k.name);
}

std::string ConfigReader::cell(const Key& k) {
  expect_type(k, {Key::Type::kCell}, "cell");
  return get_cell(k.section, k.name, fallback_of<std::string>(k, ""));
}

}  // namespace rnnkit::train
