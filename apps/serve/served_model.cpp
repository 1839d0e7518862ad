#include "served_model.h"

#include <filesystem>
#include <variant>

#include <c10/util/Exception.h>
#include <rnnkit/compat.h>
#include <rnnkit/version.h>
#include <torch/nn/module.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/metrics_log.h>
#include "metrics.h"

namespace rnnkit::serve {
namespace fs = std::filesystem;
using train::Json;

namespace {

/// The epoch of `checkpoint` (as fit() saved it) and that epoch's row of metrics.csv beside it:
/// its validation metrics and the precision it trained in.
Json run_record(const std::string& checkpoint, const std::string& task) {
  Json r = Json::object();
  int64_t epoch = -1;
  try {
    auto a = train::open_checkpoint(checkpoint, task, "");
    epoch = train::get_int(a, "train/epoch");
  } catch (const std::exception&) {
    return r;  // not written by fit(): no record
  }
  r["epoch"] = epoch;
  const train::MetricsLog log((fs::path(checkpoint).parent_path() / "metrics.csv").string());
  const auto row = log.row(epoch);
  if (!row) return r;
  Json v = Json::object();
  for (const auto& [name, cell] : *row) {
    if (name == "precision" && !cell.empty()) r["precision"] = cell;
    if (name.rfind("val_", 0) == 0) {
      try {
        v[name] = std::stod(cell);
      } catch (const std::exception&) {
      }
    }
  }
  r["validation"] = v;
  return r;
}

}  // namespace

std::function<void(size_t)> ServedModel::on_batch() const {
  return [&metrics = context_.metrics, name = name_](size_t n) { metrics.batch(name, n); };
}

const ServedApp* served_app(const std::string& tag) {
  for (const auto& app : served_apps()) {
    if (app.tag == tag) return &app;
  }
  return nullptr;
}

std::vector<std::string> served_actions() {
  std::vector<std::string> all;
  for (const auto& app : served_apps())
    all.insert(all.end(), app.actions.begin(), app.actions.end());
  return all;
}

Json model_card(const ServedModel& model, const ModelSpec& spec,
                const std::vector<std::string>& shas) {
  Json c{{"name", model.name()},
         {"task", model.task()},
         {"rnnkit_version", RNNKIT_VERSION},
         {"libtorch_version", torch_version()}};
  Json files = Json::array();
  for (size_t i = 0; i < spec.checkpoints.size(); ++i) {
    files.push_back({{"path", fs::absolute(spec.checkpoints[i]).string()},
                     {"sha256", shas[i]},
                     {"run", run_record(spec.checkpoints[i], model.task())}});
  }
  c["checkpoints"] = files;
  model.describe(c);
  return c;
}

Json recurrent_card(const RNNOptions& r) {
  Json o = Json::object();
  for (const auto& [k, v] : r.cell_options()) {
    std::visit([&, key = k](const auto& x) { o[key] = x; }, v.value);
  }
  return Json{{"cell", r.cell()},
              {"cell_options", o},
              {"hidden_size", r.hidden_size()},
              {"num_layers", r.num_layers()}};
}

int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::string error_message(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an unknown error";
  }
}

void answer(httplib::Response& res, int status, const Json& j) {
  res.status = status;
  res.set_content(train::json_line(j) + "\n", "application/json");
}

}  // namespace rnnkit::serve
