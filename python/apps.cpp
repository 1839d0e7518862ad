// The trained apps from Python (rnnkit.load, rnnkit.train; docs/python.md). Every method calls
// the code the command line and the server call (the apps' loaded models, their decoders and
// the functions that write their JSON answers), so an answer here is predict --json's answer.
// Answers cross as JSON text and become dicts in python/rnnkit/__init__.py. The GIL is released
// while a model runs.
#include <cmath>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/cuda.h>
#include <torch/python.h>

#include <rnnkit/data/text.h>
#include <rnnkit/data/tokenize.h>
#include <rnnkit/plugin.h>
#include <rnnkit/precision.h>
#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/config.h>
#include <rnnkit/train/json.h>
#include <rnnkit/train/signals.h>
#include <rnnkit/train/texts.h>
#include <cxxopts.hpp>

#include "lm/lm.h"
#include "ner/ner.h"
#include "sentiment/sentiment.h"
#include "seq2seq/seq2seq.h"

namespace py = pybind11;

namespace rnnkit::python {
namespace train = rnnkit::train;
using train::Json;

namespace {

/// The command line's words for consent, in Python's: a checkpoint's plugin is refused with
/// the argument that gives consent.
std::string in_python_words(std::string s) {
  const std::pair<const char*, const char*> words[] = {
      {"--trust-checkpoint-plugins", "trust_plugins=True"}, {"--plugin PATH", "plugin=PATH"}};
  for (const auto& [cli, py] : words) {
    for (size_t at = s.find(cli); at != std::string::npos; at = s.find(cli, at))
      s.replace(at, std::string(cli).size(), py), at += std::string(py).size();
  }
  return s;
}

/// Runs `f` without the GIL; the library's refusals of what the caller gave become ValueError.
template <class F>
auto released(F&& f) {
  try {
    py::gil_scoped_release nogil;
    return f();
  } catch (const train::TextError& e) {
    throw py::value_error(e.what());
  } catch (const std::invalid_argument& e) {
    throw py::value_error(in_python_words(e.what()));
  } catch (const train::ConfigError& e) {
    throw py::value_error(in_python_words(e.what()));
  }
}

/// What every loaded app keeps: where it runs, its precision and the text limits.
struct Runtime {
  torch::Device device{torch::kCPU};
  Precision precision = Precision::kFP32;
  train::TextLimits limits;

  Runtime(const std::string& device_name, const std::string& precision_name, int64_t max_texts,
          int64_t max_text_bytes) {
    try {
      device = torch::Device(device_name);
    } catch (const c10::Error&) {
      throw std::invalid_argument("device: expected cpu, cuda or cuda:N, got '" + device_name +
                                  "'");
    }
    if (!device.is_cpu() && !device.is_cuda())
      throw std::invalid_argument("device: expected cpu, cuda or cuda:N, got '" + device_name +
                                  "'");
    if (device.is_cuda() && !torch::cuda::is_available()) {
      throw std::invalid_argument("device " + device_name +
                                  ": CUDA is not available (a CPU-only LibTorch, or no GPU "
                                  "visible); use device='cpu'");
    }
    try {
      precision = parse_precision(precision_name);
    } catch (const c10::ValueError&) {
      throw std::invalid_argument("precision: expected fp32, bf16 or fp16, got '" + precision_name +
                                  "'");
    }
    if (precision == Precision::kFP16 && device.is_cpu())
      throw std::invalid_argument("precision fp16 is for CUDA devices only; on a CPU use bf16");
    if (max_texts < 1 || max_text_bytes < 1) {
      throw std::invalid_argument("max_texts and max_text_bytes: expected at least 1, got " +
                                  std::to_string(max_texts) + " and " +
                                  std::to_string(max_text_bytes));
    }
    limits.max_texts = max_texts;
    limits.max_text_bytes = max_text_bytes;
    limits.max_texts_name = "max_texts=";
    limits.max_text_bytes_name = "max_text_bytes=";
  }

