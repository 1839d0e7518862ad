#include <rnnkit/train/config.h>
#include <rnnkit/train/config_keys.h>

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

namespace {
/// A value from a config, cut for a message: a 10 MB string is not echoed whole.
std::string clip(const std::string& s) {
  constexpr size_t kMost = 200;
  return s.size() > kMost ? s.substr(0, kMost) + "... (" + std::to_string(s.size()) + " bytes)" : s;
}

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

namespace {
bool g_trust_checkpoint_plugins = false;

/// The sha256 of a loaded plugin, empty if `path` is not loaded.
std::string loaded_sha256(const std::string& path) {
  for (const auto& p : loaded_plugins()) {
    if (p.path == path) return p.sha256;
  }
  return "";
}
}  // namespace

void trust_checkpoint_plugins(bool trust) { g_trust_checkpoint_plugins = trust; }

void ConfigReader::load_plugins(const std::string& section) {
  plugins_read_.insert(section);
  const std::vector<std::string> plugins = get_path_list(section, "plugins");
  const std::vector<std::string> hashes = get_string_list(section, "plugins_sha256");
  if (!hashes.empty() && hashes.size() != plugins.size()) {
    fail(section, "plugins_sha256",
         fmt::format("expected one sha256 per plugin in {}.plugins ({}), got {}", section,
                     plugins.size(), hashes.size()));
  }
  // Loading a plugin runs its code: a checkpoint that names one is not consent.
  if (from_checkpoint_ && !g_trust_checkpoint_plugins) return;
  // The cell the section names, for the hint when its plugin is gone (read raw: this is not
  // the key's read, which get_cell does).
  const auto* cell_node = table_[section]["cell"].node();
  const std::string cell = cell_node ? cell_node->value_or(std::string()) : std::string();
  for (size_t i = 0; i < plugins.size(); ++i) {
    // A checkpoint's plugin that is loaded already (--plugin, moved) is not loaded twice.
    if (from_checkpoint_ && !hashes.empty()) {
      bool have = false;
      for (const auto& l : loaded_plugins()) have = have || l.sha256 == hashes[i];
      if (have) continue;
    }
    try {
      load_plugin(plugins[i], hashes.empty() ? "" : hashes[i]);
    } catch (const PluginError& e) {
      fail(section, "plugins",
           fmt::format("{}{}", e.what(),
                       from_checkpoint_ && !cell.empty() && !has_cell(cell)
                           ? fmt::format(" (cell '{}' comes from it; if the plugin moved, give "
                                         "--plugin PATH)",
                                         cell)
                           : ""));
    }
  }
}

std::string ConfigReader::get_cell(const std::string& section, const std::string& key,
                                   const std::string& fallback) {
  if (table_[section]["plugins"].node() && !plugins_read_.count(section)) {
    throw std::logic_error("ConfigReader::get_cell: [" + section +
                           "] names plugins; call load_plugins(\"" + section + "\") first");
  }
  const std::string v = get<std::string>(section, key, fallback);
  std::vector<std::string> plugins = get_path_list(section, "plugins");
  const std::vector<std::string> hashes = get_string_list(section, "plugins_sha256");
  auto recorded = [&](size_t i) {
    return fmt::format("{}{}", plugins[i], hashes.empty() ? "" : " (sha256 " + hashes[i] + ")");
  };
  if (!has_cell(v)) {
    if (from_checkpoint_ && !plugins.empty()) {
      std::vector<std::string> list;
      for (size_t i = 0; i < plugins.size(); ++i) list.push_back(recorded(i));
      throw ConfigError(fmt::format(
          "{}: cell '{}' comes from a plugin, and the checkpoint records {}; a checkpoint never "
          "loads code by itself: give --plugin PATH for a plugin you trust, or "
          "--trust-checkpoint-plugins to load the recorded one(s) (checked against their "
          "sha256)",
          where(section, key), v, fmt::join(list, ", ")));
    }
    throw ConfigError(fmt::format(
        "{}: unknown cell '{}'; known cells: {} (a cell from a plugin needs --plugin PATH or "
        "{}.plugins)",
        where(section, key), clip(v), fmt::join(cell_names(), ", "), section));
  }
  const std::string from = cell_plugin(v);
  if (from_checkpoint_ && !from.empty() && !plugins.empty()) {
    // The cell comes from a plugin loaded by hand: it must be the one the model was trained
    // with, by its bytes (any path), or for an old checkpoint without hashes, by its path (or
    // the recorded file is gone: a moved plugin).
    const std::string sha = loaded_sha256(from);
    bool same = false;
    for (size_t i = 0; i < plugins.size(); ++i) {
      same = same ||
             (hashes.empty() ? plugins[i] == from || !fs::exists(plugins[i]) : hashes[i] == sha);
    }
    if (!same) {
      std::vector<std::string> list;
      for (size_t i = 0; i < plugins.size(); ++i) list.push_back(recorded(i));
      throw ConfigError(fmt::format(
          "{}: cell '{}' comes from the plugin {} (sha256 {}), but the model was trained with {}; "
          "a different plugin is refused (give --plugin with the file the model was trained "
          "with)",
          where(section, key), v, from, sha, fmt::join(list, ", ")));
    }
  }
  // The plugin a cell came from is recorded beside it in resolved(), with every plugin's sha256,
  // so the checkpoints' config names the plugins its cells need and the files they must be.
  if (!from.empty() && std::find(plugins.begin(), plugins.end(), from) == plugins.end()) {
    plugins.push_back(from);
  }
  if (!from_checkpoint_ && !plugins.empty()) {
    auto& record = recorded_plugins_[section];
    for (const auto& p : plugins) {
      if (std::find(record.begin(), record.end(), p) == record.end()) record.push_back(p);
    }
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
    if (std::error_code ec; fs::exists(root, ec) && !fs::is_directory(root, ec)) {
      throw ConfigError(fmt::format(
          "{}: {} is under the data root {}, which is a file, not a folder (RNNKIT_DATA names the "
          "folder that holds the datasets)",
          where(section, key), clip(v), root));
    }
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
  // resolved() (saved beside checkpoints) shows it, so that it works from any directory.
  if (resolved != v && table_[section][key].node()) resolved_paths_[{section, key}] = resolved;
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
  resolved_path_lists_[{section, key}] = out;
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
      shas.push_back(loaded_sha256(p));
    }
    set(section, "plugins", std::move(list));
    set(section, "plugins_sha256", std::move(shas));
  }
  std::ostringstream os;
  os << toml::toml_formatter{out};
  return os.str() + "\n";
}

}  // namespace rnnkit::train
