#include "serve.h"

#include "batching.h"
#include "page.h"
#include "request.h"

#include <httplib.h>

#include <sys/socket.h>
#include <unistd.h>
#include "connection.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/core.h>
#include <rnnkit/compat.h>
#include <rnnkit/data/conll.h>
#include <rnnkit/data/text.h>
#include <rnnkit/data/tokenize.h>
#include <rnnkit/plugin.h>
#include <rnnkit/state.h>
#include <rnnkit/version.h>
#include <torch/torch.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/json.h>
#include "lm/lm.h"
#include "ner/ner.h"
#include "sentiment/sentiment.h"
#include "seq2seq/seq2seq.h"

namespace rnnkit::serve {
namespace fs = std::filesystem;
using train::Json;
using Clock = std::chrono::steady_clock;

namespace {

/// An exception's message for an answer: LibTorch's without its backtrace.
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

/// A streaming client that went away: generation stops.
struct ClientGone : std::exception {};

// ---------------------------------------------------------------------------------------------
// Metrics (Prometheus text format).

struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // cumulative at render time, per bucket here
  double sum = 0;
  uint64_t n = 0;
  explicit Histogram(std::vector<double> b = {}) : bounds(std::move(b)), counts(bounds.size(), 0) {}
  void add(double v) {
    for (size_t i = 0; i < bounds.size(); ++i) {
      if (v <= bounds[i]) ++counts[i];
    }
    sum += v;
    ++n;
  }
  void render(std::ostream& os, const std::string& name, const std::string& labels) const {
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < bounds.size(); ++i) {
      os << name << "_bucket{" << labels << sep << "le=\"" << bounds[i] << "\"} " << counts[i]
         << "\n";
    }
    os << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << n << "\n";
    os << name << "_sum{" << labels << "} " << sum << "\n";
    os << name << "_count{" << labels << "} " << n << "\n";
  }
};

const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,   0.25,   0.5,   1,    2.5,   10};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128};

struct Metrics {
  std::mutex mutex;
  std::map<std::pair<std::string, int>, uint64_t> requests;  // (route, status)
  std::map<std::string, Histogram> latency;                  // by route
  std::map<std::string, Histogram> batch_size;               // by model
  uint64_t tokens_generated = 0;
  void request(const std::string& route, int status, double seconds) {
    std::lock_guard<std::mutex> lock(mutex);
    ++requests[{route, status}];
    latency.try_emplace(route, kLatencyBounds).first->second.add(seconds);
  }
  void batch(const std::string& model, size_t size) {
    std::lock_guard<std::mutex> lock(mutex);
    batch_size.try_emplace(model, kBatchBounds).first->second.add(static_cast<double>(size));
  }
  void tokens(uint64_t n) {
    std::lock_guard<std::mutex> lock(mutex);
    tokens_generated += n;
  }
};

double resident_bytes() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

/// Constant-time comparison: how long it takes says nothing about how much of a key matched.
bool same_key(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (b.empty() ? 0 : b[i % b.size()]));
  }
  return diff == 0;
}

// ---------------------------------------------------------------------------------------------
// Continuous batching of generations.

/// One thread per language model steps every active generation in one forward pass ([1, N]
/// tokens, the generations' states side by side), as llama.cpp's parallel slots do: a new one
/// joins between steps (after its prompt's own pass), a finished or abandoned one leaves. Each
/// draws from its own lm::Sampler, so it gives the text rnnkit-lm sample gives for its seed,
/// alone or batched. The HTTP threads read each generation's tokens from its own queue: a slow
/// client never holds up the others.
class Generations {
 public:
  struct Event {
    std::string piece;
    double logprob = 0;
  };
  struct Stream {
    Stream(const lm::Loaded& m, lm::SampleOptions o) : sampler(m, std::move(o)) {}
    lm::Sampler sampler;  // the generation thread's alone
    std::vector<State> states;
    torch::Tensor logits;
    std::atomic<bool> cancelled{false};  // the client went away
    /// The next token's event; false once the generation has ended (rethrowing its error).
    bool wait(Event& e) {
      std::unique_lock<std::mutex> lock(mutex);
      cv.wait(lock, [&] { return !events.empty() || finished; });
      if (events.empty()) {
        if (error) std::rethrow_exception(error);
        return false;
      }
      e = std::move(events.front());
      events.pop_front();
      return true;
    }
    /// As wait(), but gives up after `timeout`: 1 an event, 0 the end, -1 no event yet.
    int wait_for(Event& e, std::chrono::milliseconds timeout) {
      std::unique_lock<std::mutex> lock(mutex);
      if (!cv.wait_for(lock, timeout, [&] { return !events.empty() || finished; })) return -1;
      if (events.empty()) {
        if (error) std::rethrow_exception(error);
        return 0;
      }
      e = std::move(events.front());
      events.pop_front();
      return 1;
    }
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<Event> events;
    bool finished = false;
    std::exception_ptr error;
  };

