#include <rnnkit/train/config.h>
#include <rnnkit/train/config_keys.h>

#include "config_internal.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include <unistd.h>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <rnnkit/plugin.h>
#include <rnnkit/registry.h>

namespace rnnkit::train {
namespace fs = std::filesystem;

namespace internal {
std::string clip(const std::string& s) {
  constexpr size_t kMost = 200;
  return s.size() > kMost ? s.substr(0, kMost) + "... (" + std::to_string(s.size()) + " bytes)" : s;
}
}  // namespace internal

namespace {
using internal::clip;

/// toml++ parses nested tables and arrays recursively: a 40,000-deep `[a.a.a...]` header (one
/// 80 kB line) overflows the stack (SIGSEGV, no message). A config is a few levels deep, so the
/// text is refused before parsing when its nesting (open brackets and braces, plus the dots of
/// a dotted key, outside strings and comments) passes kMostTomlDepth. toml++ took 10,000 levels.
constexpr int kMostTomlDepth = 1000;

void check_toml_depth(const std::string& text, const std::string& origin) {
  int brackets = 0, deepest = 0;
  size_t line = 1;
  int dots = 0;  // on this line
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '\n') {
      ++line, dots = 0;
    } else if (ch == '#') {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
    } else if (ch == '"' || ch == '\'') {
      const bool multi = text.compare(i, 3, std::string(3, ch)) == 0;
      const std::string end = multi ? std::string(3, ch) : std::string(1, ch);
      for (i += end.size(); i < text.size(); ++i) {
        if (ch == '"' && text[i] == '\\') {
          ++i;
        } else if (text[i] == '\n') {
          if (!multi) break;  // an unterminated string: the parser says so
          ++line;
        } else if (text.compare(i, end.size(), end) == 0) {
          i += end.size() - 1;
          break;
        }
      }
    } else if (ch == '[' || ch == '{') {
      ++brackets;
    } else if (ch == ']' || ch == '}') {
      brackets = std::max(0, brackets - 1);
    } else if (ch == '.') {
      // A dotted key's dot, not a number's (1.5): a digit on both sides is a number.
      const bool number = i > 0 && i + 1 < text.size() &&
                          std::isdigit(static_cast<unsigned char>(text[i - 1])) &&
                          std::isdigit(static_cast<unsigned char>(text[i + 1]));
      if (!number) ++dots;
    }
    if (brackets + dots > deepest) {
      deepest = brackets + dots;
      if (deepest > kMostTomlDepth) {
        throw ConfigError(fmt::format(
            "{}:{}: tables or arrays nested more than {} levels deep; a config is a few levels "
            "deep (see configs/)",
            origin, line, kMostTomlDepth));
      }
    }
  }
}

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "a boolean (true/false)";
  else if constexpr (std::is_integral_v<T>)
    return "an integer";
  else if constexpr (std::is_floating_point_v<T>)
    return "a number";
  else
    return "a string";
}
}  // namespace

