#pragma once
// Config keys declared once. Each app lists its keys in one table (KeyTable): section, name,
// type, default, range or choices, and a line of help. ConfigReader reads a key through its
// declaration, so the default and the checks are the table's; `PROGRAM train --help` prints the
// table; `PROGRAM config-keys` prints it as Markdown, and configs/README.md's key tables are
// that output (scripts/config_tables.sh writes them; a test fails when they differ).
//
// A default is written once: where a config struct has a field default, the table takes it
// from a default-constructed struct.
#include <cstdint>
#include <limits>
#include <string>
#include <variant>
#include <vector>

namespace rnnkit::train {

struct Key {
  enum class Type {
    kBool,
    kInt,
    kNumber,
    kString,
    kChoice,
    kPath,
    kPaths,  ///< a path or a list of paths
    kStrings,
    kInts,
    kCell,
    kTable,  ///< a TOML table (model.cell_options)
    kEncoding,
  };
  std::string section, name;
  Type type = Type::kString;
  /// The default; none: the key is required (`required`) or has no value unless given.
  std::variant<std::monostate, bool, int64_t, double, std::string, std::vector<int64_t>> fallback;
  bool required = false;
  double min = -std::numeric_limits<double>::infinity();  ///< kInt, kNumber, kInts
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  ///< kChoice
  std::string help;
  /// What the docs show as the default where the value alone would mislead (e.g. "(the
  /// init's)" for forget_bias); empty: derived from `fallback`.
  std::string shown_default;

  std::string dotted() const { return section + "." + name; }
  /// "type" for the tables: boolean, integer, number, string, path, ...
  const char* type_name() const;
  /// As the tables show it: 100, 0.5, true, `"lstm"`, (required), (none).
  std::string default_text() const;
  /// As the tables show it: 1 to 100000, ≥ 0, `char`, `word`; empty when anything of the type.
  std::string allowed_text() const;
  /// The same key in another section, with another default (sentiment's [pretrain] takes
  /// [train]'s keys with [train]'s values as defaults).
  Key in(const std::string& section) const;
};

// One line per key in a table.
Key flag(std::string section, std::string name, bool fallback, std::string help);
Key integer(std::string section, std::string name, int64_t fallback, int64_t min, int64_t max,
            std::string help);
Key number(std::string section, std::string name, double fallback, double min, double max,
           std::string help);
Key text(std::string section, std::string name, std::string fallback, std::string help);
/// One of `choices`; an empty fallback makes the key required.
Key choice(std::string section, std::string name, std::string fallback,
           std::vector<std::string> choices, std::string help);
Key path(std::string section, std::string name, bool required, std::string help);
Key paths(std::string section, std::string name, bool required, std::string help);
Key strings(std::string section, std::string name, std::string help);
Key integers(std::string section, std::string name, std::vector<int64_t> fallback, int64_t min,
             int64_t max, std::string help);
Key cell(std::string section, std::string name, std::string fallback, std::string help);
Key table(std::string section, std::string name, std::string help);
Key encoding(std::string section, std::string name, std::string help);
/// `key` with the default the docs show replaced by `shown`.
Key shown(Key key, std::string shown);

class KeyTable {
 public:
  KeyTable() = default;
  explicit KeyTable(std::vector<Key> keys);
  /// The key section.name; a key the table does not declare is a programming error
  /// (std::logic_error), found by the tests that read every shipped config.
  const Key& at(const std::string& section, const std::string& name) const;
  bool has(const std::string& section, const std::string& name) const;
  /// This table followed by `more`'s keys.
  KeyTable with(const KeyTable& more) const;
  const std::vector<Key>& keys() const { return keys_; }

  /// | key | type | default | allowed | meaning |, one row per key.
  std::string markdown() const;
  /// One line per key, for --help.
  std::string help_text() const;

 private:
  std::vector<Key> keys_;
};

}  // namespace rnnkit::train