  Generations(lm::Loaded& m, torch::Device device, Precision precision, int64_t max_streams,
              int64_t capacity, std::function<void(size_t)> on_step,
              std::function<void(uint64_t)> on_tokens)
      : m_(m),
        device_(device),
        precision_(precision),
        max_streams_(static_cast<size_t>(max_streams)),
        capacity_(static_cast<size_t>(capacity)),
        on_step_(std::move(on_step)),
        on_tokens_(std::move(on_tokens)),
        thread_([this] { loop(); }) {}
  ~Generations() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  /// A new generation; HttpError 503 when `capacity` generations are waiting or running.
  std::shared_ptr<Stream> start(lm::SampleOptions o) {
    auto s = std::make_shared<Stream>(m_, std::move(o));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (pending_.size() + running_ >= capacity_) {
        throw HttpError(503, fmt::format("the model is busy ({} generations waiting or running, at "
                                         "most {}; --queue); retry later",
                                         pending_.size() + running_, capacity_));
      }
      pending_.push_back(s);
    }
    cv_.notify_all();
    return s;
  }
  size_t depth() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return pending_.size();
  }

 private:
  static void finish(Stream& s, std::exception_ptr error) {
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      s.finished = true;
      s.error = std::move(error);
    }
    s.cv.notify_all();
  }

  void loop() {
    const AutocastGuard autocast(precision_, device_.type());  // this thread's forward passes
    std::vector<std::shared_ptr<Stream>> active;
    for (;;) {
      std::vector<std::shared_ptr<Stream>> joining;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !pending_.empty() || !active.empty(); });
        if (stopping_ && pending_.empty() && active.empty()) return;
        while (!pending_.empty() && active.size() + joining.size() < max_streams_) {
          joining.push_back(pending_.front());
          pending_.pop_front();
        }
        running_ = active.size() + joining.size();
      }
      c10::InferenceMode guard;
      for (auto& s : joining) {  // the prompt: its own pass, as sample() feeds it
        try {
          const auto& ids = s->sampler.prompt_ids();
          auto x = torch::tensor(ids, torch::kLong).view({-1, 1}).to(device_);
          auto out = m_.model->forward(x, {});
          s->states = std::move(out.states);
          s->logits = out.logits[-1][0];
          active.push_back(s);
        } catch (...) {
          finish(*s, std::current_exception());
        }
      }
      // Each draws its next token; the ones that go on make the next batch.
      std::vector<std::shared_ptr<Stream>> going;
      uint64_t drawn = 0;
      for (auto& s : active) {
        try {
          if (!s->cancelled && s->sampler.next(s->logits)) {
            {
              std::lock_guard<std::mutex> lock(s->mutex);
              s->events.push_back({s->sampler.piece(), s->sampler.logprob()});
            }
            s->cv.notify_all();
            ++drawn;
            going.push_back(s);
          } else {
            finish(*s, nullptr);
          }
        } catch (...) {
          finish(*s, std::current_exception());
        }
      }
      on_tokens_(drawn);
      active = std::move(going);
      if (active.empty()) continue;
      // One forward pass for all of them: [1, N] tokens, each layer's states side by side.
      try {
        std::vector<int64_t> last;
        for (const auto& s : active) last.push_back(s->sampler.last_token());
        const auto x = torch::tensor(last, torch::kLong).view({1, -1}).to(device_);
        std::vector<State> states(active.front()->states.size());
        for (size_t l = 0; l < states.size(); ++l) {
          std::vector<torch::Tensor> a, c;
          for (const auto& s : active) {
            a.push_back(s->states[l].a);
            if (s->states[l].c.defined()) c.push_back(s->states[l].c);
          }
          states[l].a = torch::cat(a, 0);
          if (!c.empty()) states[l].c = torch::cat(c, 0);
        }
        auto out = m_.model->forward(x, states);
        for (size_t i = 0; i < active.size(); ++i) {
          const auto b = static_cast<int64_t>(i);
          active[i]->logits = out.logits[0][b];
          for (size_t l = 0; l < states.size(); ++l) {
            const auto& st = out.states[l];
            active[i]->states[l] = {st.a.narrow(0, b, 1),
                                    st.c.defined() ? st.c.narrow(0, b, 1) : torch::Tensor()};
          }
        }
        on_step_(active.size());
      } catch (...) {
        for (auto& s : active) finish(*s, std::current_exception());
        active.clear();
      }
    }
  }

  lm::Loaded& m_;
  torch::Device device_;
  Precision precision_;
  size_t max_streams_, capacity_;
  std::function<void(size_t)> on_step_;
  std::function<void(uint64_t)> on_tokens_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Stream>> pending_;
  size_t running_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // last: it starts once everything above is ready
};

// ---------------------------------------------------------------------------------------------
// Models.

struct Served {
  std::string name, task;
  std::vector<std::string> checkpoints;
  Json card;
  std::vector<sentiment::Loaded> classifiers;
  std::unique_ptr<ner::Loaded> tagger;
  std::unique_ptr<lm::Loaded> lm;
  std::unique_ptr<seq2seq::Loaded> translator;
  std::unique_ptr<Batcher> batcher;
  std::unique_ptr<Generations> generations;
};

int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

