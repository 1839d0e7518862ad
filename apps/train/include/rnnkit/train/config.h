#pragma once
// Typed configs from TOML files plus `--set section.key=value` overrides.
//
// Apps read every setting once, at start-up, into typed structs. A ConfigReader remembers which
// keys were read, so unknown keys (typos) fail before training, naming the file, the line and
// the key; so do wrong types and out-of-range values.
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <rnnkit/data/text.h>
#include <rnnkit/registry.h>
#include <toml++/toml.h>

namespace rnnkit::train {

struct Key;

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The upper bounds of size keys: a width (hidden_size, embedding sizes) and a depth
/// (num_layers). Far above any model that trains on one machine, far below an overflow.
constexpr int64_t kMaxWidth = 65536;
constexpr int64_t kMaxLayers = 64;

/// Whether a checkpoint's config may load the plugins it records (--trust-checkpoint-plugins,
/// for the whole process); by default it may not, as torch.load(weights_only=True) runs no code.
void trust_checkpoint_plugins(bool trust);

/// The data root for a config in `config_dir`: $RNNKIT_DATA, else config_dir/../data.
std::string data_root(const std::string& config_dir);

/// The first key (dotted, in sorted order) whose value differs between two TOML texts, and
/// its value in each ("(not set)" where absent); keys in `ignored` are skipped.
struct ConfigDifference {
  std::string key, a, b;
};
std::optional<ConfigDifference> first_difference(const std::string& a, const std::string& b,
                                                 const std::set<std::string>& ignored = {});

class ConfigReader {
 public:
  /// Parses `path` (a ConfigError names the line of a syntax error) and applies overrides
  /// "section.key=value" (values in TOML syntax; a bare word is taken as a string).
  ConfigReader(const std::string& path, const std::vector<std::string>& overrides = {});
  /// From TOML text (checkpoints keep their config as text).
  static ConfigReader from_string(const std::string& text, const std::string& origin);

  // A key declared in its app's table (config_keys.h): the default, range and choices are the
  // table's. A key of another type than the method reads is a programming error
  // (std::logic_error).
  bool flag(const Key& key);
  int64_t integer(const Key& key);
  double number(const Key& key);
  /// A number key without a default: nullopt when it is not set.
  std::optional<double> optional_number(const Key& key);
  std::string text(const Key& key);
  std::string choice(const Key& key);
  std::string path(const Key& key);
  std::vector<std::string> paths(const Key& key);
  std::vector<std::string> strings(const Key& key);
  std::vector<int64_t> integers(const Key& key);
  data::Encoding encoding(const Key& key);
  std::string cell(const Key& key);

  template <class T>
  T get(const std::string& section, const std::string& key, const T& fallback);
  template <class T>
  T require(const std::string& section, const std::string& key);

  /// Numeric checks: "where: key must be ..., got ...".
  int64_t get_int(const std::string& section, const std::string& key, int64_t fallback, int64_t min,
                  int64_t max = INT64_MAX);
  double get_double(const std::string& section, const std::string& key, double fallback, double min,
                    double max);
  /// One of `choices`; an empty `fallback` makes the key required ("missing required key").
  std::string get_choice(const std::string& section, const std::string& key,
                         const std::string& fallback, const std::vector<std::string>& choices);
  /// A path: relative paths are taken relative to the config file's folder, never to the
  /// working or build directory. Empty stays empty. A path starting with ${RNNKIT_DATA} is in
  /// the data root ($RNNKIT_DATA, default ../data from the config's folder: <repo>/data), and
  /// must exist: the error says which scripts/fetch_data.sh command fills it.
  std::string get_path(const std::string& section, const std::string& key,
                       const std::string& fallback = "");