ConfigReader::ConfigReader(const std::string& path, const std::vector<std::string>& overrides)
    : path_(path) {
  if (!fs::exists(path)) throw ConfigError(path + ": config file not found");
  if (fs::is_directory(path))
    throw ConfigError(path + ": is a directory; expected a TOML config file (see configs/)");
  if (!fs::is_regular_file(path)) {
    throw ConfigError(path +
                      ": not a regular file (a device, a pipe or a socket); expected a "
                      "TOML config file (see configs/)");
  }
  if (fs::file_size(path) > (16u << 20)) {
    throw ConfigError(path + ": " + std::to_string(fs::file_size(path)) +
                      " bytes; a TOML config is a few kilobytes (at most 16 MiB is read)");
  }
  dir_ = fs::absolute(path).parent_path().string();
  try {
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) throw ConfigError(path + ": cannot read the config file");
    check_toml_depth(text, path);
    table_ = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << path << ":" << e.source().begin.line << ": TOML syntax error: " << e.description();
    throw ConfigError(os.str());
  }
  if (table_.empty()) {
    throw ConfigError(
        path +
        ": the config is empty; it needs at least a [data] section (see configs/ for recipes)");
  }
  for (const auto& o : overrides) {
    const auto eq = o.find('='), dot = o.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq) {
      throw ConfigError("--set " + clip(o) + ": expected section.key=value");
    }
    const std::string section = o.substr(0, dot), key = o.substr(dot + 1, eq - dot - 1);
    if (section.empty() || key.empty() || key.front() == '.' || key.back() == '.' ||
        key.find("..") != std::string::npos) {
      throw ConfigError("--set " + clip(o) +
                        ": expected section.key=value, each part of the key a name (no empty "
                        "part between dots)");
    }
    const std::string value = o.substr(eq + 1);
    toml::table parsed;
    check_toml_depth(value, "--set " + clip(o));
    try {
      parsed = toml::parse("v = " + value);
    } catch (const toml::parse_error&) {
      parsed = toml::table{{"v", value}};  // a bare word: a string
    }
    if (!table_.contains(section)) table_.insert(section, toml::table{});
    auto* sec = table_[section].as_table();
    if (!sec) throw ConfigError("--set " + clip(o) + ": '" + clip(section) + "' is not a section");
    // section.table.key (model.cell_options.slim=1) sets a key of a table inside the section.
    std::string leaf = key;
    for (auto d = leaf.find('.'); d != std::string::npos; d = leaf.find('.')) {
      const std::string inner = leaf.substr(0, d);
      if (!sec->contains(inner)) sec->insert(inner, toml::table{});
      sec = (*sec)[inner].as_table();
      if (!sec) throw ConfigError("--set " + clip(o) + ": '" + clip(inner) + "' is not a table");
      leaf = leaf.substr(d + 1);
    }
    sec->insert_or_assign(leaf, *parsed["v"].node());
    overridden_.insert(section + "." + key);
  }
}

ConfigReader ConfigReader::from_string(const std::string& text, const std::string& origin) {
  ConfigReader r;
  r.path_ = origin;
  r.from_checkpoint_ = true;
  check_toml_depth(text, origin);
  try {
    r.table_ = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw ConfigError(origin + ": TOML syntax error: " + std::string(e.description()));
  }
  return r;
}

void ConfigReader::set_origin(const std::string& dotted_key, const std::string& option) {
  origin_[dotted_key] = option;
}

bool ConfigReader::has_key(const std::string& section, const std::string& key) {
  return find(section, key) != nullptr;
}

bool ConfigReader::has_section(const std::string& section) const {
  return table_[section].as_table() != nullptr;
}

std::string ConfigReader::where(const std::string& section, const std::string& key) const {
  // The key itself, or the table holding it (--set model.cell_options={slim = 9}), overridden.
  for (auto end = key.find('.');; end = key.find('.', end + 1)) {
    const std::string set = section + "." + key.substr(0, end);
    if (overridden_.count(set)) {
      const auto it = origin_.find(set);
      return it != origin_.end() ? it->second : "--set " + clip(set);
    }
    if (end == std::string::npos) break;
  }
  // A key an override made by setting a key inside it (--set model.cell_options.a.b=1 makes
  // cell_options.a a table).
  const std::string full = section + "." + key + ".";
  for (const auto& o : overridden_) {
    if (o.rfind(full, 0) == 0) return "--set " + clip(o);
  }
  // A dotted key names a key of a table inside the section (cell_options.slim).
  auto view = table_[section];
  std::string rest = key;
  for (auto d = rest.find('.'); d != std::string::npos; d = rest.find('.')) {
    view = view[rest.substr(0, d)];
    rest = rest.substr(d + 1);
  }
  const auto* node = view[rest].node();
  std::ostringstream os;
  os << path_;
  if (node && node->source().begin.line) os << ":" << node->source().begin.line;
  os << ": key " << clip(section + "." + key);
  return os.str();
}

void ConfigReader::fail(const std::string& section, const std::string& key,
                        const std::string& message) const {
  throw ConfigError(where(section, key) + ": " + message);
}

const toml::node* ConfigReader::find(const std::string& section, const std::string& key) {
  used_.insert(section + "." + key);
  return table_[section][key].node();
}