/// The epoch of `checkpoint` (as fit() saved it) and that epoch's row of metrics.csv beside it:
/// its validation metrics and the precision it trained in.
Json run_record(const std::string& checkpoint, const std::string& task) {
  Json r = Json::object();
  const auto csv = fs::path(checkpoint).parent_path() / "metrics.csv";
  int64_t epoch = -1;
  try {
    auto a = train::open_checkpoint(checkpoint, task, "");
    epoch = train::get_int(a, "train/epoch");
  } catch (const std::exception&) {
    return r;  // not written by fit(): no record
  }
  r["epoch"] = epoch;
  std::ifstream in(csv);
  std::string header, line;
  if (!std::getline(in, header)) return r;
  std::vector<std::string> names;
  for (std::istringstream hs(header); std::getline(hs, line, ',');) names.push_back(line);
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    for (std::istringstream ls(line); std::getline(ls, header, ',');) cells.push_back(header);
    if (cells.empty() || cells[0] != std::to_string(epoch)) continue;
    Json v = Json::object();
    for (size_t i = 0; i < cells.size() && i < names.size(); ++i) {
      if (names[i] == "precision" && !cells[i].empty()) r["precision"] = cells[i];
      if (names[i].rfind("val_", 0) == 0) {
        try {
          v[names[i]] = std::stod(cells[i]);
        } catch (const std::exception&) {
        }
      }
    }
    r["validation"] = v;
  }
  return r;
}

Json card_of(const Served& s, const std::vector<std::string>& shas) {
  Json c{{"name", s.name},
         {"task", s.task},
         {"rnnkit_version", RNNKIT_VERSION},
         {"libtorch_version", torch_version()}};
  Json files = Json::array();
  for (size_t i = 0; i < s.checkpoints.size(); ++i) {
    files.push_back({{"path", fs::absolute(s.checkpoints[i]).string()},
                     {"sha256", shas[i]},
                     {"run", run_record(s.checkpoints[i], s.task)}});
  }
  c["checkpoints"] = files;
  auto recurrent = [](const RNNOptions& r) {
    Json o = Json::object();
    for (const auto& [k, v] : r.cell_options()) {
      std::visit([&, key = k](const auto& x) { o[key] = x; }, v.value);
    }
    return Json{{"cell", r.cell()},
                {"cell_options", o},
                {"hidden_size", r.hidden_size()},
                {"num_layers", r.num_layers()}};
  };
  if (s.task == "sentiment") {
    const auto& m = s.classifiers.front();
    c["model"] = recurrent(m.config.rnn);
    c["model"]["bidirectional"] = m.config.rnn.bidirectional();
    c["model"]["embedding_size"] = m.config.embedding_size;
    c["model"]["pooling"] = m.config.pooling;
    int64_t params = 0;
    for (const auto& x : s.classifiers) params += parameter_count(*x.model);
    c["parameters"] = params;
    c["vocabulary_size"] = m.vocab.size();
    c["labels"] = m.labels;
  } else if (s.task == "ner") {
    c["model"] = recurrent(s.tagger->config.rnn);
    c["parameters"] = parameter_count(*s.tagger->model);
    c["vocabulary_size"] = s.tagger->lexicon.words.size();
    std::set<std::string> types;
    for (const auto& t : s.tagger->lexicon.tags) {
      if (t.size() > 2 && t[1] == '-') types.insert(t.substr(2));
    }
    c["entity_types"] = types;
    c["tag_scheme"] = data::to_string(s.tagger->lexicon.input_scheme);
  } else if (s.task == "seq2seq") {
    const auto& m = *s.translator;
    c["model"] = recurrent(m.config.rnn);
    c["model"]["attention"] = m.config.attention;
    c["model"]["bidirectional_encoder"] = m.config.bidirectional_encoder;
    c["model"]["embedding_size"] = m.config.embedding_size;
    c["model"]["tokenize"] = m.config.tokenize;
    c["parameters"] = parameter_count(*m.model);
    c["source_vocabulary_size"] = m.lexicon.source.size();
    c["target_vocabulary_size"] = m.lexicon.target.size();
  } else {
    c["model"] = recurrent(s.lm->config.rnn);
    c["model"]["level"] = s.lm->config.level;
    c["parameters"] = parameter_count(*s.lm->model);
    c["vocabulary_size"] = s.lm->vocab.size();
  }
  return c;
}

/// The route a path belongs to, for metrics: its template, or "other"; a method outside HTTP's
/// own is "OTHER". Every label value comes from these fixed sets, so a client cannot grow the
/// metrics (20,000 invented 7 kB methods once made /metrics 2.3 GB) or inject into their text.
std::string route_of(const std::string& given_method, const std::string& path) {
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
  for (const char* action : {"classify", "tag", "score", "generate", "translate"}) {
    const std::string tail = std::string("/") + action;
    if (path.rfind("/v1/models/", 0) == 0 && path.size() > tail.size() &&
        path.compare(path.size() - tail.size(), tail.size(), tail) == 0) {
      return method + " /v1/models/{name}" + tail;
    }
  }
  return method + " other";
}

thread_local Clock::time_point t_request_start;

/// Source tokens of one translate text: rnnkit-seq2seq translate's --max-source-length default.
constexpr int64_t kMaxSourceTokens = 1000;

