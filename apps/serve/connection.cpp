#include "connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/core.h>

namespace rnnkit::serve {
namespace {

using Clock = std::chrono::steady_clock;

int millis_until(Clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1 << 30));
}

Clock::time_point after(double seconds) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

std::string address(const sockaddr_storage& a, int& port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    port = ntohs(v6->sin6_port);
  }
  return text;
}

/// One connection's bytes, kept across its requests (cpp-httplib's own stream is made anew per
/// request, so bytes read ahead, a pipelined request, were lost). cpp-httplib reads a request's
/// line and headers one byte at a time and its body in blocks: the stream follows the request's
/// phase from those bytes, to bound the headers and the body and to hold both to one deadline.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(socket_t sock, const ConnectionLimits& limits, const std::atomic<socket_t>& listener)
      : sock_(sock), limits_(limits), listener_(listener) {}

  /// Before a request: its deadline starts with its first byte (the caller waits for that).
  void begin_request() {
    started_ = Clock::now();
    deadline_ = after(limits_.request_timeout_s);
    in_headers_ = true;
    header_lines_ = header_bytes_ = body_bytes_ = 0;
    line_.clear();
    line_empty_ = true;
    refused_status_ = 0;
    refused_message_.clear();
    close_after_ = false;
    reading_ = true;
  }
  /// The answer begins: the deadline no longer applies (writes have their own timeout).
  void end_reading() { reading_ = false; }

  /// Waits for the first byte of the next request, up to `until`; false on EOF, an error or
  /// when `give_up` says so (checked every 50 ms).
  bool wait_for_request(Clock::time_point until, const std::function<bool()>& give_up) {
    for (;;) {
      if (off_ < len_) return true;
      const int wait = std::min(50, millis_until(until));
      pollfd p{sock_, POLLIN, 0};
      const int r = ::poll(&p, 1, wait);
      if (r < 0 && errno != EINTR) return false;
      if (r > 0) return fill(Clock::now()) > 0;
      if (Clock::now() >= until || give_up()) return false;
    }
  }

  bool is_readable() const override {
    if (off_ < len_) return true;
    pollfd p{sock_, POLLIN, 0};
    return ::poll(&p, 1, reading_ ? millis_until(deadline_) : 0) > 0;
  }
  bool is_writable() const override {
    pollfd p{sock_, POLLOUT, 0};
    const int r = ::poll(&p, 1, static_cast<int>(limits_.write_timeout_s * 1000));
    return r > 0 && (p.revents & (POLLERR | POLLHUP)) == 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (refused_status_ != 0) return -1;
    if (off_ == len_) {
      const ssize_t n = fill(deadline_);
      if (n <= 0) return n;
    }
    size_t n = std::min(size, len_ - off_);
    if (in_headers_) {
      n = std::min<size_t>(n, 1);  // cpp-httplib reads headers byte by byte anyway
      if (!count_header_byte(buf_[off_])) return -1;
    } else {
      body_bytes_ += static_cast<int64_t>(n);
      // The framing of a chunked body adds a few bytes per chunk: the decoded size is checked
      // exactly after the read (the route's handler); this bound keeps memory bounded.
      if (body_bytes_ > limits_.max_body + 65536) {
        return refuse(413, fmt::format("the request body is over the limit of {} bytes "
                                       "(--max-body)",
                                       limits_.max_body));
      }
    }
    std::copy_n(buf_.data() + off_, n, ptr);
    off_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    end_reading();
    for (;;) {
      const ssize_t w = ::send(sock_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w >= 0) return w;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      if (!is_writable()) return -1;
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t n = sizeof a;
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&a), &n) == 0) ip = address(a, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t n = sizeof a;
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&a), &n) == 0) ip = address(a, port);
  }
  socket_t socket() const override { return sock_; }

  bool has_buffered() const { return off_ < len_; }
  Clock::time_point started() const { return started_; }
  int refused_status() const { return refused_status_; }
  const std::string& refused_message() const { return refused_message_; }
  void set_close_after() { close_after_ = true; }
  bool close_after() const { return close_after_ || refused_status_ != 0; }

 private:
  /// Reads what has arrived, waiting up to `until` (in slices, to notice a stop).
  ssize_t fill(Clock::time_point until) {
    off_ = len_ = 0;
    for (;;) {
      // Once the server stops, a request still arriving gets kStopGrace more, not its whole
      // deadline: one slow client held a drain for all of --drain-seconds.
      if (reading_ && listener_.load() == INVALID_SOCKET) {
        if (stop_deadline_ == Clock::time_point::max()) stop_deadline_ = after(kStopGrace);
        if (Clock::now() >= stop_deadline_) {
          return refuse(503,
                        "the server is shutting down and this request had not arrived "
                        "whole; retry");
        }
      }
      pollfd p{sock_, POLLIN, 0};
      const int r = ::poll(&p, 1, std::min(100, millis_until(until)));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) {
        if (Clock::now() < until) continue;
        if (!reading_) return -1;
        return refuse(408, fmt::format("the request's headers and body did not arrive within "
                                       "{:g} s",
                                       limits_.request_timeout_s));
      }
      if (r < 0) return -1;
      const ssize_t n = ::recv(sock_, buf_.data(), buf_.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) len_ = static_cast<size_t>(n);
      return n;
    }
  }

  bool count_header_byte(char c) {
    if (++header_bytes_ > limits_.max_header_bytes) {
      refuse(431, fmt::format("the request's headers are over the limit of {} bytes",
                              limits_.max_header_bytes));
      return false;
    }
    if (c != '\n') {
      line_ += c;
      if (c != '\r') line_empty_ = false;
      return true;
    }
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    // An empty line ends the headers; the request line counts as no header.
    if (line_empty_ && header_lines_ > 0) {
      in_headers_ = false;
      line_.clear();
      return end_of_headers();
    }
    if (++header_lines_ > limits_.max_headers + 1) {
      refuse(431, fmt::format("the request has more than {} header lines", limits_.max_headers));
      return false;
    }
    const bool ok = header_lines_ == 1 ? request_line() : header_line();
    line_.clear();
    line_empty_ = true;
    return ok;
  }

  // The framing is checked here, on the bytes as sent, because cpp-httplib's parser is lenient
  // (it skips a line without a colon, reads "+19" as a length, prefers chunked to a length):
  // behind a proxy that frames differently, each of those lets a request be smuggled
  // (RFC 9112 §6.1, §6.3). Each is a 400 (501 for a coding we do not decode), and the
  // connection is closed after the answer.
  bool request_line() {
    http10_ = line_.size() >= 8 && line_.compare(line_.size() - 8, 8, "HTTP/1.0") == 0;
    hosts_ = 0;
    content_length_ = transfer_encoding_ = false;
    encoding_.clear();
    return true;
  }

  bool header_line() {
    const size_t n = static_cast<size_t>(header_lines_ - 1);
    if (line_.find('\0') != std::string::npos)
      return reject(400, fmt::format("header line {}: a NUL byte", n));
    if (line_.find('\r') != std::string::npos)
      return reject(400, fmt::format("header line {}: a CR not followed by LF", n));
    const size_t colon = line_.find(':');
    if (colon == std::string::npos || colon == 0) {
      return reject(400, fmt::format("header line {} is not 'name: value' ('{}')", n,
                                     printable(line_.substr(0, 60))));
    }
    std::string name = line_.substr(0, colon);
    for (const char ch : name) {
      const bool token = std::isalnum(static_cast<unsigned char>(ch)) != 0 ||
                         std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
      if (!token) {
        return reject(400, fmt::format("header line {}: the name '{}' is not a token (no "
                                       "spaces before the colon)",
                                       n, printable(name.substr(0, 60))));
      }
    }
    name = lowered(std::move(name));
    std::string value = line_.substr(colon + 1);
    const auto b = value.find_first_not_of(" \t"), e = value.find_last_not_of(" \t");
    value = b == std::string::npos ? std::string() : value.substr(b, e - b + 1);
    if (name == "host") ++hosts_;
    if (name == "content-length") {
      content_length_ = true;
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) {
        return reject(400, fmt::format("Content-Length '{}' is not a number of bytes (digits "
                                       "only)",
                                       printable(value.substr(0, 40))));
      }
    }
    if (name == "transfer-encoding") {
      transfer_encoding_ = true;
      encoding_ += (encoding_.empty() ? "" : ", ") + value;
    }
    return true;
  }

  bool end_of_headers() {
    if (transfer_encoding_ && content_length_) {
      return reject(400,
                    "both Transfer-Encoding and Content-Length: the body's length is "
                    "ambiguous (RFC 9112 section 6.1); send one");
    }
    if (transfer_encoding_) {
      if (lowered(encoding_) != "chunked") {
        return reject(501, fmt::format("Transfer-Encoding '{}' is not supported: send "
                                       "'chunked' alone, or a Content-Length",
                                       printable(encoding_.substr(0, 60))));
      }
    }
    if (!http10_ && hosts_ != 1) {
      return reject(400, fmt::format("an HTTP/1.1 request needs exactly one Host header, not "
                                     "{}",
                                     hosts_));
    }
    return true;
  }

  static std::string lowered(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  }

  /// `s` with bytes outside printable ASCII as '?', for a message.
  static std::string printable(std::string s) {
    for (auto& ch : s) {
      if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e) ch = '?';
    }
    return s;
  }

  bool reject(int status, std::string message) {
    refuse(status, std::move(message));
    return false;
  }

  ssize_t refuse(int status, std::string message) {
    refused_status_ = status;
    refused_message_ = std::move(message);
    return -1;
  }

  static constexpr double kStopGrace = 1.0;  // seconds

  socket_t sock_;
  const ConnectionLimits& limits_;
  const std::atomic<socket_t>& listener_;  // INVALID_SOCKET once the server stops
  std::vector<char> buf_ = std::vector<char>(16384);
  size_t off_ = 0, len_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point stop_deadline_ = Clock::time_point::max();
  Clock::time_point started_ = Clock::now();
  bool reading_ = false, in_headers_ = true, line_empty_ = true, close_after_ = false;
  std::string line_;  // the header line being read
  bool http10_ = false, content_length_ = false, transfer_encoding_ = false;
  int64_t hosts_ = 0;
  std::string encoding_;  // the Transfer-Encoding values, joined
  int64_t header_lines_ = 0, header_bytes_ = 0, body_bytes_ = 0;
  int refused_status_ = 0;
  std::string refused_message_;
};