template <class T>
T ConfigReader::get(const std::string& section, const std::string& key, const T& fallback) {
  const toml::node* node = find(section, key);
  if (!node) return fallback;
  std::optional<T> v;
  if constexpr (std::is_floating_point_v<T>) {
    // An integer where a number is expected is fine (lr = 1).
    if (auto i = node->value_exact<int64_t>())
      v = static_cast<T>(*i);
    else
      v = node->value_exact<double>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    v = node->value_exact<std::string>();
  } else {
    v = node->value_exact<T>();
  }
  if (!v) {
    std::ostringstream got;
    got << node->type();
    fail(section, key, std::string("expected ") + type_name<T>() + ", got a " + got.str());
  }
  return *v;
}

template <class T>
T ConfigReader::require(const std::string& section, const std::string& key) {
  if (!table_[section][key].node()) {
    used_.insert(section + "." + key);
    throw ConfigError(path_ + ": missing required key " + section + "." + key);
  }
  return get<T>(section, key, T{});
}

template bool ConfigReader::get<bool>(const std::string&, const std::string&, const bool&);
template int64_t ConfigReader::get<int64_t>(const std::string&, const std::string&, const int64_t&);
template double ConfigReader::get<double>(const std::string&, const std::string&, const double&);
template std::string ConfigReader::get<std::string>(const std::string&, const std::string&,
                                                    const std::string&);
template std::string ConfigReader::require<std::string>(const std::string&, const std::string&);
template int64_t ConfigReader::require<int64_t>(const std::string&, const std::string&);

int64_t ConfigReader::get_int(const std::string& section, const std::string& key, int64_t fallback,
                              int64_t min, int64_t max) {
  const int64_t v = get<int64_t>(section, key, fallback);
  if (v < min || v > max) {
    std::ostringstream os;
    os << "must be in [" << min << ", "
       << (max == INT64_MAX ? std::string("inf") : std::to_string(max)) << "], got " << v;
    fail(section, key, os.str());
  }
  return v;
}

double ConfigReader::get_double(const std::string& section, const std::string& key, double fallback,
                                double min, double max) {
  const double v = get<double>(section, key, fallback);
  if (!(v >= min && v <= max)) {
    std::ostringstream os;
    os << "must be in [" << min << ", " << max << "], got " << v;
    fail(section, key, os.str());
  }
  return v;
}

std::string ConfigReader::get_choice(const std::string& section, const std::string& key,
                                     const std::string& fallback,
                                     const std::vector<std::string>& choices) {
  const std::string list = fmt::format("{}", fmt::join(choices, ", "));
  if (fallback.empty() && !table_[section][key].node()) {
    used_.insert(section + "." + key);
    throw ConfigError(path_ + ": missing required key " + section + "." + key + " (one of " + list +
                      ")");
  }
  const std::string v = get<std::string>(section, key, fallback);
  for (const auto& c : choices) {
    if (c == v) return v;
  }
  fail(section, key, "expected one of " + list + ", got '" + clip(v) + "'");
}

data::Encoding ConfigReader::get_encoding(const std::string& section, const std::string& key) {
  try {
    return data::parse_encoding(get<std::string>(section, key, "utf8"));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(where(section, key) + ": " + e.what());
  }
}

std::vector<std::string> ConfigReader::get_string_list(const std::string& section,
                                                       const std::string& key) {
  const toml::node* node = find(section, key);
  if (!node) return {};
  if (auto v = node->value_exact<std::string>()) return {*v};
  const auto* arr = node->as_array();
  if (!arr) fail(section, key, "expected a string or an array of strings");
  std::vector<std::string> out;
  for (const auto& item : *arr) {
    const auto v = item.value_exact<std::string>();
    if (!v) fail(section, key, "expected an array of strings");
    out.push_back(*v);
  }
  return out;
}

void ConfigReader::check_fits_in_memory(const std::string& section, const std::string& key,
                                        double elements, const std::string& what) {
  const double memory =
      static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  const double bytes = elements * 4 * 4;
  if (memory > 0 && bytes > memory) {
    fail(section, key,
         fmt::format("{} would hold about {:.3g} values, {:.1f} GB to train (weights, gradients "
                     "and optimizer state), more than this machine's {:.1f} GB of memory",
                     what, elements, bytes / 1e9, memory / 1e9));
  }
}

