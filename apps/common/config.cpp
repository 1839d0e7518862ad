#include <rnnkit/train/config.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <rnnkit/plugin.h>
#include <rnnkit/registry.h>

namespace rnnkit::app {
namespace fs = std::filesystem;

namespace {
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
  dir_ = fs::absolute(path).parent_path().string();
  try {
    table_ = toml::parse_file(path);
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
      throw ConfigError("--set " + o + ": expected section.key=value");
    }
    const std::string section = o.substr(0, dot), key = o.substr(dot + 1, eq - dot - 1);
    const std::string value = o.substr(eq + 1);
    toml::table parsed;
    try {
      parsed = toml::parse("v = " + value);
    } catch (const toml::parse_error&) {
      parsed = toml::table{{"v", value}};  // a bare word: a string
    }
    if (!table_.contains(section)) table_.insert(section, toml::table{});
    auto* sec = table_[section].as_table();
    if (!sec) throw ConfigError("--set " + o + ": '" + section + "' is not a section");
    // section.table.key (model.cell_options.slim=1) sets a key of a table inside the section.
    std::string leaf = key;
    for (auto d = leaf.find('.'); d != std::string::npos; d = leaf.find('.')) {
      const std::string inner = leaf.substr(0, d);
      if (!sec->contains(inner)) sec->insert(inner, toml::table{});
      sec = (*sec)[inner].as_table();
      if (!sec) throw ConfigError("--set " + o + ": '" + inner + "' is not a table");
      leaf = leaf.substr(d + 1);
    }
    sec->insert_or_assign(leaf, *parsed["v"].node());
    overridden_.insert(section + "." + key);
  }
}

ConfigReader ConfigReader::from_string(const std::string& text, const std::string& origin) {
  ConfigReader r;
  r.path_ = origin;
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
      return it != origin_.end() ? it->second : "--set " + set;
    }
    if (end == std::string::npos) break;
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
  os << ": key " << section << "." << key;
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
  fail(section, key, "expected one of " + list + ", got '" + v + "'");
}

data::Encoding ConfigReader::get_encoding(const std::string& section, const std::string& key) {
  try {
    return data::parse_encoding(get<std::string>(section, key, "utf8"));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(where(section, key) + ": " + e.what());
  }
}

std::string ConfigReader::get_cell(const std::string& section, const std::string& key,
                                   const std::string& fallback) {
  const std::string v = get<std::string>(section, key, fallback);
  std::vector<std::string> plugins = get_path_list(section, "plugins");
  for (const auto& p : plugins) {
    try {
      load_plugin(p);
    } catch (const PluginError& e) {
      // A checkpoint's plugin that moved, given again with --plugin: the cell is there.
      if (has_cell(v) && !cell_plugin(v).empty()) continue;
      fail(section, "plugins",
           fmt::format("{}{}", e.what(),
                       has_cell(v) ? ""
                                   : fmt::format(" (cell '{}' comes from it; if the plugin moved, "
                                                 "give --plugin PATH)",
                                                 v)));
    }
  }
  if (!has_cell(v)) {
    throw ConfigError(fmt::format(
        "{}: unknown cell '{}'; known cells: {} (a cell from a plugin needs --plugin PATH or "
        "{}.plugins)",
        where(section, key), v, fmt::join(cell_names(), ", "), section));
  }
  // The plugin a cell came from is recorded beside it, so the checkpoints' config names it.
  const std::string from = cell_plugin(v);
  if (!from.empty() && std::find(plugins.begin(), plugins.end(), from) == plugins.end()) {
    plugins.push_back(from);
    toml::array list;
    for (const auto& p : plugins) list.push_back(p);
    if (!table_.contains(section)) table_.insert(section, toml::table{});
    table_[section].as_table()->insert_or_assign("plugins", std::move(list));
  }
  return v;
}

CellOptions ConfigReader::get_cell_options(const std::string& section, const std::string& cell) {
  const toml::node* node = find(section, "cell_options");
  CellOptions given;
  if (node) {
    const auto* table = node->as_table();
    if (!table) {
      fail(section, "cell_options",
           "expected a table ([" + section + ".cell_options] with one key per option)");
    }
    for (const auto& [k, v] : *table) {
      const std::string key(k.str());
      if (auto b = v.value_exact<bool>())
        given.emplace(key, *b);
      else if (auto i = v.value_exact<int64_t>())
        given.emplace(key, *i);
      else if (auto d = v.value_exact<double>())
        given.emplace(key, *d);
      else if (auto str = v.value_exact<std::string>())
        given.emplace(key, *str);
      else
        fail(section, "cell_options." + key,
             "expected a boolean, an integer, a number or a string");
    }
  }
  try {
    check_cell_options(cell, given);
  } catch (const CellOptionError& e) {
    fail(section, "cell_options." + e.option, e.what());
  }
  return given;
}

