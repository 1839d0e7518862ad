// rnnkit's Python extension (_rnnkit): the library's RNN as a torch.nn.Module through
// torch::python::bind_module, the cell registry, plugins, and the library's errors as Python
// exceptions. python/rnnkit/__init__.py checks the torch it meets before importing this.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/python.h>
#include <torch/version.h>

#include <rnnkit/error.h>
#include <rnnkit/plugin.h>
#include <rnnkit/registry.h>
#include <rnnkit/rnn.h>
#include <rnnkit/version.h>
#ifdef RNNKIT_PYTHON_CHECKPOINTS
#include <rnnkit/data/vocab.h>
#include <rnnkit/train/checkpoint.h>
#endif

namespace py = pybind11;
#ifdef RNNKIT_PYTHON_CHECKPOINTS
namespace rnnkit::python {
void bind_apps(py::module_& m);  // apps.cpp
}
#endif
using rnnkit::RNNImpl;
using rnnkit::RNNOptions;

namespace {

/// {"peephole": True} -> CellOptions; Python's bool is an int, so it is tested first.
rnnkit::CellOptions cell_options_from(const py::dict& d) {
  rnnkit::CellOptions out;
  for (const auto& [k, v] : d) {
    const auto key = py::cast<std::string>(k);
    if (py::isinstance<py::bool_>(v)) {
      out.emplace(key, v.cast<bool>());
    } else if (py::isinstance<py::int_>(v)) {
      out.emplace(key, v.cast<int64_t>());
    } else if (py::isinstance<py::float_>(v)) {
      out.emplace(key, v.cast<double>());
    } else if (py::isinstance<py::str>(v)) {
      out.emplace(key, v.cast<std::string>());
    } else {
      throw rnnkit::CellOptionError(key, "cell option '" + key +
                                             "': expected a bool, an int, a float or a str, got " +
                                             std::string(py::str(v.get_type().attr("__name__"))));
    }
  }
  return out;
}

py::object to_python(const rnnkit::CellOptionValue& v) {
  return std::visit([](const auto& x) -> py::object { return py::cast(x); }, v.value);
}

py::dict cell_options_to(const rnnkit::CellOptions& o) {
  py::dict d;
  for (const auto& [k, v] : o) d[py::str(k)] = to_python(v);
  return d;
}

using PyState = std::pair<torch::Tensor, std::optional<torch::Tensor>>;

#ifdef RNNKIT_PYTHON_CHECKPOINTS
namespace train = rnnkit::train;

/// Every tensor in `a` by its dotted name, as Module::save wrote the module tree (parameters and
/// buffers, then each child as a nested archive): the names of named_parameters() in C++ and of
/// state_dict() in Python.
void flatten(torch::serialize::InputArchive& a, const std::string& prefix, py::dict& out) {
  for (const auto& key : a.keys()) {
    torch::Tensor t;
    torch::serialize::InputArchive sub;
    if (a.try_read(key, t)) {
      out[py::str(prefix + key)] = t;
    } else if (a.try_read(key, sub)) {
      flatten(sub, prefix + key + ".", out);
    }
  }
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::string::size_type at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

/// A checkpoint written by fit() (any app), checked as the apps check it, as plain Python values.
py::dict load_checkpoint(const std::string& path) {
  auto a = train::open_checkpoint(path, /*app=*/"", /*architecture=*/"");
  py::dict d;
  d["path"] = path;
  d["app"] = train::get_string(a, "rnnkit/app");
  d["architecture"] = train::get_string(a, "rnnkit/architecture");
  d["config_text"] = train::get_string(a, "config");
  torch::serialize::InputArchive model, task;
  if (!a.try_read("model", model) || !a.try_read("task", task)) {
    throw train::CheckpointError(path + ": the checkpoint holds no model or task state");
  }
  py::dict state;
  flatten(model, "", state);
  d["state_dict"] = state;
  // The task's state: strings (put_string's uint8 buffers) as str, the rest as tensors; a string
  // that is a vocabulary file also appears, checked and split, under "vocabularies".
  py::dict raw, vocabularies;
  py::object labels = py::none();
  for (const auto& key : task.keys()) {
    torch::Tensor t;
    if (!task.try_read(key, t)) continue;
    if (t.scalar_type() != torch::kUInt8 || t.dim() != 1) {
      raw[py::str(key)] = t;
      continue;
    }
    const std::string text = train::get_string(task, key);
    raw[py::str(key)] = text;
    if (text.rfind("#rnnkit-vocab ", 0) == 0) {
      const auto vocab = rnnkit::data::Vocab::from_string(text, path + "#" + key);
      std::vector<std::string> tokens;
      for (int64_t i = 0; i < vocab.size(); ++i) tokens.push_back(vocab.token(i));
      vocabularies[py::str(key)] = tokens;
    } else if (key == "labels" || key == "tags") {  // sentiment's classes, ner's tags
      labels = py::cast(lines(text));
    }
  }
  d["vocabularies"] = vocabularies;
  d["labels"] = labels;
  d["task"] = raw;
  return d;
}
#endif

}  // namespace

PYBIND11_MODULE(_rnnkit, m) {
  m.doc() = "rnnkit's explicit recurrent cells as torch.nn modules (see docs/python.md)";
  m.attr("__version__") = RNNKIT_VERSION;
  m.attr("torch_version") = TORCH_VERSION;
  m.attr("abi_tag") = RNNKIT_ABI_TAG;

  // The library's one family of errors (rnnkit/error.h), as the Python types that fit.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const rnnkit::PluginError& e) {
      PyErr_SetString(PyExc_ImportError, e.what());
    } catch (const c10::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    } catch (const c10::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what_without_backtrace());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });

  torch::python::bind_module<RNNImpl, /*force_enable=*/true>(m, "_RNN")
      .def(py::init([](std::string cell, int64_t input_size, int64_t hidden_size,
                       int64_t num_layers, bool bidirectional, double dropout,
                       bool variational_dropout, double recurrent_dropout, bool batch_first,
                       const std::string& init, std::optional<double> forget_bias,
                       const py::dict& cell_options, std::optional<bool> concurrent_directions) {
             RNNOptions o(std::move(cell), input_size, hidden_size);
             o.num_layers(num_layers)
                 .bidirectional(bidirectional)
                 .dropout(dropout)
                 .variational_dropout(variational_dropout)
                 .recurrent_dropout(recurrent_dropout)
                 .batch_first(batch_first)
                 .init(rnnkit::parse_init(init))
                 .cell_options(cell_options_from(cell_options));
             if (forget_bias) o.forget_bias(*forget_bias);
             if (concurrent_directions) o.concurrent_directions(*concurrent_directions);
             return std::make_shared<RNNImpl>(o);
           }),
           py::arg("cell"), py::arg("input_size"), py::arg("hidden_size"), py::kw_only(),
           py::arg("num_layers") = 1, py::arg("bidirectional") = false, py::arg("dropout") = 0.0,
           py::arg("variational_dropout") = false, py::arg("recurrent_dropout") = 0.0,
           py::arg("batch_first") = false, py::arg("init") = "uniform",
           py::arg("forget_bias") = py::none(), py::arg("cell_options") = py::dict(),
           py::arg("concurrent_directions") = py::none())
      .def(
          "forward",
          [](RNNImpl& self, const torch::Tensor& x, std::optional<torch::Tensor> lengths,
             std::optional<std::vector<PyState>> state) {
            std::vector<rnnkit::State> initial;
            if (state) {
              for (const auto& [a, c] : *state) initial.push_back({a, c ? *c : torch::Tensor()});
            }
            auto out = self.forward(x, lengths ? *lengths : torch::Tensor(), initial);
            std::vector<PyState> states;
            for (const auto& s : out.states) {
              states.emplace_back(s.a,
                                  s.c.defined() ? std::optional<torch::Tensor>(s.c) : std::nullopt);
            }
            return std::make_pair(out.output, states);
          },
          py::arg("x"), py::arg("lengths") = py::none(), py::arg("state") = py::none(),
          "x [T, B, D] (or [B, T, D] with batch_first); lengths [B] int64; state: L*K (a, c) "
          "pairs. Returns (output, [(a, c), ...]) with c None for cells without one.")
      .def_property_readonly("cell_name", [](RNNImpl& self) { return self.options.cell(); })
      .def_property_readonly("options", [](RNNImpl& self) {
        const RNNOptions& o = self.options;
        py::dict d;
        d["cell"] = o.cell();
        d["input_size"] = o.input_size();
        d["hidden_size"] = o.hidden_size();
        d["num_layers"] = o.num_layers();
        d["bidirectional"] = o.bidirectional();
        d["dropout"] = o.dropout();
        d["variational_dropout"] = o.variational_dropout();
        d["recurrent_dropout"] = o.recurrent_dropout();
        d["batch_first"] = o.batch_first();
        d["init"] = rnnkit::to_string(o.init());
        d["forget_bias"] = o.forget_bias() ? py::cast(*o.forget_bias()) : py::none();
        d["cell_options"] = cell_options_to(o.cell_options());
        return d;
      });

  // One cell, one step (the plain path, equation by equation), for a loop written in Python.
  torch::python::bind_module<rnnkit::CellImplBase, /*force_enable=*/true>(m, "_Cell")
      .def(py::init([](const std::string& cell, int64_t input_size, int64_t hidden_size,
                       const std::string& init, std::optional<double> forget_bias,
                       const py::dict& cell_options) {
             rnnkit::CellSpec spec(input_size, hidden_size);
             spec.init(rnnkit::parse_init(init)).options(cell_options_from(cell_options));
             if (forget_bias) spec.forget_bias(*forget_bias);
             return rnnkit::make_cell(cell, spec);
           }),
           py::arg("cell"), py::arg("input_size"), py::arg("hidden_size"), py::kw_only(),
           py::arg("init") = "uniform", py::arg("forget_bias") = py::none(),
           py::arg("cell_options") = py::dict())
      .def(
          "forward",
          [](rnnkit::CellImplBase& self, const torch::Tensor& x_t, std::optional<PyState> prev) {
            rnnkit::State p;
            if (prev) p = {prev->first, prev->second ? *prev->second : torch::Tensor()};
            const auto s = self.step(x_t, p);
            return PyState(s.a, s.c.defined() ? std::optional<torch::Tensor>(s.c) : std::nullopt);
          },
          py::arg("x_t"), py::arg("state") = py::none(),
          "x_t [B, D]; state (a<t-1>, c<t-1>) or None (zeros). Returns (a<t>, c<t>), c None for "
          "cells without a memory cell.")
      .def_property_readonly("input_size", &rnnkit::CellImplBase::input_size)
      .def_property_readonly("hidden_size", &rnnkit::CellImplBase::hidden_size)
      .def_property_readonly("has_memory_cell", &rnnkit::CellImplBase::has_memory_cell);

  m.def(
      "cells",
      [] {
        py::list out;
        for (const auto& name : rnnkit::cell_names()) {
          py::list options;
          for (const auto& def : rnnkit::cell_option_defs(name)) {
            py::dict o;
            o["name"] = def.name;
            o["type"] = def.default_value.type_name();
            o["default"] = to_python(def.default_value);
            o["help"] = def.help;
            o["min"] = def.min;
            o["max"] = def.max;
            o["choices"] = def.choices;
            options.append(o);
          }
          py::dict c;
          c["name"] = name;
          c["options"] = options;
          c["plugin"] = rnnkit::cell_plugin(name);
          out.append(c);
        }
        return out;
      },
      "The registered cells (built in, and from plugins), each with the options it takes.");
  m.def(
      "load_plugin",
      [](const std::string& path, const std::string& sha256) {
        const auto& info = rnnkit::load_plugin(path, sha256);
        py::dict d;
        d["path"] = info.path;
        d["name"] = info.name;
        d["cells"] = info.cells;
        d["sha256"] = info.sha256;
        return d;
      },
      py::arg("path"), py::arg("sha256") = "",
      "Loads a cell plugin with the apps' checks (ABI tag, registration, optional sha256).");
#ifdef RNNKIT_PYTHON_CHECKPOINTS
  py::register_exception<train::CheckpointError>(m, "CheckpointError", PyExc_ValueError);
  m.def("load_checkpoint", &load_checkpoint, py::arg("path"),
        "An app's checkpoint, checksum verified: app, architecture, config_text, state_dict, "
        "vocabularies, labels and the task's raw state.");
  rnnkit::python::bind_apps(m);
#endif
}
