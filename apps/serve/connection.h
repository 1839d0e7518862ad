#pragma once
// The connection layer under cpp-httplib. Debian's cpp-httplib 0.11.4 gives each connection a
// worker thread for as long as it trickles bytes (its timeouts are per recv), reads headers
// without a bound on their number, reads chunked, length-less and gzip bodies whole before any
// limit, keeps an unbounded queue of accepted connections, and drops the connections still
// queued when it stops. HttpServer keeps cpp-httplib's parsing and routing and replaces its
// connection loop (process_and_close_socket, the extension point its TLS server uses) and its
// thread pool, so that each connection gets:
//   - a deadline for each request's headers and body together (request_timeout_s from its first
//     byte; past it, 408), whatever the pace of the bytes;
//   - at most max_headers header lines and max_header_bytes bytes of headers (431);
//   - a body bound while it is read, for every framing (413), and no read at all of a body with
//     no length (411), a compressed one (415) or a declared length over the limit (413 at once):
//     framing_error() finds those before the body is read, and the connection is closed after
//     the answer instead of reading what is left;
//   - keep-alive: at most keepalive_requests requests, keepalive_idle_s between them, and none
//     while other connections wait for a worker; pipelined requests are each answered;
//   - at most max_connections connections accepted and not yet closed: past it a new one gets a
//     503 at once, from the accepting thread, and is closed;
//   - on stop(): connections already accepted get their request answered (with "Connection:
//     close"), not an empty reply; a request still arriving gets one second more (then 503), and
//     a connection that has sent nothing half a second after its accept is closed;
//   - no byte ranges: a Range header is ignored (the whole body, 200).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include <httplib.h>

namespace rnnkit::serve {

struct ConnectionLimits {
  int workers = 8;                ///< threads that read, route and answer connections
  int64_t max_connections = 512;  ///< accepted and not closed (waiting or being served)
  int64_t max_headers = 100;      ///< header lines of one request
  int64_t max_header_bytes = 65536;
  int64_t max_body = 1 << 20;     ///< decoded bytes of a body
  double request_timeout_s = 10;  ///< from a request's first byte to the end of its body
  double keepalive_idle_s = 5;    ///< between two requests of a connection
  int64_t keepalive_requests = 100;
  double write_timeout_s = 10;  ///< one send that makes no progress for this long fails
};

class HttpServer : public httplib::Server {
 public:
  explicit HttpServer(ConnectionLimits limits);

  /// For the pre-routing handler: true (with the status and message to answer) for a request
  /// whose body must not be read: no length (411), a Content-Encoding or a multipart body
  /// (415), Content-Length
  /// headers that differ (400), a declared length over max_body (413). The answer must close
  /// the connection (close_after_answer()): the body is left unread.
  bool framing_error(const httplib::Request& req, int& status, std::string& message) const;
  /// For the error handler: when the connection layer cut the read of this thread's request
  /// short (408, 413, 431; 503 when the server stopped first), its status and message.
  static bool read_refused(int& status, std::string& message);
  /// When this thread's request began (its first byte): what its latency is counted from, even
  /// for a request refused before routing.
  static std::chrono::steady_clock::time_point request_start();
  /// Whether the client of this thread's connection has closed it (or its write side).
  static bool client_gone();
  /// Closes this thread's connection after the answer being written.
  static void close_after_answer();

  int64_t open_connections() const { return open_.load(); }
  int64_t waiting_connections() const;
  const ConnectionLimits& limits() const { return limits_; }

 private:
  bool process_and_close_socket(socket_t sock) override;
  void refuse_now(socket_t sock);

  ConnectionLimits limits_;
  std::atomic<int64_t> open_{0};
  class Pool;
  Pool* pool_ = nullptr;  // owned by cpp-httplib (new_task_queue), alive while listening
};

}  // namespace rnnkit::serve