  /// A text encoding name (data::parse_encoding), default "utf8".
  data::Encoding get_encoding(const std::string& section, const std::string& key);
  /// The options of cell `cell` from the table `section.cell_options` ([model.cell_options] in
  /// a file, --set model.cell_options.KEY=V), checked against the options the cell registered:
  /// an unknown option, a wrong type or a value out of range fails naming the line.
  CellOptions get_cell_options(const std::string& section, const std::string& cell);
  /// The one step of reading a config that changes anything outside it: loads the cell plugins
  /// `section`'s `plugins` key names (a path or a list), each checked against `plugins_sha256`
  /// where given. A checkpoint's config (from_string) loads none of them unless
  /// trust_checkpoint_plugins(true) (each checked against its sha256 before it is opened; one
  /// loaded already by --plugin is not loaded again). load_config() and open_saved_run() call it
  /// for [model] before anything is read, because the cells' names and options are checked as
  /// they are read, which needs the cells registered.
  void load_plugins(const std::string& section);
  /// The name of a registered cell; an unknown name fails listing the known ones. A section
  /// with a `plugins` key needs load_plugins(section) first (a std::logic_error otherwise). The
  /// plugin a cell comes from (also one loaded by --plugin) is added to the section's `plugins`
  /// in resolved(), with every plugin's sha256 in `plugins_sha256`, so a checkpoint's config
  /// names the plugins its cells need and their bytes. A checkpoint's cell from a plugin must
  /// come from a loaded plugin whose sha256 the checkpoint records.
  std::string get_cell(const std::string& section, const std::string& key,
                       const std::string& fallback);

  /// An array of strings (a single string is a list of one).
  std::vector<std::string> get_string_list(const std::string& section, const std::string& key);
  /// An array of integers, each in [min, max].
  std::vector<int64_t> get_int_list(const std::string& section, const std::string& key,
                                    const std::vector<int64_t>& fallback, int64_t min,
                                    int64_t max = INT64_MAX);
  /// Refuses (naming section.key) a model whose `elements` float32 values, kept four times over
  /// in training (weights, gradients, Adam's two moments), would not fit in this machine's
  /// memory.
  void check_fits_in_memory(const std::string& section, const std::string& key, double elements,
                            const std::string& what);
  /// One path or an array of paths, each resolved as get_path does.
  std::vector<std::string> get_path_list(const std::string& section, const std::string& key);

  /// Throws a ConfigError listing every key present that no get() asked for.
  void reject_unknown_keys() const;
  /// The config as read, as TOML text: file plus overrides, with the paths that were read
  /// resolved and the plugins cells came from recorded (reading leaves the parsed table as it
  /// was).
  std::string resolved() const;
  const std::string& path() const { return path_; }
  /// "FILE:LINE: key section.key" (or "--set section.key"), for messages.
  std::string where(const std::string& section, const std::string& key) const;
  /// Names the command-line option an override came from ("--seed" for train.seed), for where().
  void set_origin(const std::string& dotted_key, const std::string& option);
  /// Whether the config has a [section] (after overrides).
  bool has_section(const std::string& section) const;
  /// Whether section.key is set (after overrides); it counts as read.
  bool has_key(const std::string& section, const std::string& key);

 private:
  ConfigReader() = default;
  const toml::node* find(const std::string& section, const std::string& key);
  std::string resolve_path(const std::string& section, const std::string& key,
                           const std::string& v) const;
  [[noreturn]] void fail(const std::string& section, const std::string& key,
                         const std::string& message) const;
  std::string path_, dir_;
  bool from_checkpoint_ = false;  ///< from_string: its plugins need consent
  toml::table table_;
  std::set<std::string> used_, overridden_, plugins_read_;
  /// What resolved() shows instead of the table's values: resolved paths, recorded plugins.
  std::map<std::pair<std::string, std::string>, std::string> resolved_paths_;
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> resolved_path_lists_;
  std::map<std::string, std::vector<std::string>> recorded_plugins_;
  std::map<std::string, std::string> origin_;
};

}  // namespace rnnkit::train