/// The OpenAPI 3 description of the routes (GET /v1/openapi.json).
Json openapi(const ServeOptions& o) {
  const Json error_schema{{"type", "object"}, {"properties", {{"error", {{"type", "string"}}}}}};
  const Json error{{"description", "an error"},
                   {"content", {{"application/json", {{"schema", error_schema}}}}}};
  const Json texts{{"type", "array"},
                   {"items", {{"type", "string"}, {"maxLength", o.max_text_bytes}}},
                   {"minItems", 1},
                   {"maxItems", o.max_texts}};
  auto body = [](const Json& properties, const std::vector<std::string>& required) {
    Json schema{{"type", "object"}, {"properties", properties}, {"additionalProperties", false}};
    if (!required.empty()) schema["required"] = required;
    return Json{{"required", true}, {"content", {{"application/json", {{"schema", schema}}}}}};
  };
  auto ok = [](const std::string& what, const std::string& type = "application/json") {
    return Json{{"description", what}, {"content", {{type, {{"schema", {{"type", "object"}}}}}}}};
  };
  auto action = [&](const std::string& summary, const Json& request, const std::string& what) {
    const Json name{
        {"name", "name"}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}};
    Json responses{{"200", ok(what)}, {"400", error}, {"401", error},
                   {"404", error},    {"413", error}, {"503", error}};
    return Json{{"post",
                 {{"summary", summary},
                  {"parameters", Json::array({name})},
                  {"requestBody", request},
                  {"responses", responses}}}};
  };
  Json paths;
  paths["/"] = {
      {"get", {{"summary", "the page"}, {"responses", {{"200", ok("HTML", "text/html")}}}}}};
  paths["/health"] = {
      {"get",
       {{"summary", "200 once every model is loaded; 503 while loading or draining"},
        {"responses", {{"200", ok("ready")}, {"503", ok("loading or draining")}}}}}};
  paths["/v1/models"] = {{"get",
                          {{"summary", "each model's card"},
                           {"responses", {{"200", ok("the cards")}, {"401", error}}}}}};
  paths["/metrics"] = {{"get",
                        {{"summary", "Prometheus text format"},
                         {"responses", {{"200", ok("metrics", "text/plain")}}}}}};
  paths["/v1/openapi.json"] = {
      {"get", {{"summary", "this description"}, {"responses", {{"200", ok("OpenAPI 3")}}}}}};
  paths["/v1/models/{name}/classify"] =
      action("sentiment: label and class probabilities of each text (as predict --json)",
             body({{"texts", texts}}, {"texts"}), "results in order");
  const Json token_lists{{"type", "array"},
                         {"items", {{"type", "array"}, {"items", {{"type", "string"}}}}}};
  paths["/v1/models/{name}/tag"] = action(
      "ner: entities of each text, with code-point offsets and confidences (as predict --json)",
      body({{"texts", texts}, {"tokens", token_lists}, {"tags", {{"type", "boolean"}}}}, {}),
      "results in order");
  paths["/v1/models/{name}/score"] =
      action("lm: log-probability (nats), perplexity and token count of each text",
             body({{"texts", texts}}, {"texts"}), "results in order");
  const Json generate{
      {"prompt", {{"type", "string"}}},
      {"max_tokens", {{"type", "integer"}, {"minimum", 1}, {"maximum", o.max_tokens}}},
      {"temperature", {{"type", "number"}, {"minimum", 0}, {"maximum", 100}}},
      {"top_k", {{"type", "integer"}, {"minimum", 0}}},
      {"seed", {{"type", "integer"}, {"minimum", 0}}},
      {"stop_at_eos", {{"type", "boolean"}}},
      {"stream", {{"type", "boolean"}}}};
  paths["/v1/models/{name}/generate"] = action(
      "lm: generated text; with stream, Server-Sent Events (one per token, then the stop reason)",
      body(generate, {}), "the text, or text/event-stream");
  const Json translate{
      {"texts", texts},
      {"beam", {{"type", "integer"}, {"minimum", 1}, {"maximum", kMaxTranslateBeam}}},
      {"alpha", {{"type", "number"}, {"minimum", 0}, {"maximum", 10}}},
      {"n_best", {{"type", "integer"}, {"minimum", 1}}},
      {"attention", {{"type", "boolean"}}}};
  paths["/v1/models/{name}/translate"] = action(
      "seq2seq: the translation of each text, its hypotheses and scores, and with "
      "attention its attention matrix (as translate --json)",
      body(translate, {"texts"}), "results in order");
  return {{"openapi", "3.0.3"},
          {"info", {{"title", "rnnkit-serve"}, {"version", RNNKIT_VERSION}}},
          {"paths", paths}};
}

}  // namespace

ModelSpec ModelSpec::parse(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    throw std::invalid_argument("--model " + text.substr(0, 200) +
                                ": expected NAME=CHECKPOINT[,CHECKPOINT...]");
  }
  ModelSpec m;
  m.name = text.substr(0, eq);
  for (const char c : m.name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      throw std::invalid_argument("--model " + text.substr(0, 200) + ": the name '" + m.name +
                                  "' may hold letters, digits, '_', '-' and '.' only (it is a URL "
                                  "path segment)");
    }
  }
  std::istringstream is(text.substr(eq + 1));
  for (std::string p; std::getline(is, p, ',');) {
    if (p.empty()) throw std::invalid_argument("--model " + text + ": an empty checkpoint path");
    m.checkpoints.push_back(p);
  }
  return m;
}

struct Server::Impl {
  ServeOptions o;
  std::vector<ModelSpec> specs;
  torch::Device device;
  HttpServer http;
  std::map<std::string, std::unique_ptr<Served>> models;
  Metrics metrics;
  std::atomic<bool> ready{false}, draining{false};
  int port = -1;
  int listen_fd = -1;  ///< the listening socket, as cpp-httplib created it