std::vector<int64_t> ConfigReader::get_int_list(const std::string& section, const std::string& key,
                                                const std::vector<int64_t>& fallback, int64_t min,
                                                int64_t max) {
  const toml::node* node = find(section, key);
  if (!node) return fallback;
  const auto* arr = node->as_array();
  if (!arr) fail(section, key, "expected an array of integers");
  std::vector<int64_t> out;
  for (const auto& item : *arr) {
    const auto v = item.value_exact<int64_t>();
    if (!v) fail(section, key, "expected an array of integers");
    if (*v < min || *v > max)
      fail(section, key,
           "every value must be in [" + std::to_string(min) + ", " +
               (max == INT64_MAX ? std::string("inf") : std::to_string(max)) + "], got " +
               std::to_string(*v));
    out.push_back(*v);
  }
  return out;
}

void ConfigReader::reject_unknown_keys() const {
  std::vector<std::string> unknown;
  for (const auto& [sec, node] : table_) {
    const auto* t = node.as_table();
    if (!t) {
      unknown.push_back(path_ + ":" + std::to_string(node.source().begin.line) + ": '" +
                        clip(std::string(sec.str())) + "' is not a [section]");
      continue;
    }
    for (const auto& [key, value] : *t) {
      const std::string full = std::string(sec.str()) + "." + std::string(key.str());
      if (!used_.count(full)) {
        unknown.push_back(where(std::string(sec.str()), std::string(key.str())) + ": unknown key");
      }
    }
  }
  if (unknown.empty()) return;
  throw ConfigError(fmt::format("{}\n(check the spelling; see configs/README.md for every key)",
                                fmt::join(unknown, "\n")));
}

namespace {
void flatten(const toml::table& t, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  for (const auto& [k, v] : t) {
    const std::string key = prefix + std::string(k.str());
    if (const auto* sub = v.as_table()) {
      flatten(*sub, key + ".", out);
      continue;
    }
    std::ostringstream os;
    v.visit([&](const auto& n) { os << n; });
    out[key] = os.str();
  }
}
}  // namespace

std::optional<ConfigDifference> first_difference(const std::string& a, const std::string& b,
                                                 const std::set<std::string>& ignored) {
  std::map<std::string, std::string> fa, fb;
  flatten(toml::parse(a), "", fa);
  flatten(toml::parse(b), "", fb);
  std::set<std::string> keys;
  for (const auto& [k, v] : fa) keys.insert(k);
  for (const auto& [k, v] : fb) keys.insert(k);
  for (const auto& k : keys) {
    if (ignored.count(k)) continue;
    const auto ia = fa.find(k), ib = fb.find(k);
    const std::string va = ia == fa.end() ? "(not set)" : clip(ia->second);
    const std::string vb = ib == fb.end() ? "(not set)" : clip(ib->second);
    if (ia == fa.end() || ib == fb.end() || ia->second != ib->second) {
      return ConfigDifference{k, va, vb};
    }
  }
  return std::nullopt;
}

std::string ConfigReader::resolved() const {
  // What was read, as it was understood: paths resolved, and the plugins cells came from
  // recorded with their sha256. The table itself is as parsed (reading changes nothing).
  toml::table out = table_;
  auto set = [&](const std::string& section, const std::string& key, toml::node&& value) {
    if (!out.contains(section)) out.insert(section, toml::table{});
    out[section].as_table()->insert_or_assign(key, std::move(value));
  };
  for (const auto& [at, path] : resolved_paths_) set(at.first, at.second, toml::value(path));
  for (const auto& [at, paths] : resolved_path_lists_) {
    toml::array list;
    for (const auto& p : paths) list.push_back(p);
    set(at.first, at.second, std::move(list));
  }
  for (const auto& [section, plugins] : recorded_plugins_) {
    toml::array list, shas;
    for (const auto& p : plugins) {
      list.push_back(p);
      shas.push_back(internal::loaded_sha256(p));
    }
    set(section, "plugins", std::move(list));
    set(section, "plugins_sha256", std::move(shas));
  }
  std::ostringstream os;
  os << toml::toml_formatter{out};
  return os.str() + "\n";
}

}  // namespace rnnkit::train
