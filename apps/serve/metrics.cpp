#include "metrics.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace rnnkit::serve {
namespace {

const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,   0.25,   0.5,   1,    2.5,   10};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128};

double resident_bytes() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

void Histogram::add(double v) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (v <= bounds[i]) ++counts[i];
  }
  sum += v;
  ++n;
}

void Histogram::render(std::ostream& os, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < bounds.size(); ++i) {
    os << name << "_bucket{" << labels << sep << "le=\"" << bounds[i] << "\"} " << counts[i]
       << "\n";
  }
  os << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << n << "\n";
  os << name << "_sum{" << labels << "} " << sum << "\n";
  os << name << "_count{" << labels << "} " << n << "\n";
}

void Metrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  latency_.try_emplace(route, kLatencyBounds).first->second.add(seconds);
}

void Metrics::batch(const std::string& model, size_t size) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_size_.try_emplace(model, kBatchBounds).first->second.add(static_cast<double>(size));
}

void Metrics::tokens(uint64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  tokens_generated_ += n;
}

std::string Metrics::text(const std::vector<std::pair<std::string, size_t>>& queue_depths) const {
  std::ostringstream os;
  std::lock_guard<std::mutex> lock(mutex_);
  os << "# HELP rnnkit_requests_total HTTP requests by route and status.\n"
        "# TYPE rnnkit_requests_total counter\n";
  for (const auto& [k, n] : requests_) {
    os << "rnnkit_requests_total{route=\"" << k.first << "\",status=\"" << k.second << "\"} " << n
       << "\n";
  }
  os << "# HELP rnnkit_request_seconds Request latency by route.\n"
        "# TYPE rnnkit_request_seconds histogram\n";
  for (const auto& [route, h] : latency_) {
    h.render(os, "rnnkit_request_seconds", "route=\"" + route + "\"");
  }
  os << "# HELP rnnkit_batch_size Texts per forward pass by model.\n"
        "# TYPE rnnkit_batch_size histogram\n";
  for (const auto& [model, h] : batch_size_) {
    h.render(os, "rnnkit_batch_size", "model=\"" + model + "\"");
  }
  os << "# HELP rnnkit_queue_depth Texts waiting for a batch by model.\n"
        "# TYPE rnnkit_queue_depth gauge\n";
  for (const auto& [name, depth] : queue_depths) {
    os << "rnnkit_queue_depth{model=\"" << name << "\"} " << depth << "\n";
  }
  os << "# HELP rnnkit_tokens_generated_total Tokens generated.\n"
        "# TYPE rnnkit_tokens_generated_total counter\n"
     << "rnnkit_tokens_generated_total " << tokens_generated_ << "\n"
     << "# HELP process_resident_memory_bytes Resident memory.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
     << "process_resident_memory_bytes " << resident_bytes() << "\n";
  return os.str();
}

std::string route_of(const std::string& given_method, const std::string& path,
                     const std::vector<std::string>& actions) {
  static const std::vector<std::string> methods = {"GET",     "HEAD",  "POST",    "PUT",  "DELETE",
                                                   "OPTIONS", "PATCH", "CONNECT", "TRACE"};
  const std::string method =
      std::find(methods.begin(), methods.end(), given_method) != methods.end() ? given_method
                                                                               : "OTHER";
  static const std::vector<std::string> fixed = {"/", "/health", "/metrics", "/v1/models",
                                                 "/v1/openapi.json"};
  for (const auto& f : fixed) {
    if (path == f) return method + " " + f;
  }
  for (const auto& action : actions) {
    const std::string tail = "/" + action;
    if (path.rfind("/v1/models/", 0) == 0 && path.size() > tail.size() &&
        path.compare(path.size() - tail.size(), tail.size(), tail) == 0) {
      return method + " /v1/models/{name}" + tail;
    }
  }
  return method + " other";
}

}  // namespace rnnkit::serve