  /// The texts checked and normalised as the server checks a request's.
  std::vector<std::string> texts(const std::vector<std::string>& given, bool refuse_empty,
                                 const std::string& task) const {
    train::check_text_count(given.size(), "texts", limits);
    std::vector<std::string> out;
    for (size_t i = 0; i < given.size(); ++i) {
      const std::string field = "texts[" + std::to_string(i) + "]";
      out.push_back(train::checked_text(given[i], field, limits));
      if (refuse_empty) train::refuse_blank(out.back(), field, task);
    }
    return out;
  }
};

std::string json_text(const std::vector<Json>& items) { return train::json_line(Json(items)); }

/// Loads with the caller's consent to the checkpoint's recorded plugins, for this load only.
template <class F>
auto with_plugins(bool trust, const std::vector<std::string>& plugins, F&& load) {
  for (const auto& p : plugins) load_plugin(p, "");
  train::trust_checkpoint_plugins(trust);
  struct Reset {
    ~Reset() { train::trust_checkpoint_plugins(false); }
  } reset;
  return load();
}

struct Tagger {
  Runtime rt;
  ner::Loaded m;

  std::string tag(const std::optional<std::vector<std::string>>& texts,
                  const std::optional<std::vector<std::vector<std::string>>>& tokens,
                  bool token_tags) {
    return released([&] {
      if (texts.has_value() == tokens.has_value())
        throw std::invalid_argument("give one of texts (raw text) and tokens (pre-tokenized)");
      std::vector<std::string> t;
      std::vector<std::vector<data::TextToken>> toks;
      if (texts) {
        t = rt.texts(*texts, false, "tag");
        for (const auto& s : t) toks.push_back(data::tokenize_ptb(s));
      } else {
        train::check_text_count(tokens->size(), "tokens", rt.limits);
        for (size_t i = 0; i < tokens->size(); ++i) {
          std::vector<std::string> words;
          for (size_t k = 0; k < (*tokens)[i].size(); ++k) {
            words.push_back(train::checked_text(
                (*tokens)[i][k], "tokens[" + std::to_string(i) + "][" + std::to_string(k) + "]",
                rt.limits));
          }
          auto [text, offsets] = ner::joined_tokens(words);
          t.push_back(std::move(text));
          toks.push_back(std::move(offsets));
        }
      }
      c10::InferenceMode guard;
      const AutocastGuard autocast(rt.precision, rt.device.type());
      return json_text(ner::tag_json(m, t, toks, rt.device, token_tags));
    });
  }
};

struct Classifier {
  Runtime rt;
  std::vector<sentiment::Loaded> models;

  std::string classify(const std::vector<std::string>& texts) {
    return released([&] {
      const auto t = rt.texts(texts, true, "classify");
      c10::InferenceMode guard;
      const AutocastGuard autocast(rt.precision, rt.device.type());
      return json_text(sentiment::classify_json(models, t, rt.device));
    });
  }
};

struct LanguageModel {
  Runtime rt;
  lm::Loaded m;

  std::string score(const std::vector<std::string>& texts) {
    return released([&] {
      const auto t = rt.texts(texts, false, "score");
      c10::InferenceMode guard;
      const AutocastGuard autocast(rt.precision, rt.device.type());
      std::vector<Json> out;
      for (const auto& line : t)
        out.push_back(lm::score_json(line, lm::score_line(m, line, rt.device)));
      return json_text(out);
    });
  }

  /// sample's text (the prompt not included), with sample's checks in Python's words.
  std::string generate(const std::string& prompt, int64_t max_tokens, double temperature,
                       std::optional<int64_t> top_k, uint64_t seed, bool greedy, bool stop_at_eos,
                       bool allow_unk) {
    return released([&] {
      lm::SampleOptions o;
      o.prompt = train::checked_text(prompt, "prompt", rt.limits);
      if (!(temperature >= 0) || !std::isfinite(temperature))
        throw std::invalid_argument("temperature must be a number >= 0 (0: greedy)");
      if (top_k && *top_k < 1) {
        throw std::invalid_argument("top_k must be at least 1, got " + std::to_string(*top_k) +
                                    " (None draws from the whole vocabulary)");
      }
      if (max_tokens < 1)
        throw std::invalid_argument("max_tokens must be at least 1, got " +
                                    std::to_string(max_tokens));
      if (const auto bad = data::find_invalid_utf8(prompt); bad >= 0)
        throw std::invalid_argument("prompt is not valid UTF-8 (byte " + std::to_string(bad + 1) +
                                    ")");
      o.temperature = temperature;
      o.top_k = top_k.value_or(0);
      o.greedy = greedy;
      o.seed = seed;
      o.max_length = max_tokens;
      o.stop_at_eos = stop_at_eos;
      o.no_unk = !allow_unk;
      c10::InferenceMode guard;
      const AutocastGuard autocast(rt.precision, rt.device.type());
      return lm::sample(m, o, rt.device);
    });
  }
};

struct Translator {
  Runtime rt;
  seq2seq::Loaded m;

