#include <rnnkit/train/model_config.h>

#include <filesystem>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <rnnkit/plugin.h>
#include <rnnkit/registry.h>
#include <rnnkit/train/config.h>

#include "config_internal.h"

namespace rnnkit::train {

KeyTable rnn_keys(const std::string& s, const RNNOptions& d) {
  return KeyTable({
      cell(s, "cell", d.cell(), "any registered cell (built in, or from a plugin)"),
      table(s, "cell_options",
            "a table of the cell's own options, e.g. `[model.cell_options]` `peephole = true` for "
            "`lstm`, `activation = \"relu\"` for `rnn`, `reset_after = true` for `gru`, `slim = 1` "
            "for the example's `mgu`; `--set model.cell_options.peephole=true`. Unknown options, "
            "wrong types and out-of-range values stop the run, naming the line. The aliases "
            "(`lstm_peephole`, ...) fix their option."),
      paths(s, "plugins", false,
            "cell plugins to load (relative to this file's folder), as `--plugin` does; each "
            "must load. The plugin a cell comes from is added here in the saved config, so "
            "checkpoints name it; a checkpoint never loads it by itself (README, \"Cell "
            "plugins\")"),
      strings(s, "plugins_sha256",
              "one sha256 (hex) per entry of `plugins`: a file with other bytes is refused "
              "before it is loaded. Training writes it into the saved config"),
      integer(s, "hidden_size", d.hidden_size(), 1, kMaxWidth,
              "the width of a<t> (per direction); a model whose recurrent weights would not fit "
              "in memory to train is refused"),
      integer(s, "num_layers", d.num_layers(), 1, kMaxLayers, "stacked recurrent layers"),
      number(s, "recurrent_dropout", d.recurrent_dropout(), 0, 0.99,
             "variational dropout on a<t-1>, one mask per sequence"),
      choice(s, "init", to_string(d.init()), init_names(), "the weights' initialisation"),
      shown(number(s, "forget_bias", 0, -100, 100,
                   "gated cells: the bias towards keeping c<t-1> after initialisation (LSTM: "
                   "b_f; GRUs: b_u = -forget_bias)"),
            "(the init's)"),
  });
}

RNNOptions read_rnn_options(ConfigReader& c, const std::string& section, RNNOptions r) {
  const KeyTable keys = rnn_keys(section, r);
  auto k = [&](const char* name) -> const Key& { return keys.at(section, name); };
  r.cell(c.cell(k("cell")));
  r.cell_options(c.get_cell_options(section, r.cell()));
  r.hidden_size(c.integer(k("hidden_size")));
  r.num_layers(c.integer(k("num_layers")));
  // Each in range, the product may still not fit: up to 4 gates, both directions, a layer's
  // input about as wide as its state.
  c.check_fits_in_memory(
      section, "hidden_size",
      static_cast<double>(r.num_layers()) * 2 * 4 * static_cast<double>(r.hidden_size()) * 2 *
          static_cast<double>(r.hidden_size()),
      fmt::format("{} layer(s) of hidden_size {}", r.num_layers(), r.hidden_size()));
  r.recurrent_dropout(c.number(k("recurrent_dropout")));
  r.init(parse_init(c.choice(k("init"))));
  if (const auto fb = c.optional_number(k("forget_bias"))) r.forget_bias(*fb);
  return r;
}

// ---------------------------------------------------------------------------------------------
// A config's cells and their plugins (ConfigReader's part that knows the cell registry).

namespace fs = std::filesystem;
using internal::clip;

namespace {
bool g_trust_checkpoint_plugins = false;

}  // namespace

namespace internal {
std::string loaded_sha256(const std::string& path) {
  for (const auto& p : loaded_plugins()) {
    if (p.path == path) return p.sha256;
  }
  return "";
}
}  // namespace internal
using internal::loaded_sha256;

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

}  // namespace rnnkit::train