  Impl(ServeOptions opts, std::vector<ModelSpec> s, torch::Device d)
      : o(std::move(opts)), specs(std::move(s)), device(d), http(limits(o)) {}

  static ConnectionLimits limits(const ServeOptions& o) {
    ConnectionLimits l;
    l.workers = o.http_threads;
    l.max_connections = o.max_connections;
    l.max_headers = o.max_headers;
    l.max_header_bytes = o.max_header_bytes;
    l.max_body = o.max_body;
    l.request_timeout_s = o.read_timeout_s;
    l.write_timeout_s = o.write_timeout_s;
    return l;
  }

  Served& model(const std::string& name, const std::string& task) {
    if (!ready) throw HttpError(503, "the models are still loading");
    const auto it = models.find(name);
    if (it == models.end()) {
      std::string list;
      for (const auto& [n, m] : models) list += (list.empty() ? "" : ", ") + n;
      throw HttpError(404, "no model named '" + name.substr(0, 100) + "' (served: " + list + ")");
    }
    if (it->second->task != task) {
      throw HttpError(400, "model '" + name + "' is a " + it->second->task +
                               " model; this route is for " + task + " models");
    }
    return *it->second;
  }

  /// Fills `models` at once at the end: the HTTP threads answer while the models load, and
  /// read `models` only once `ready` says it is complete (a scrape of /metrics walked the map
  /// while this added to it).
  void load_all() {
    std::map<std::string, std::unique_ptr<Served>> loaded;
    for (const auto& spec : specs) {
      if (loaded.count(spec.name)) {
        throw std::invalid_argument("--model " + spec.name + ": the name is given twice");
      }
      auto s = std::make_unique<Served>();
      s->name = spec.name;
      s->checkpoints = spec.checkpoints;
      std::vector<std::string> shas;
      for (const auto& path : spec.checkpoints) {
        auto archive = train::open_checkpoint(path, "", "");
        const std::string task = train::get_string(archive, "rnnkit/app");
        if (task != "ner" && task != "sentiment" && task != "lm" && task != "seq2seq") {
          throw std::invalid_argument(path + ": a checkpoint of rnnkit-" + task +
                                      "; the server serves ner, sentiment, lm and seq2seq models");
        }
        if (!s->task.empty() && task != s->task) {
          throw std::invalid_argument("--model " + spec.name + ": " + path + " is a " + task +
                                      " model, the others " + s->task);
        }
        s->task = task;
        shas.push_back(file_sha256(path));
      }
      if (s->task != "sentiment" && spec.checkpoints.size() > 1) {
        throw std::invalid_argument("--model " + spec.name +
                                    ": an ensemble of several checkpoints is for sentiment "
                                    "models only");
      }
      Served* raw = s.get();
      auto on_batch = [this, name = spec.name](size_t n) { metrics.batch(name, n); };
      if (s->task == "sentiment") {
        s->classifiers = sentiment::load_models(spec.checkpoints, device);
        s->batcher = std::make_unique<Batcher>(
            [this, raw](const std::vector<Json>& items) { return classify(*raw, items); },
            o.max_batch, o.max_delay_ms, o.queue, on_batch);
      } else if (s->task == "ner") {
        s->tagger = std::make_unique<ner::Loaded>(ner::load_model(spec.checkpoints[0], device));
        s->batcher = std::make_unique<Batcher>(
            [this, raw](const std::vector<Json>& items) { return tag(*raw, items); }, o.max_batch,
            o.max_delay_ms, o.queue, on_batch);
      } else if (s->task == "seq2seq") {
        s->translator =
            std::make_unique<seq2seq::Loaded>(seq2seq::load_model(spec.checkpoints[0], device));
        s->batcher = std::make_unique<Batcher>(
            [this, raw](const std::vector<Json>& items) { return translate(*raw, items); },
            o.max_batch, o.max_delay_ms, o.queue, on_batch);
      } else {
        s->lm = std::make_unique<lm::Loaded>(lm::load_model(spec.checkpoints[0], device));
        s->generations =
            std::make_unique<Generations>(*s->lm, device, o.precision, o.max_batch, o.queue,
                                          on_batch, [this](uint64_t n) { metrics.tokens(n); });
      }
      s->card = card_of(*s, shas);
      loaded.emplace(spec.name, std::move(s));
    }
    models = std::move(loaded);
  }

  // The batch functions: what predict --json gives, one object per item.
  /// Items of one decoding setting (beam, alpha, n_best, attention) are translated together;
  /// a batch of several settings runs one translate() per setting, each in the items' order.
  std::vector<Json> translate(Served& s, const std::vector<Json>& items) {
    c10::InferenceMode guard;
    const AutocastGuard autocast(o.precision, device.type());
    auto& m = *s.translator;
    std::vector<Json> out(items.size());
    std::vector<bool> done(items.size(), false);
    for (size_t first = 0; first < items.size(); ++first) {
      if (done[first]) continue;
      const Json& key = items[first]["options"];
      std::vector<size_t> group;
      std::vector<std::vector<std::string>> sources;
      for (size_t i = first; i < items.size(); ++i) {
        if (done[i] || items[i]["options"] != key) continue;
        group.push_back(i);
        sources.push_back(items[i]["tokens"].get<std::vector<std::string>>());
        done[i] = true;
      }
      seq2seq::TranslateOptions t;
      t.beam = key["beam"].get<int64_t>();
      t.alpha = key["alpha"].get<double>();
      t.n_best = key["n_best"].get<int64_t>();
      t.keep_attention = key["attention"].get<bool>();
      const auto translations = seq2seq::translate(m, sources, t);
      for (size_t k = 0; k < group.size(); ++k)
        out[group[k]] = seq2seq::translation_json(m, translations[k], t.keep_attention);
    }
    return out;
  }

