#pragma once
// rnnkit-serve's Prometheus metrics (GET /metrics, text format 0.0.4): requests by route and
// status, latency by route, texts per forward pass by model, queue depths, tokens generated and
// resident memory.
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace rnnkit::serve {

struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // per bucket here, cumulative when rendered
  double sum = 0;
  uint64_t n = 0;
  explicit Histogram(std::vector<double> b = {}) : bounds(std::move(b)), counts(bounds.size(), 0) {}
  void add(double v);
  void render(std::ostream& os, const std::string& name, const std::string& labels) const;
};

class Metrics {
 public:
  void request(const std::string& route, int status, double seconds);
  void batch(const std::string& model, size_t size);
  void tokens(uint64_t n);
  /// The text /metrics answers; `queue_depths` gives each model's queue depth (none while the
  /// models load).
  std::string text(const std::vector<std::pair<std::string, size_t>>& queue_depths) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (route, status)
  std::map<std::string, Histogram> latency_;                  // by route
  std::map<std::string, Histogram> batch_size_;               // by model
  uint64_t tokens_generated_ = 0;
};

/// The route a path belongs to, for metrics: its template ("POST /v1/models/{name}/tag", with
/// `actions` the routes' last segments), or "other"; a method outside HTTP's own is "OTHER".
/// Every label value comes from these fixed sets, so a client cannot grow the metrics (20,000
/// invented 7 kB methods once made /metrics 2.3 GB) or inject into their text.
std::string route_of(const std::string& method, const std::string& path,
                     const std::vector<std::string>& actions);

}  // namespace rnnkit::serve
