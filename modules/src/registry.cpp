#include "rnnkit/registry.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>

#include <c10/util/Exception.h>

#include "plugin_loading.h"
#include "rnnkit/cells/gru_cell.h"
#include "rnnkit/cells/lstm_cell.h"
#include "rnnkit/cells/rnn_cell.h"
#include "rnnkit/cells/simple_gru_cell.h"
#include "rnnkit/plugin.h"

namespace rnnkit {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, CellFactory> factories;
  std::vector<std::string> builtin;              // the keys of `factories` as built
  std::map<std::string, std::string> plugin_of;  // cell -> the plugin that registered it
};

// The plugin whose body the calling thread runs, and what it has registered.
struct Loading {
  std::string path;
  std::vector<std::string> cells;
};
thread_local Loading* loading = nullptr;

std::shared_ptr<CellImplBase> make_rnn(const CellSpec& s, Activation act) {
  return std::make_shared<RNNCellImpl>(
      RNNCellOptions(s.input_size(), s.hidden_size()).activation(act).init(s.init()));
}
std::shared_ptr<CellImplBase> make_gru(const CellSpec& s, bool reset_after) {
  return std::make_shared<GRUCellImpl>(GRUCellOptions(s.input_size(), s.hidden_size())
                                           .reset_after(reset_after)
                                           .init(s.init())
                                           .forget_bias(s.forget_bias()));
}
std::shared_ptr<CellImplBase> make_lstm(const CellSpec& s, bool peephole) {
  return std::make_shared<LSTMCellImpl>(LSTMCellOptions(s.input_size(), s.hidden_size())
                                            .peephole(peephole)
                                            .init(s.init())
                                            .forget_bias(s.forget_bias()));
}

// Built in at first use, so static initialisation order never matters.
Registry& registry() {
  static Registry r{
      {},
      {
          {"rnn", [](const CellSpec& s) { return make_rnn(s, Activation::kTanh); }},
          {"rnn_relu", [](const CellSpec& s) { return make_rnn(s, Activation::kReLU); }},
          {"gru_simple",
           [](const CellSpec& s) -> std::shared_ptr<CellImplBase> {
             return std::make_shared<SimpleGRUCellImpl>(
                 SimpleGRUCellOptions(s.input_size(), s.hidden_size())
                     .init(s.init())
                     .forget_bias(s.forget_bias()));
           }},
          {"gru", [](const CellSpec& s) { return make_gru(s, false); }},
          {"gru_reset_after", [](const CellSpec& s) { return make_gru(s, true); }},
          {"lstm", [](const CellSpec& s) { return make_lstm(s, false); }},
          {"lstm_peephole", [](const CellSpec& s) { return make_lstm(s, true); }},
      },
      {},
      {}};
  static const bool listed = [] {
    for (const auto& [name, factory] : r.factories) r.builtin.push_back(name);
    return true;
  }();
  (void)listed;
  return r;
}

std::string joined_names(const std::map<std::string, CellFactory>& factories) {
  std::ostringstream os;
  for (auto it = factories.begin(); it != factories.end(); ++it) {
    os << (it == factories.begin() ? "" : ", ") << it->first;
  }
  return os.str();
}

}  // namespace

void register_cell(const std::string& name, CellFactory factory) {
  TORCH_CHECK(!name.empty(), "register_cell: expected a non-empty cell name");
  TORCH_CHECK(factory, "register_cell: expected a factory for cell '", name, "', got none");
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (loading) {
    if (std::find(r.builtin.begin(), r.builtin.end(), name) != r.builtin.end()) {
      throw PluginError(loading->path + ": the plugin registers cell '" + name +
                        "', which is built into rnnkit; a plugin's cells need names of their own");
    }
    r.plugin_of[name] = loading->path;
    loading->cells.push_back(name);
  } else {
    r.plugin_of.erase(name);
  }
  r.factories[name] = std::move(factory);
}

std::string cell_plugin(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.plugin_of.find(name);
  return it == r.plugin_of.end() ? std::string() : it->second;
}

namespace detail {
PluginScope::PluginScope(const std::string& path) { loading = new Loading{path, {}}; }
PluginScope::~PluginScope() {
  delete loading;
  loading = nullptr;
}
const std::vector<std::string>& PluginScope::cells() const { return loading->cells; }
}  // namespace detail

std::shared_ptr<CellImplBase> make_cell(const std::string& name, const CellSpec& spec) {
  auto& r = registry();
  CellFactory factory;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.factories.find(name);
    TORCH_CHECK(it != r.factories.end(), "unknown cell '", name,
                "'; known cells: ", joined_names(r.factories));
    factory = it->second;
  }
  auto cell = factory(spec);
  TORCH_CHECK(cell, "the factory of cell '", name, "' returned no cell");
  TORCH_CHECK(cell->input_size() == spec.input_size() && cell->hidden_size() == spec.hidden_size(),
              "the factory of cell '", name, "' built a cell of input_size ", cell->input_size(),
              " and hidden_size ", cell->hidden_size(), "; expected ", spec.input_size(), " and ",
              spec.hidden_size());
  return cell;
}

bool has_cell(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.factories.count(name) > 0;
}

std::vector<std::string> cell_names() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& kv : r.factories) names.push_back(kv.first);
  return names;
}

std::vector<std::string> builtin_cell_names() { return registry().builtin; }

}  // namespace rnnkit