/// The answer for a request whose line the connection layer cut short.
void answer_refused(ConnStream& strm) {
  std::string message;
  for (const char c : strm.refused_message()) {
    if (c == '"' || c == '\\') message += '\\';
    message += c;
  }
  const std::string body = "{\"error\":\"" + message + "\"}\n";
  const int status = strm.refused_status();
  const std::string answer = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\n{}Connection: close\r\n"
      "Content-Length: {}\r\n\r\n{}",
      status,
      status == 400   ? "Bad Request"
      : status == 408 ? "Request Timeout"
      : status == 431 ? "Request Header Fields Too Large"
      : status == 501 ? "Not Implemented"
      : status == 503 ? "Service Unavailable"
                      : "Payload Too Large",
      status == 503 ? "Retry-After: 1\r\n" : "", body.size(), body);
  for (size_t done = 0; done < answer.size();) {
    const ssize_t w = strm.write(answer.data() + done, answer.size() - done);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
}

thread_local ConnStream* t_conn = nullptr;  // the connection this worker is serving
thread_local bool t_refuse = false;         // the accepting thread refuses this connection
thread_local Clock::time_point t_accepted;  // when the connection being served was accepted

}  // namespace

/// The workers: a fixed pool with a queue bounded by max_connections (counted from accept to
/// close, so that a queued connection and a served one weigh the same).
class HttpServer::Pool final : public httplib::TaskQueue {
 public:
  Pool(HttpServer& server, int workers) : server_(server) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~Pool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    if (server_.open_.load() >= server_.limits_.max_connections) {
      t_refuse = true;  // fn runs process_and_close_socket, which answers 503 at once
      fn();
      t_refuse = false;
      return;
    }
    ++server_.open_;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back([fn = std::move(fn), accepted = Clock::now()] {
        t_accepted = accepted;
        fn();
      });
    }
    cv_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();  // the queued connections are served first
    threads_.clear();
  }

  int64_t waiting() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int64_t>(jobs_.size());
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      fn();
    }
  }

  HttpServer& server_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

