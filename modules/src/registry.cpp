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

struct CellType {
  CellFactory factory;
  std::vector<CellOptionDef> options;
  std::string alias_of;  // an alias: the cell it builds, with `fixed` set
  CellOptions fixed;
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, CellType> types;
  std::vector<std::string> builtin;              // the names registered at start
  std::map<std::string, std::string> plugin_of;  // cell -> the plugin that registered it
};

// The plugin whose body the calling thread runs, and what it has registered.
struct Loading {
  std::string path;
  std::vector<std::string> cells;
};
thread_local Loading* loading = nullptr;

std::shared_ptr<CellImplBase> make_rnn(const CellSpec& s) {
  const std::string g = s.option<std::string>("activation");
  return std::make_shared<RNNCellImpl>(
      RNNCellOptions(s.input_size(), s.hidden_size())
          .activation(g == "relu" ? Activation::kReLU : Activation::kTanh)
          .init(s.init()));
}
std::shared_ptr<CellImplBase> make_simple_gru(const CellSpec& s) {
  return std::make_shared<SimpleGRUCellImpl>(SimpleGRUCellOptions(s.input_size(), s.hidden_size())
                                                 .init(s.init())
                                                 .forget_bias(s.forget_bias()));
}
std::shared_ptr<CellImplBase> make_gru(const CellSpec& s) {
  return std::make_shared<GRUCellImpl>(GRUCellOptions(s.input_size(), s.hidden_size())
                                           .reset_after(s.option<bool>("reset_after"))
                                           .init(s.init())
                                           .forget_bias(s.forget_bias()));
}
std::shared_ptr<CellImplBase> make_lstm(const CellSpec& s) {
  return std::make_shared<LSTMCellImpl>(LSTMCellOptions(s.input_size(), s.hidden_size())
                                            .peephole(s.option<bool>("peephole"))
                                            .init(s.init())
                                            .forget_bias(s.forget_bias()));
}

// Built in at first use, so static initialisation order never matters. A new built-in cell is
// one line here (tests and benchmarks enumerate builtin_cell_names()).
Registry& registry() {
  static Registry r;
  static const bool built = [] {
    r.types["rnn"] = {
        make_rnn, {{"activation", "tanh", "g in a<t> = g(...)", 0, 0, {"tanh", "relu"}}}, {}, {}};
    r.types["gru_simple"] = {make_simple_gru, {}, {}, {}};
    r.types["gru"] = {
        make_gru,
        {{"reset_after", false,
          "Γr multiplies W_cc c<t-1> + b_cc, after the product (cuDNN, torch.nn.GRU)"}},
        {},
        {}};
    r.types["lstm"] = {make_lstm,
                       {{"peephole", false, "the gates also see c<t-1> (Gers & Schmidhuber 2000)"}},
                       {},
                       {}};
    r.types["rnn_relu"] = {{}, {}, "rnn", {{"activation", "relu"}}};
    r.types["gru_reset_after"] = {{}, {}, "gru", {{"reset_after", true}}};
    r.types["lstm_peephole"] = {{}, {}, "lstm", {{"peephole", true}}};
    for (const auto& kv : r.types) r.builtin.push_back(kv.first);
    return true;
  }();
  (void)built;
  return r;
}

std::string joined_names(const std::map<std::string, CellType>& types) {
  std::ostringstream os;
  for (auto it = types.begin(); it != types.end(); ++it) {
    os << (it == types.begin() ? "" : ", ") << it->first;
  }
  return os.str();
}

// The cell type `name` resolves to (aliases followed), with what the alias fixes; r.mutex held.
const CellType& resolve(Registry& r, const std::string& name, std::string* target,
                        CellOptions* fixed) {
  auto it = r.types.find(name);
  TORCH_CHECK(it != r.types.end(), "unknown cell '", name,
              "'; known cells: ", joined_names(r.types));
  *target = name;
  if (!it->second.alias_of.empty()) {
    *fixed = it->second.fixed;
    *target = it->second.alias_of;
    it = r.types.find(*target);
    TORCH_CHECK(it != r.types.end(), "cell '", name, "' is an alias of '", *target,
                "', which is not registered");
  }
  return it->second;
}

bool is_number(const CellOptionValue& v) {
  return std::holds_alternative<int64_t>(v.value) || std::holds_alternative<double>(v.value);
}

