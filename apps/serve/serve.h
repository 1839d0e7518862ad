#pragma once
// rnnkit-serve: trained models over HTTP/JSON (cpp-httplib, nlohmann-json), with dynamic
// batching. docs/serving.md documents the routes; this header is the server as a library, so
// that tests run it in-process on a free port.
//
//   GET  /health                        200 once every model is loaded, 503 while loading/draining
//   GET  /v1/models                     each model's card
//   POST /v1/models/{name}/classify     sentiment: {"texts": [...]}
//   POST /v1/models/{name}/tag          ner: {"texts": [...]} or {"tokens": [[...]]}
//   POST /v1/models/{name}/score        lm: {"texts": [...], "tokens": false}
//   POST /v1/models/{name}/generate     lm: {"prompt", "max_tokens", ..., "stream"}
//   GET  /metrics                       Prometheus text format
#include <rnnkit/precision.h>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace rnnkit::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";  ///< listening on other addresses is the user's choice
  int port = 8080;                 ///< 0: any free port (Server::port() says which)
  int http_threads = 64;  ///< threads that read, route and answer connections (connection.h)
  int64_t max_connections = 1024;    ///< accepted and not closed; more: 503 at once
  int64_t max_headers = 100;         ///< header lines of a request; more: 431
  int64_t max_header_bytes = 65536;  ///< bytes of a request's headers; more: 431
  int64_t max_batch = 32;            ///< texts per forward pass
  int64_t max_delay_ms = 5;          ///< how long a batch waits for more texts after the first
  int64_t queue = 1024;              ///< texts waiting per model, at most; more: 503
  int64_t max_body = 1 << 20;        ///< bytes of a request body; more: 413
  int64_t max_texts = 256;           ///< texts per request; more: 413
  int64_t max_text_bytes = 65536;    ///< bytes of one text or prompt; more: 413
  int64_t max_tokens = 4096;         ///< most tokens one generate request may ask for
  /// translate: beam × output tokens × source tokens, summed over a request's texts, at most
  /// (more: 413 before any work); a batch is split to stay within it too. The output tokens
  /// are the most the search may write (translate's --max-length and --max-length-factor).
  int64_t max_translate_work = 4'000'000;
  /// translate with "attention": n_best × output tokens × source tokens summed over a
  /// request's texts, at most (more: 413): what bounds the answer's size.
  int64_t max_attention_cells = 1'000'000;
  /// classify, tag and translate: a request not answered within this many seconds gets 504
  /// (its texts still waiting leave the queue).
  double max_request_seconds = 60;
  std::string api_key;  ///< when set, /v1 and /metrics need "Authorization: Bearer KEY"
  /// read: a request's headers and body must arrive within it (408); write: a send that makes no
  /// progress for that long fails.
  double read_timeout_s = 10, write_timeout_s = 10;
  /// --precision: every model's forward passes under autocast (rnnkit/precision.h).
  Precision precision = Precision::kFP32;
};

/// One served name: a checkpoint, or several of one sentiment recipe (an ensemble averaging
/// probabilities, as predict --ensemble does).
struct ModelSpec {
  std::string name;
  std::vector<std::string> checkpoints;
  /// "name=a.pt[,b.pt...]" as --model gives it; a std::invalid_argument says what is wrong.
  static ModelSpec parse(const std::string& text);
};

class Server {
 public:
  Server(ServeOptions options, std::vector<ModelSpec> models, torch::Device device);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds the listening socket (port 0: a free one) and starts answering (/health: 503 until
  /// load() ends). Throws naming the address when it cannot bind.
  void bind();
  /// Loads every model; a failure throws naming the file and the reason, and the server never
  /// serves a partly loaded set.
  void load();
  /// Serves until stop(); returns when the listener has closed and requests in flight ended.
  void run();
  /// Returns once run() (on another thread) is listening: stop() before that would be lost.
  void wait_until_running();
  /// Stops accepting; requests in flight finish. Safe from any thread (not from a signal
  /// handler: call it from a thread that waits for signals).
  void stop();
  /// /health answers 503 from now on (a drain has begun).
  void begin_drain();
  /// The drain ran out: every request waiting for a model's worker (a batch, a generation) is
  /// answered 503 `why` now, so that it hears why before the process exits. An lm score runs
  /// in its request's own thread and still finishes.
  void expire(const std::string& why);
  int port() const;
  bool ready() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rnnkit::serve