  std::vector<Json> classify(Served& s, const std::vector<Json>& items) {
    c10::InferenceMode guard;
    const AutocastGuard autocast(o.precision, device.type());
    std::vector<std::string> texts;
    for (const auto& i : items) texts.push_back(i["text"].get<std::string>());
    return sentiment::classify_json(s.classifiers, texts, device);
  }

  std::vector<Json> tag(Served& s, const std::vector<Json>& items) {
    c10::InferenceMode guard;
    const AutocastGuard autocast(o.precision, device.type());
    std::vector<std::string> texts;
    std::vector<std::vector<data::TextToken>> tokens;
    std::vector<bool> token_tags;  // per item: a batch mixes requests
    for (const auto& i : items) {
      token_tags.push_back(i.value("tags", false));
      if (i.contains("tokens")) {
        auto [text, toks] = ner::joined_tokens(i["tokens"].get<std::vector<std::string>>());
        texts.push_back(std::move(text));
        tokens.push_back(std::move(toks));
      } else {
        texts.push_back(i["text"].get<std::string>());
        tokens.push_back(data::tokenize_ptb(texts.back()));
      }
    }
    return ner::tag_json(*s.tagger, texts, tokens, device, token_tags);
  }

  // Handlers.
  void check_key(const httplib::Request& req) const {
    if (o.api_key.empty()) return;
    const std::string given = req.get_header_value("Authorization");
    // The scheme is case-insensitive (RFC 9110): "bearer KEY" is the same credential.
    std::string scheme = given.substr(0, 7);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme != "bearer " || !same_key(given.substr(7), o.api_key)) {
      throw HttpError(401, "a missing or wrong API key: send 'Authorization: Bearer KEY'");
    }
  }

  static void answer(httplib::Response& res, int status, const Json& j) {
    res.status = status;
    res.set_content(train::json_line(j) + "\n", "application/json");
  }

  /// Runs `fn`, turning HttpError (and anything else) into a JSON error answer.
  void guarded(httplib::Response& res, const std::function<void()>& fn) {
    try {
      fn();
    } catch (const HttpError& e) {
      if (e.status == 503) res.set_header("Retry-After", "1");
      answer(res, e.status, {{"error", e.what()}});
    } catch (const data::DataError& e) {
      answer(res, 400, {{"error", e.what()}});
    } catch (...) {
      answer(res, 500, {{"error", "internal error: " + error_message(std::current_exception())}});
    }
  }

  void routes() {
    // Headers and body go out in separate writes: with Nagle's algorithm and the client's
    // delayed ACK, every small answer waited 40 ms for nothing.
    http.set_tcp_nodelay(true);
    // SO_REUSEADDR, not cpp-httplib's default SO_REUSEPORT: a second server on a port in use is
    // refused instead of silently taking half of its connections. The socket is kept so that
    // bind() can raise the listen backlog.
    http.set_socket_options([this](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_fd = sock;
    });
    // The connection layer (connection.h) holds the body, header, deadline and connection
    // limits; cpp-httplib's own body limit stays as a second guard.
    http.set_payload_max_length(static_cast<size_t>(o.max_body));
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_request_start = Clock::now();
      int status = 0;
      std::string message;
      if (!http.framing_error(req, status, message)) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      HttpServer::close_after_answer();  // the body is left unread
      res.set_header("Connection", "close");
      answer(res, status, {{"error", message}});
      return httplib::Server::HandlerResponse::Handled;
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const double s = std::chrono::duration<double>(Clock::now() - t_request_start).count();
      metrics.request(route_of(req.method, req.path), res.status, s);
    });
    // Errors without a body (cpp-httplib's own: 404 for an unknown path, 413 for a body over
    // the limit, 400 for a bad request line) get a JSON message too.
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      int refused = 0;
      std::string why;
      if (HttpServer::read_refused(refused, why)) {  // 408, 413 or 431 while reading
        res.set_header("Connection", "close");
        return answer(res, refused, {{"error", why}});
      }
      if (!res.body.empty()) return;
      std::string message = "HTTP status " + std::to_string(res.status);
      if (res.status == 404) message = "no route " + req.method + " " + req.path.substr(0, 200);
      if (res.status == 413) {
        message =
            fmt::format("the request body is over the limit of {} bytes (--max-body)", o.max_body);
      }
      answer(res, res.status, {{"error", message}});
    });

    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      if (draining) return answer(res, 503, {{"status", "draining"}});
      if (!ready) return answer(res, 503, {{"status", "loading"}});
      answer(res, 200, {{"status", "ok"}, {"models", models.size()}});
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kPage, "text/html; charset=utf-8");
    });
    http.Get("/v1/openapi.json", [this](const httplib::Request&, httplib::Response& res) {
      answer(res, 200, openapi(o));
    });
    http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        check_key(req);
        if (!ready) throw HttpError(503, "the models are still loading");
        Json list = Json::array();
        for (const auto& [n, m] : models) list.push_back(m->card);
        answer(res, 200, {{"models", list}});
      });
    });
    http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        check_key(req);
        res.set_content(metrics_text(), "text/plain; version=0.0.4");
      });
    });
    const std::string action =
        R"(/v1/models/([A-Za-z0-9_.\-]+)/(classify|tag|score|generate|translate))";
    http.Post(action, [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        check_key(req);
        if (req.body.size() > static_cast<size_t>(o.max_body)) {  // a chunked body, decoded
          throw HttpError(413, fmt::format("the request body is over the limit of {} bytes "
                                           "(--max-body)",
                                           o.max_body));
        }
        const std::string name = req.matches[1], what = req.matches[2];
        if (what == "classify") return do_classify(model(name, "sentiment"), req.body, res);
        if (what == "tag") return do_tag(model(name, "ner"), req.body, res);
        if (what == "score") return do_score(model(name, "lm"), req.body, res);
        if (what == "translate") return do_translate(model(name, "seq2seq"), req.body, res);
        do_generate(model(name, "lm"), req.body, res);
      });
    });
    // A known route with another method: 405 with Allow.
    auto wrong = [this](const std::string& allow) {
      return [this, allow](const httplib::Request& req, httplib::Response& res) {
        res.set_header("Allow", allow);
        answer(res, 405,
               {{"error", "method " + req.method + " is not allowed on " + req.path.substr(0, 200) +
                              "; use " + allow}});
      };
    };
    for (const std::string& path :
         {std::string("/health"), std::string("/v1/models"), std::string("/metrics")}) {
      http.Post(path, wrong("GET"));
      http.Put(path, wrong("GET"));
      http.Patch(path, wrong("GET"));
      http.Delete(path, wrong("GET"));
      http.Options(path, wrong("GET"));
    }
    http.Get(action, wrong("POST"));
    http.Put(action, wrong("POST"));
    http.Patch(action, wrong("POST"));
    http.Delete(action, wrong("POST"));
    http.Options(action, wrong("POST"));
  }

  void do_classify(Served& s, const std::string& body, httplib::Response& res) {
    std::vector<Json> items;
    for (auto& t : decode_texts(body, o, true).texts) items.push_back({{"text", std::move(t)}});
    answer(res, 200, {{"model", s.name}, {"results", s.batcher->submit(std::move(items))}});
  }

  void do_tag(Served& s, const std::string& body, httplib::Response& res) {
    auto r = decode_tag(body, o);
    std::vector<Json> items;
    for (auto& i : r.items) {
      Json item{{"text", std::move(i.text)}, {"tags", r.tags}};
      if (!i.tokens.empty()) item["tokens"] = std::move(i.tokens);
      items.push_back(std::move(item));
    }
    answer(res, 200, {{"model", s.name}, {"results", s.batcher->submit(std::move(items))}});
  }

  /// Sources are tokenized here, in the request's thread, so that a text over the limit is this
  /// request's 413 and never reaches a batch shared with others.
  void do_translate(Served& s, const std::string& body, httplib::Response& res) {
    const auto r = decode_translate(body, o);
    const Json options{
        {"beam", r.beam}, {"alpha", r.alpha}, {"n_best", r.n_best}, {"attention", r.attention}};
    std::vector<Json> items;
    for (size_t i = 0; i < r.texts.size(); ++i) {
      auto tokens = s.translator->config.tokenize_line(r.texts[i]);
      if (static_cast<int64_t>(tokens.size()) > kMaxSourceTokens) {
        throw HttpError(413, fmt::format("field 'texts[{}]': {} tokens, more than the limit of {}",
                                         i, tokens.size(), kMaxSourceTokens));
      }
      items.push_back({{"tokens", std::move(tokens)}, {"options", options}});
    }
    answer(res, 200, {{"model", s.name}, {"results", s.batcher->submit(std::move(items))}});
  }

  void do_score(Served& s, const std::string& body, httplib::Response& res) {
    const auto texts = decode_texts(body, o, false).texts;
    c10::InferenceMode guard;
    const AutocastGuard autocast(o.precision, device.type());  // --precision, as the batches
    Json results = Json::array();
    for (const auto& t : texts) {
      results.push_back(lm::score_json(t, lm::score_line(*s.lm, t, device)));
    }
    answer(res, 200, {{"model", s.name}, {"results", results}});
  }

  void do_generate(Served& s, const std::string& body, httplib::Response& res) {
    const auto r = decode_generate(body, o, s.lm->vocab.size());
    const int64_t max_tokens = r.sample.max_length;
    const std::string prompt = r.sample.prompt;
    auto g = s.generations->start(r.sample);  // 503 here, before any answer is begun
    auto stop_reason = [max_tokens](int64_t n) { return n >= max_tokens ? "length" : "eos"; };
    if (!r.stream) {
      // Nobody reads a generation whose client went away: it is cancelled, as a streamed one
      // is when its write fails (it once ran to max_tokens for nobody).
      std::string text;
      int64_t n = 0;
      for (Generations::Event e;;) {
        const int got = g->wait_for(e, std::chrono::milliseconds(100));
        if (got == 0) break;
        if (got == 1) text += e.piece, ++n;
        if ((got == -1 || n % 64 == 0) && HttpServer::client_gone()) {
          g->cancelled = true;
          throw HttpError(499, "the client closed the connection");
        }
      }
      answer(res, 200,
             {{"model", s.name},
              {"prompt", prompt},
              {"text", text},
              {"tokens", n},
              {"stop_reason", stop_reason(n)}});
      return;
    }
    // Server-Sent Events: one event per token, then one with the stop reason. A client that
    // goes away stops its generation (its write fails; the generation leaves the batch).
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [g, stop_reason](size_t, httplib::DataSink& sink) {
          auto send = [&](const Json& j) {
            const std::string event = "data: " + train::json_line(j) + "\n\n";
            return sink.is_writable() && sink.write(event.data(), event.size());
          };
          // Nothing may leave a content provider (cpp-httplib does not catch: std::terminate).
          // A generation that fails after its 200 was sent ends with an error event instead.
          int64_t n = 0;
          try {
            for (Generations::Event e; g->wait(e); ++n) {
              if (!send({{"text", e.piece}, {"logprob", e.logprob}})) {
                g->cancelled = true;
                return false;
              }
            }
            send({{"done", true}, {"tokens", n}, {"stop_reason", stop_reason(n)}});
          } catch (...) {
            g->cancelled = true;
            try {
              send({{"done", true},
                    {"tokens", n},
                    {"stop_reason", "error"},
                    {"error", "internal error: " + error_message(std::current_exception())}});
            } catch (...) {  // not even the error event could be written: the stream just ends
            }
          }
          sink.done();
          return true;
        });
  }

  std::string metrics_text() {
    std::ostringstream os;
    std::lock_guard<std::mutex> lock(metrics.mutex);
    os << "# HELP rnnkit_requests_total HTTP requests by route and status.\n"
          "# TYPE rnnkit_requests_total counter\n";
    for (const auto& [k, n] : metrics.requests) {
      os << "rnnkit_requests_total{route=\"" << k.first << "\",status=\"" << k.second << "\"} " << n
         << "\n";
    }
    os << "# HELP rnnkit_request_seconds Request latency by route.\n"
          "# TYPE rnnkit_request_seconds histogram\n";
    for (const auto& [route, h] : metrics.latency) {
      h.render(os, "rnnkit_request_seconds", "route=\"" + route + "\"");
    }
    os << "# HELP rnnkit_batch_size Texts per forward pass by model.\n"
          "# TYPE rnnkit_batch_size histogram\n";
    for (const auto& [model, h] : metrics.batch_size) {
      h.render(os, "rnnkit_batch_size", "model=\"" + model + "\"");
    }
    os << "# HELP rnnkit_queue_depth Texts waiting for a batch by model.\n"
          "# TYPE rnnkit_queue_depth gauge\n";
    if (ready) {  // `models` is complete
      for (const auto& [name, m] : models) {
        if (m->generations) {
          os << "rnnkit_queue_depth{model=\"" << name << "\"} " << m->generations->depth() << "\n";
        }
        if (m->batcher)
          os << "rnnkit_queue_depth{model=\"" << name << "\"} " << m->batcher->depth() << "\n";
      }
    }
    os << "# HELP rnnkit_tokens_generated_total Tokens generated.\n"
          "# TYPE rnnkit_tokens_generated_total counter\n"
       << "rnnkit_tokens_generated_total " << metrics.tokens_generated << "\n"
       << "# HELP process_resident_memory_bytes Resident memory.\n"
          "# TYPE process_resident_memory_bytes gauge\n"
       << "process_resident_memory_bytes " << resident_bytes() << "\n";
    return os.str();
  }
};