HttpServer::HttpServer(ConnectionLimits limits) : limits_(limits) {
  new_task_queue = [this] {
    pool_ = new Pool(*this, limits_.workers);
    return pool_;
  };
  set_keep_alive_max_count(static_cast<size_t>(std::max<int64_t>(1, limits_.keepalive_requests)));
  set_keep_alive_timeout(static_cast<time_t>(std::ceil(limits_.keepalive_idle_s)));
}

int64_t HttpServer::waiting_connections() const { return pool_ ? pool_->waiting() : 0; }

void HttpServer::refuse_now(socket_t sock) {
  const std::string body = fmt::format(
      "{{\"error\":\"the server has {} connections open, its limit "
      "(--max-connections); retry later\"}}\n",
      limits_.max_connections);
  const std::string answer = fmt::format(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: "
      "1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
      body.size(), body);
  // Never blocks the accepting thread: a client that does not read loses the answer.
  (void)::send(sock, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
}

bool HttpServer::process_and_close_socket(socket_t sock) {
  if (t_refuse) {
    refuse_now(sock);
    return true;
  }
  ConnStream strm(sock, limits_, svr_sock_);
  t_conn = &strm;
  bool ret = true;
  for (int64_t n = 0; n < limits_.keepalive_requests; ++n) {
    const bool stopping = svr_sock_ == INVALID_SOCKET;
    // A connection accepted before stop() is still answered; between requests of a kept-alive
    // one, only a request already sent. An idle connection yields its worker to waiting ones;
    // a new one half a second after its accept (a client sends its request right after the
    // connect, so one queued that long with nothing sent is idle).
    const double idle = n == 0 ? limits_.request_timeout_s : limits_.keepalive_idle_s;
    auto give_up = [&] {
      if (n > 0 && svr_sock_ == INVALID_SOCKET) return true;
      const double since_accept = std::chrono::duration<double>(Clock::now() - t_accepted).count();
      // Stopping: a new connection silent for half a second sends nothing in time for the drain.
      if (svr_sock_ == INVALID_SOCKET && since_accept >= 0.5) return true;
      return waiting_connections() > 0 && (n > 0 || since_accept >= 0.5);
    };
    if (!strm.wait_for_request(after(stopping && n > 0 ? 0.0 : idle), give_up)) break;
    strm.begin_request();
    const bool last = n + 1 == limits_.keepalive_requests || svr_sock_ == INVALID_SOCKET;
    bool closed = false;
    // Ranges are not served: 1,100 of them made 9 MB from the 7.7 kB page, and a range of a
    // JSON answer is of no use. cpp-httplib parses them before this hook and applies them after.
    ret = process_request(strm, last, closed, [](httplib::Request& req) { req.ranges.clear(); });
    // A request line cut short (408, 431) is dropped by cpp-httplib without an answer.
    if (!ret && strm.refused_status() != 0) answer_refused(strm);
    if (!ret || closed || last || strm.close_after()) break;
  }
  t_conn = nullptr;
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  --open_;
  return ret;
}

/// cpp-httplib's own cap on a form-encoded body.
constexpr unsigned long long kFormBodyCap = CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH;

bool HttpServer::framing_error(const httplib::Request& req, int& status,
                               std::string& message) const {
  auto refuse = [&](int st, std::string m) {
    status = st;
    message = std::move(m);
    return true;
  };
  if (req.method != "POST" && req.method != "PUT" && req.method != "PATCH") return false;
  // cpp-httplib parses a multipart body itself, and answers a bare 400 when it cannot.
  if (req.is_multipart_form_data()) {
    return refuse(415,
                  "Content-Type 'multipart/form-data' is not accepted: send the JSON body "
                  "as application/json");
  }
  const std::string encoding = req.get_header_value("Content-Encoding");
  if (!encoding.empty() && encoding != "identity") {
    return refuse(415, "Content-Encoding '" + encoding.substr(0, 40) +
                           "' is not accepted: send the JSON body uncompressed");
  }
  // The connection layer let a Transfer-Encoding through only when it is "chunked" (any case)
  // and no Content-Length came with it.
  const bool chunked = req.has_header("Transfer-Encoding");
  const size_t lengths = req.get_header_value_count("Content-Length");
  const std::string length = req.get_header_value("Content-Length");
  for (size_t i = 1; i < lengths; ++i) {
    if (req.get_header_value("Content-Length", i) != length) {
      return refuse(400, "the request has Content-Length headers that differ");
    }
  }
  if (lengths == 0 && !chunked) {
    return refuse(411, "a request body needs a Content-Length (or chunked transfer encoding)");
  }
  // The connection layer let a Content-Length through only as digits (too many of them read as
  // the largest number, which is over any limit).
  const unsigned long long declared = lengths > 0 ? std::strtoull(length.c_str(), nullptr, 10) : 0;
  if (declared > static_cast<unsigned long long>(limits_.max_body)) {
    return refuse(413, fmt::format("the request body ({} bytes) is over the limit of {} bytes "
                                   "(--max-body)",
                                   declared, limits_.max_body));
  }
  // cpp-httplib caps a body labelled form-encoded (curl -d's default label) at 8,192 bytes
  // whatever --max-body says, and its 413 named --max-body. A larger one is refused here for
  // what it is; a smaller one is read as the JSON it holds.
  const bool form =
      req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0;
  if (form && (chunked || declared > kFormBodyCap)) {
    return refuse(415, fmt::format("Content-Type 'application/x-www-form-urlencoded' (curl -d's "
                                   "default) is read only up to {} bytes: send the JSON body "
                                   "with 'Content-Type: application/json'",
                                   kFormBodyCap));
  }
  return false;
}

bool HttpServer::read_refused(int& status, std::string& message) {
  if (!t_conn || t_conn->refused_status() == 0) return false;
  status = t_conn->refused_status();
  message = t_conn->refused_message();
  return true;
}

std::chrono::steady_clock::time_point HttpServer::request_start() {
  return t_conn ? t_conn->started() : Clock::now();
}

bool HttpServer::client_gone() {
  if (!t_conn) return false;
  pollfd p{t_conn->socket(), POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void HttpServer::close_after_answer() {
  if (t_conn) t_conn->set_close_after();
}

}  // namespace rnnkit::serve
