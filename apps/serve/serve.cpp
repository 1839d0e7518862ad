#include "serve.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/core.h>
#include <httplib.h>
#include <rnnkit/data/text.h>
#include <rnnkit/plugin.h>
#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/json.h>

#include "connection.h"
#include "metrics.h"
#include "openapi.h"
#include "page.h"
#include "request.h"
#include "served_model.h"

namespace rnnkit::serve {
using train::Json;
using Clock = std::chrono::steady_clock;

namespace {

/// Constant-time comparison: how long it takes says nothing about how much of a key matched.
bool same_key(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (b.empty() ? 0 : b[i % b.size()]));
  }
  return diff == 0;
}

/// "a, b and c"
std::string listed(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
  }
  return out;
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
  Metrics metrics;  // before the models, whose threads count into it until they stop
  HttpServer http;
  struct Served {
    std::unique_ptr<ServedModel> model;
    Json card;  // GET /v1/models
  };
  std::map<std::string, Served> models;
  const std::vector<std::string> actions = served_actions();
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

  /// The model `name`, which answers `action`: 404 for an unknown name, 400 for a model of
  /// another app.
  ServedModel& model(const std::string& name, const std::string& action) {
    if (!ready) throw HttpError(503, "the models are still loading");
    const auto it = models.find(name);
    if (it == models.end()) {
      std::string list;
      for (const auto& [n, m] : models) list += (list.empty() ? "" : ", ") + n;
      throw HttpError(404, "no model named '" + name.substr(0, 100) + "' (served: " + list + ")");
    }
    ServedModel& m = *it->second.model;
    const auto& theirs = served_app(m.task())->actions;
    if (std::find(theirs.begin(), theirs.end(), action) == theirs.end()) {
      std::string route_app;
      for (const auto& app : served_apps()) {
        if (std::find(app.actions.begin(), app.actions.end(), action) != app.actions.end())
          route_app = app.tag;
      }
      throw HttpError(400, "model '" + name + "' is a " + m.task() + " model; this route is for " +
                               route_app + " models");
    }
    return m;
  }

  /// Fills `models` at once at the end: the HTTP threads answer while the models load, and
  /// read `models` only once `ready` says it is complete (a scrape of /metrics walked the map
  /// while this added to it).
  void load_all() {
    std::map<std::string, Served> loaded;
    const ServeContext context{o, device, metrics};
    for (const auto& spec : specs) {
      if (loaded.count(spec.name)) {
        throw std::invalid_argument("--model " + spec.name + ": the name is given twice");
      }
      const ServedApp* app = nullptr;
      std::vector<std::string> shas;
      for (const auto& path : spec.checkpoints) {
        auto archive = train::open_checkpoint(path, "", "");
        const std::string tag = train::get_string(archive, "rnnkit/app");
        const ServedApp* its = served_app(tag);
        if (its == nullptr) {
          std::vector<std::string> tags;
          for (const auto& a : served_apps()) tags.push_back(a.tag);
          throw std::invalid_argument(path + ": a checkpoint of rnnkit-" + tag +
                                      "; the server serves " + listed(tags) + " models");
        }
        if (app != nullptr && its != app) {
          throw std::invalid_argument("--model " + spec.name + ": " + path + " is a " + tag +
                                      " model, the others " + app->tag);
        }
        app = its;
        shas.push_back(file_sha256(path));
      }
      if (!app->ensembles && spec.checkpoints.size() > 1) {
        std::vector<std::string> tags;
        for (const auto& a : served_apps()) {
          if (a.ensembles) tags.push_back(a.tag);
        }
        throw std::invalid_argument("--model " + spec.name +
                                    ": an ensemble of several checkpoints is for " + listed(tags) +
                                    " models only");
      }
      Served served{app->load(spec, context), {}};
      served.card = model_card(*served.model, spec, shas);
      loaded.emplace(spec.name, std::move(served));
    }
    models = std::move(loaded);
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
      // From the request's first byte: a refused request (408, 431) never reaches pre-routing.
      const double s =
          std::chrono::duration<double>(Clock::now() - HttpServer::request_start()).count();
      metrics.request(route_of(req.method, req.path, actions), res.status, s);
    });
    // Errors without a body (cpp-httplib's own: 404 for an unknown path, 413 for a body over
    // the limit, 400 for a bad request line) get a JSON message too.
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      int refused = 0;
      std::string why;
      if (HttpServer::read_refused(refused, why)) {  // 408, 413, 431 or 503 while reading
        res.set_header("Connection", "close");
        if (refused == 503) res.set_header("Retry-After", "1");
        return answer(res, refused, {{"error", why}});
      }
      if (!res.body.empty()) return;
      std::string message = "HTTP status " + std::to_string(res.status);
      if (res.status == 416) {
        // A Range cpp-httplib could not parse: it answers before the hook that drops ranges,
        // and would cut this answer by what it did parse. The Request is process_request's own.
        const_cast<httplib::Request&>(req).ranges.clear();
        message = "the Range header '" + req.get_header_value("Range").substr(0, 100) +
                  "' is not understood; this server sends whole bodies only (send no Range)";
      }
      if (res.status == 400 || res.status == 414) {
        // cpp-httplib's own parse errors (a request line, a chunk size): what follows on the
        // connection cannot be trusted to start a request, so none of it is read.
        message = res.status == 400 ? "a malformed request: its request line or its chunked "
                                      "framing could not be parsed"
                                    : "the request target is too long";
        res.set_header("Connection", "close");
        HttpServer::close_after_answer();
      }
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
      answer(res, 200, openapi::describe(o));
    });
    http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        check_key(req);
        if (!ready) throw HttpError(503, "the models are still loading");
        Json list = Json::array();
        for (const auto& [n, m] : models) list.push_back(m.card);
        answer(res, 200, {{"models", list}});
      });
    });
    http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        check_key(req);
        res.set_content(metrics.text(queue_depths()), "text/plain; version=0.0.4");
      });
    });
    std::string alternatives;
    for (const auto& a : actions) alternatives += (alternatives.empty() ? "" : "|") + a;
    const std::string action = R"(/v1/models/([A-Za-z0-9_.\-]+)/()" + alternatives + ")";
    http.Post(action, [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        check_key(req);
        if (req.body.size() > static_cast<size_t>(o.max_body)) {  // a chunked body, decoded
          throw HttpError(413, fmt::format("the request body is over the limit of {} bytes "
                                           "(--max-body)",
                                           o.max_body));
        }
        const std::string name = req.matches[1], what = req.matches[2];
        model(name, what).handle(what, req.body, res);
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

  /// Each model's queue depth, once `models` is complete.
  std::vector<std::pair<std::string, size_t>> queue_depths() const {
    std::vector<std::pair<std::string, size_t>> depths;
    if (!ready) return depths;
    for (const auto& [name, m] : models) depths.emplace_back(name, m.model->queue_depth());
    return depths;
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
void Server::expire(const std::string& why) {
  if (!impl_->ready) return;  // no model loaded: nothing waits for one
  for (auto& [name, m] : impl_->models) m.model->abandon(why);
}
int Server::port() const { return impl_->port; }
bool Server::ready() const { return impl_->ready; }

}  // namespace rnnkit::serve