Server::Server(ServeOptions options, std::vector<ModelSpec> models, torch::Device device)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(models), device)) {
  impl_->routes();
}

Server::~Server() = default;

void Server::bind() {
  auto& i = *impl_;
  if (i.o.port == 0) {
    i.port = i.http.bind_to_any_port(i.o.host);
  } else {
    i.port = i.http.bind_to_port(i.o.host, i.o.port) ? i.o.port : -1;
  }
  if (i.port < 0) {
    throw std::runtime_error(
        fmt::format("cannot listen on {}:{} (in use, or not an address of "
                    "this machine)",
                    i.o.host, i.o.port));
  }
  // Debian's cpp-httplib is compiled with a listen backlog of 5: 64 clients connecting at once
  // overflowed it, and their dropped SYNs were retried a second later (a p99 of 1.76 s under
  // load). listen() again on a listening socket sets its backlog.
  if (i.listen_fd >= 0) ::listen(i.listen_fd, SOMAXCONN);
}

void Server::load() {
  impl_->load_all();
  impl_->ready = true;
}

void Server::run() { impl_->http.listen_after_bind(); }

void Server::wait_until_running() {
  // cpp-httplib's stop() does nothing before listen() has begun: wait for it, so that a stop
  // that follows (a failed load, a signal) is never lost.
  for (int i = 0; i < 10000 && !impl_->http.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!impl_->http.is_running()) throw std::runtime_error("the HTTP listener did not start");
}
void Server::stop() { impl_->http.stop(); }
void Server::begin_drain() { impl_->draining = true; }
int Server::port() const { return impl_->port; }
bool Server::ready() const { return impl_->ready; }

}  // namespace rnnkit::serve