  std::string translate(const std::vector<std::string>& texts, int64_t beam, double alpha,
                        int64_t n_best, bool attention, int64_t max_length, bool allow_unk) {
    return released([&] {
      seq2seq::TranslateOptions o;
      o.beam = beam;
      o.alpha = alpha;
      o.n_best = n_best;
      o.keep_attention = attention;
      o.max_length = max_length;
      o.allow_unk = allow_unk;
      seq2seq::check_translate_options(o);
      const auto t = rt.texts(texts, false, "translate");
      std::vector<std::vector<std::string>> sources;
      for (const auto& s : t) sources.push_back(m.config.tokenize_line(s));
      c10::InferenceMode guard;
      const AutocastGuard autocast(rt.precision, rt.device.type());
      std::vector<Json> out;
      for (const auto& tr : seq2seq::translate(m, sources, o))
        out.push_back(seq2seq::translation_json(m, tr, attention));
      return json_text(out);
    });
  }
};

/// The app a checkpoint was written by ("ner", ...), read from its header and archive.
std::string app_of(const std::string& path) {
  auto archive = train::open_checkpoint(path, "", "");
  return train::get_string(archive, "rnnkit/app");
}

/// `rnnkit-APP train` with `args` (--config ... --run-dir ... --set k=v), as the command line
/// runs it: the StopGuard, train.log and metrics.csv, checkpoints, resume. A Ctrl-C stops it as
/// SIGINT stops the command (last.pt written), then is Python's KeyboardInterrupt.
int train_app(const std::string& app, std::vector<std::string> args) {
  int status = 0;
  {
    py::gil_scoped_release nogil;
    args.insert(args.begin(), "rnnkit-" + app + " train");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int argc = static_cast<int>(args.size());
    auto run = [&](auto fit) {
      return train::train_command(argc, argv.data(), args[0], "Train from Python",
                                  [&](train::ConfigReader& config, const train::RunOptions& r) {
                                    return train::report_done(r, fit(config, r));
                                  });
    };
    train::set_stop_signal(0);
    try {
      if (app == "ner") {
        status = run([](auto& c, const auto& r) { return ner::train(c, r); });
      } else if (app == "sentiment") {
        status = run([](auto& c, const auto& r) { return sentiment::train(c, r); });
      } else if (app == "lm") {
        status = run([](auto& c, const auto& r) { return lm::train(c, r); });
      } else if (app == "seq2seq") {
        status = run([](auto& c, const auto& r) { return seq2seq::train(c, r); });
      } else {
        throw std::invalid_argument("app: expected ner, sentiment, lm or seq2seq, got '" + app +
                                    "'");
      }
    } catch (const cxxopts::exceptions::exception& e) {
      throw std::invalid_argument(e.what());
    } catch (const train::ConfigError& e) {
      throw std::invalid_argument(e.what());
    }
  }
  if (train::stop_signal() == SIGINT) {
    train::set_stop_signal(0);
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
  return status;
}

}  // namespace

/// The constructor every app object shares: the runtime, then the checkpoint(s) loaded with the
/// GIL released and with the plugin consent given.
template <class App, class Source, class Load>
void def_loading_init(py::class_<App>& cls, const char* source_name, Load load) {
  cls.def(py::init([load](const Source& source, const std::string& device,
                          const std::string& precision, int64_t max_texts, int64_t max_text_bytes,
                          bool trust, const std::vector<std::string>& plugins) {
            Runtime rt(device, precision, max_texts, max_text_bytes);
            auto loaded = released([&] {
              return with_plugins(trust, plugins, [&] { return load(source, rt.device); });
            });
            return App{rt, std::move(loaded)};
          }),
          py::arg(source_name), py::arg("device"), py::arg("precision"), py::arg("max_texts"),
          py::arg("max_text_bytes"), py::arg("trust_plugins"), py::arg("plugins"));
}

void bind_apps(py::module_& m) {
  // The models, as torch.nn modules (torch.nn.cpp.ModuleWrapper wraps them in __init__.py):
  // parameters, train()/eval(), to(), state_dict for a fine-tuning loop of one's own.
  torch::python::bind_module<ner::TaggerImpl, /*force_enable=*/true>(m, "_TaggerModel");
  torch::python::bind_module<sentiment::ClassifierImpl, true>(m, "_ClassifierModel");
  torch::python::bind_module<lm::LanguageModelImpl, true>(m, "_LanguageModelModel");
  torch::python::bind_module<seq2seq::Seq2SeqImpl, true>(m, "_Seq2SeqModel");

  m.def(
      "_app_of", [](const std::string& path) { return released([&] { return app_of(path); }); },
      py::arg("path"));

  py::class_<Tagger> tagger(m, "_Tagger");
  def_loading_init<Tagger, std::string>(
      tagger, "path", [](const std::string& s, torch::Device d) { return ner::load_model(s, d); });
  tagger.def("tag", &Tagger::tag, py::arg("texts"), py::arg("tokens"), py::arg("token_tags"))
      .def_property_readonly("model", [](Tagger& t) { return t.m.model.ptr(); })
      .def_property_readonly("tags", [](Tagger& t) { return t.m.lexicon.tags; })
      .def_property_readonly("architecture",
                             [](Tagger& t) { return ner::architecture(t.m.config, t.m.lexicon); });

  py::class_<Classifier> classifier(m, "_Classifier");
  def_loading_init<Classifier, std::vector<std::string>>(
      classifier, "paths", [](const std::vector<std::string>& s, torch::Device d) {
        return sentiment::load_models(s, d);
      });
  classifier.def("classify", &Classifier::classify, py::arg("texts"))
      .def_property_readonly("models",
                             [](Classifier& c) {
                               std::vector<std::shared_ptr<sentiment::ClassifierImpl>> out;
                               for (auto& l : c.models) out.push_back(l.model.ptr());
                               return out;
                             })
      .def_property_readonly("labels", [](Classifier& c) { return c.models.front().labels; });

  py::class_<LanguageModel> languagemodel(m, "_LanguageModel");
  def_loading_init<LanguageModel, std::string>(
      languagemodel, "path",
      [](const std::string& s, torch::Device d) { return lm::load_model(s, d); });
  languagemodel.def("score", &LanguageModel::score, py::arg("texts"))
      .def("generate", &LanguageModel::generate, py::arg("prompt"), py::arg("max_tokens"),
           py::arg("temperature"), py::arg("top_k"), py::arg("seed"), py::arg("greedy"),
           py::arg("stop_at_eos"), py::arg("allow_unk"))
      .def_property_readonly("model", [](LanguageModel& l) { return l.m.model.ptr(); })
      .def_property_readonly(
          "vocab_size", [](LanguageModel& l) { return static_cast<int64_t>(l.m.vocab.size()); });

  py::class_<Translator> translator(m, "_Translator");
  def_loading_init<Translator, std::string>(
      translator, "path",
      [](const std::string& s, torch::Device d) { return seq2seq::load_model(s, d); });
  translator
      .def("translate", &Translator::translate, py::arg("texts"), py::arg("beam"), py::arg("alpha"),
           py::arg("n_best"), py::arg("attention"), py::arg("max_length"), py::arg("allow_unk"))
      .def_property_readonly("model", [](Translator& t) { return t.m.model.ptr(); });

  m.def("_train", &train_app, py::arg("app"), py::arg("args"),
        "The app's train command with these arguments; its exit status.");
}

}  // namespace rnnkit::python
