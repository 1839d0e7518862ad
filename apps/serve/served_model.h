#pragma once
// A model rnnkit-serve serves, and the table of the apps it serves. Each app is one class in
// apps/serve/models/ and one row of served_apps(): its checkpoint tag, the routes it answers,
// their OpenAPI description and how it loads. The server picks the row by the checkpoint's app
// tag; it never compares task names itself.
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>
#include <rnnkit/rnn_options.h>
#include <rnnkit/train/json.h>
#include <torch/types.h>

#include "serve.h"

namespace torch::nn {
class Module;
}

namespace rnnkit::serve {

class Metrics;

/// What every served model is given: the server's options, the device and the metrics. Each
/// outlives every model.
struct ServeContext {
  const ServeOptions& options;
  torch::Device device;
  Metrics& metrics;
};

class ServedModel {
 public:
  ServedModel(const ModelSpec& spec, std::string task, const ServeContext& context)
      : name_(spec.name), task_(std::move(task)), context_(context) {}
  virtual ~ServedModel() = default;
  ServedModel(const ServedModel&) = delete;
  ServedModel& operator=(const ServedModel&) = delete;

  const std::string& name() const { return name_; }
  /// Its checkpoints' app tag ("sentiment").
  const std::string& task() const { return task_; }
  /// Answers POST /v1/models/{name}/{action}; `action` is one of its app's (ServedApp::actions).
  /// Errors are HttpErrors (4xx/5xx with a message) or data::DataErrors (400).
  virtual void handle(const std::string& action, const std::string& body,
                      httplib::Response& res) = 0;
  /// Its card's own fields ("model", "parameters", vocabulary sizes, labels, ...).
  virtual void describe(train::Json& card) const = 0;
  /// Texts (or generations) waiting for a forward pass.
  virtual size_t queue_depth() const = 0;
  /// The drain ran out: every request waiting for this model's worker gets a 503 `why` now,
  /// and so does every later one.
  virtual void abandon(const std::string& why) = 0;

 protected:
  const ServeOptions& options() const { return context_.options; }
  torch::Device device() const { return context_.device; }
  /// Counts a forward pass's batch size in the metrics.
  std::function<void(size_t)> on_batch() const;

 private:
  std::string name_, task_;
  ServeContext context_;
};

/// One row per served app.
struct ServedApp {
  std::string tag;                   ///< the checkpoint's rnnkit/app ("sentiment")
  std::vector<std::string> actions;  ///< its routes' last segments ("classify")
  bool ensembles = false;            ///< several checkpoints may make one model
  /// The OpenAPI 3 path items of its routes, by path.
  std::function<train::Json(const ServeOptions&)> openapi;
  std::function<std::unique_ptr<ServedModel>(const ModelSpec&, const ServeContext&)> load;
};

/// Every app the server serves (apps/serve/models/models.cpp).
const std::vector<ServedApp>& served_apps();
/// The row for `tag`, or nullptr.
const ServedApp* served_app(const std::string& tag);
/// Every app's actions, in the table's order.
std::vector<std::string> served_actions();

/// GET /v1/models's card of `model`: its name, task, versions, checkpoints (path, sha256, and
/// the epoch and validation metrics of the run that wrote it), then its own fields.
train::Json model_card(const ServedModel& model, const ModelSpec& spec,
                       const std::vector<std::string>& shas);
/// A card's "model" for a recurrent setting: cell, cell options, hidden size, layers.
train::Json recurrent_card(const RNNOptions& r);
int64_t parameter_count(const torch::nn::Module& m);

/// An exception's message for an answer: LibTorch's without its backtrace.
std::string error_message(const std::exception_ptr& error);
/// Answers `j` as one line of JSON.
void answer(httplib::Response& res, int status, const train::Json& j);

}  // namespace rnnkit::serve