// `given` checked against `defs`, completed with the defaults.
CellOptions check(const std::string& name, const std::vector<CellOptionDef>& defs,
                  const CellOptions& fixed, const CellOptions& given) {
  CellOptions out = fixed;
  for (const auto& [key, value] : given) {
    if (fixed.count(key)) {
      throw CellOptionError(key, "cell '" + name + "' fixes " + key + " = " +
                                     fixed.at(key).to_string() +
                                     "; choose the option on the cell it is an alias of");
    }
    const auto def = std::find_if(defs.begin(), defs.end(),
                                  [&, k = key](const CellOptionDef& d) { return d.name == k; });
    if (def == defs.end()) {
      std::string known;
      for (const auto& d : defs) {
        if (!fixed.count(d.name)) known += (known.empty() ? "" : ", ") + d.name;
      }
      throw CellOptionError(key,
                            "unknown option '" + key + "' for cell '" + name + "'; " +
                                (known.empty() ? "it takes no options" : "it takes: " + known));
    }
    CellOptionValue v = value;
    const bool want_double = std::holds_alternative<double>(def->default_value.value);
    if (want_double && std::holds_alternative<int64_t>(v.value)) {
      v = static_cast<double>(std::get<int64_t>(v.value));  // 1 where a number is expected
    }
    if (v.value.index() != def->default_value.value.index()) {
      throw CellOptionError(key, "option '" + key + "' of cell '" + name + "': expected " +
                                     def->default_value.type_name() + ", got " + value.to_string());
    }
    if (is_number(v)) {
      const double x =
          want_double ? std::get<double>(v.value) : static_cast<double>(std::get<int64_t>(v.value));
      if (!(x >= def->min && x <= def->max)) {
        std::ostringstream os;
        os << "option '" << key << "' of cell '" << name << "': expected a value in [" << def->min
           << ", " << def->max << "], got " << v.to_string();
        throw CellOptionError(key, os.str());
      }
    }
    if (const auto* str = std::get_if<std::string>(&v.value); str && !def->choices.empty()) {
      if (std::find(def->choices.begin(), def->choices.end(), *str) == def->choices.end()) {
        std::string choices;
        for (const auto& c : def->choices) choices += (choices.empty() ? "" : ", ") + c;
        throw CellOptionError(key, "option '" + key + "' of cell '" + name + "': expected one of " +
                                       choices + ", got " + v.to_string());
      }
    }
    out.insert_or_assign(key, v);
  }
  for (const auto& d : defs) out.emplace(d.name, d.default_value);
  return out;
}

}  // namespace

const char* CellOptionValue::type_name() const {
  static const char* names[] = {"a boolean", "an integer", "a number", "a string"};
  return names[value.index()];
}

std::string CellOptionValue::to_string() const {
  std::ostringstream os;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>)
          os << (v ? "true" : "false");
        else if constexpr (std::is_same_v<T, std::string>)
          os << '"' << v << '"';
        else
          os << v;
      },
      value);
  return os.str();
}

// Who registers `name`: a plugin's body (recorded; built-in names refused) or the program.
// r.mutex held.
static void note_origin(Registry& r, const std::string& name) {
  if (loading) {
    if (std::find(r.builtin.begin(), r.builtin.end(), name) != r.builtin.end()) {
      throw PluginError(loading->path + ": the plugin registers cell '" + name +
                        "', which is built into rnnkit; a plugin's cells need names of their own");
    }
    // Two plugins with one cell name: the later would silently replace the earlier.
    if (const auto it = r.plugin_of.find(name);
        it != r.plugin_of.end() && it->second != loading->path) {
      throw PluginError(loading->path + ": the plugin registers cell '" + name +
                        "', which the plugin " + it->second +
                        " registered already; two plugins cannot share a cell name");
    }
    r.plugin_of[name] = loading->path;
    loading->cells.push_back(name);
  } else {
    r.plugin_of.erase(name);
  }
}

void register_cell(const std::string& name, CellFactory factory,
                   std::vector<CellOptionDef> options) {
  TORCH_CHECK(!name.empty(), "register_cell: expected a non-empty cell name");
  TORCH_CHECK(factory, "register_cell: expected a factory for cell '", name, "', got none");
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (size_t i = 0; i < options.size(); ++i) {
    TORCH_CHECK(!options[i].name.empty(), "register_cell('", name, "'): option ", i,
                " has no name");
    for (size_t j = 0; j < i; ++j) {
      TORCH_CHECK(options[j].name != options[i].name, "register_cell('", name, "'): option '",
                  options[i].name, "' is defined twice");
    }
  }
  note_origin(r, name);
  r.types[name] = CellType{std::move(factory), std::move(options), {}, {}};
}

void register_cell_alias(const std::string& alias, const std::string& cell, CellOptions fixed) {
  TORCH_CHECK(!alias.empty(), "register_cell_alias: expected a non-empty name");
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.types.find(cell);
  TORCH_CHECK(it != r.types.end() && it->second.alias_of.empty(), "register_cell_alias('", alias,
              "'): expected a registered cell that is not an alias, got '", cell, "'");
  // The fixed options must be valid options of the cell.
  (void)check(cell, it->second.options, {}, fixed);
  note_origin(r, alias);
  r.types[alias] = CellType{{}, {}, cell, std::move(fixed)};
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
  CellSpec full = spec;
  full.rnn().cell(name);
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    std::string target;
    CellOptions fixed;
    const CellType& type = resolve(r, name, &target, &fixed);
    factory = type.factory;
    full.options(check(name, type.options, fixed, spec.options()));
  }
  auto cell = factory(full);
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
  return r.types.count(name) > 0;
}

std::vector<CellOptionDef> cell_option_defs(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::string target;
  CellOptions fixed;
  std::vector<CellOptionDef> out;
  for (const auto& d : resolve(r, name, &target, &fixed).options) {
    if (!fixed.count(d.name)) out.push_back(d);
  }
  return out;
}

CellOptions check_cell_options(const std::string& name, const CellOptions& given) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::string target;
  CellOptions fixed;
  const CellType& type = resolve(r, name, &target, &fixed);
  return check(name, type.options, fixed, given);
}

std::string cell_label(const std::string& name, const CellOptions& given) {
  if (given.empty()) return name;
  std::string s = name + "(";
  for (auto it = given.begin(); it != given.end(); ++it) {
    s += (it == given.begin() ? "" : ", ") + it->first + "=" + it->second.to_string();
  }
  return s + ")";
}

std::vector<std::string> cell_names() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& kv : r.types) names.push_back(kv.first);
  return names;
}

std::vector<std::string> builtin_cell_names() { return registry().builtin; }

}  // namespace rnnkit