std::string data_root(const std::string& config_dir) {
  if (const char* env = std::getenv("RNNKIT_DATA"); env && *env) {
    return fs::absolute(env).lexically_normal().string();
  }
  // <repo>/data for the recipes in <repo>/configs; <prefix>/share/rnnkit/data when installed.
  return (fs::path(config_dir.empty() ? fs::current_path().string() : config_dir) / ".." / "data")
      .lexically_normal()
      .string();
}

std::string ConfigReader::resolve_path(const std::string& section, const std::string& key,
                                       const std::string& v) const {
  static const std::string kRoot = "${RNNKIT_DATA}";
  if (v.rfind(kRoot, 0) == 0) {
    const std::string rest = v.substr(kRoot.size());
    const std::string root = data_root(dir_);
    const std::string path = (fs::path(root).string() + rest);
    if (!fs::exists(path)) {
      // The dataset is the first folder under the root: what fetch_data.sh takes.
      const auto parts = fs::path(rest).relative_path();
      const std::string dataset = parts.empty() ? "" : parts.begin()->string();
      throw ConfigError(fmt::format(
          "{}: {} is {}, which does not exist. The data root (RNNKIT_DATA, default data/ beside "
          "configs/) is filled by scripts/fetch_data.sh: `scripts/fetch_data.sh {}` downloads "
          "it, `scripts/fetch_data.sh --from DIR {}` takes it from a local copy",
          where(section, key), v, path, dataset, dataset));
    }
    return fs::path(path).lexically_normal().string();
  }
  if (v.empty() || fs::path(v).is_absolute() || dir_.empty()) return v;
  return (fs::path(dir_) / v).lexically_normal().string();
}

std::string ConfigReader::get_path(const std::string& section, const std::string& key,
                                   const std::string& fallback) {
  const std::string v = get<std::string>(section, key, fallback);
  const std::string resolved = resolve_path(section, key, v);
  if (resolved == v) return v;
  // The resolved config (saved beside checkpoints) then works from any directory.
  if (auto* sec = table_[section].as_table(); sec && sec->contains(key)) {
    sec->insert_or_assign(key, resolved);
  }
  return resolved;
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

std::vector<int64_t> ConfigReader::get_int_list(const std::string& section, const std::string& key,
                                                const std::vector<int64_t>& fallback, int64_t min) {
  const toml::node* node = find(section, key);
  if (!node) return fallback;
  const auto* arr = node->as_array();
  if (!arr) fail(section, key, "expected an array of integers");
  std::vector<int64_t> out;
  for (const auto& item : *arr) {
    const auto v = item.value_exact<int64_t>();
    if (!v) fail(section, key, "expected an array of integers");
    if (*v < min)
      fail(section, key,
           "every value must be at least " + std::to_string(min) + ", got " + std::to_string(*v));
    out.push_back(*v);
  }
  return out;
}

std::vector<std::string> ConfigReader::get_path_list(const std::string& section,
                                                     const std::string& key) {
  const toml::node* node = find(section, key);
  if (!node) return {};
  if (node->is_string()) return {get_path(section, key)};
  const auto* arr = node->as_array();
  if (!arr) fail(section, key, "expected a path or an array of paths");
  std::vector<std::string> out;
  for (const auto& item : *arr) {
    const auto v = item.value_exact<std::string>();
    if (!v) fail(section, key, "expected an array of path strings");
    out.push_back(resolve_path(section, key, *v));
  }
  toml::array resolved;
  for (const auto& p : out) resolved.push_back(p);
  table_[section].as_table()->insert_or_assign(key, std::move(resolved));
  return out;
}

void ConfigReader::reject_unknown_keys() const {
  std::vector<std::string> unknown;
  for (const auto& [sec, node] : table_) {
    const auto* t = node.as_table();
    if (!t) {
      unknown.push_back(path_ + ":" + std::to_string(node.source().begin.line) + ": '" +
                        std::string(sec.str()) + "' is not a [section]");
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

std::string ConfigReader::resolved() const {
  std::ostringstream os;
  os << toml::toml_formatter{table_};
  return os.str() + "\n";
}

}  // namespace rnnkit::app
