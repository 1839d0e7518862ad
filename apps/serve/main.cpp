// rnnkit-serve: trained models over HTTP/JSON (docs/serving.md).
//
//   rnnkit-serve --model ner=runs/ner/best.pt --model sst2=a.pt,b.pt [--port 8080] ...
//
// SIGINT or SIGTERM stops accepting, lets the requests in flight finish (up to --drain-seconds)
// and exits 0. When the drain runs out, the requests still waiting are answered 503 and it exits
// with 130 or 143; a second signal exits at once with that status.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <fmt/core.h>

#include <rnnkit/train/cli.h>
#include <rnnkit/train/signals.h>
#include <rnnkit/train/system.h>
#include "serve.h"

namespace {

using namespace rnnkit;

std::string read_key(const std::string& path) {
  const std::string text = train::read_regular_file(path, 4096, "API key file");
  const auto b = text.find_first_not_of(" \t\r\n"), e = text.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) throw std::invalid_argument(path + ": the API key file is empty");
  return text.substr(b, e - b + 1);
}

int serve_main(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-serve", "Serve trained rnnkit models over HTTP/JSON");
  cli.add_options()("model",
                    "NAME=CHECKPOINT[,CHECKPOINT...] (repeatable; several checkpoints "
                    "of one sentiment recipe are an ensemble)",
                    cxxopts::value<std::vector<std::string>>())(
      "host", "address to listen on (other than loopback: your explicit choice)",
      cxxopts::value<std::string>()->default_value("127.0.0.1"))(
      "port", "port (0: any free one, printed at start)",
      cxxopts::value<int>()->default_value("8080"))("http-threads",
                                                    "threads that read and answer connections",
                                                    cxxopts::value<int>()->default_value("64"))(
      "max-connections", "connections open at once, at most (more: 503 at once)",
      cxxopts::value<int64_t>()->default_value("1024"))(
      "request-timeout", "seconds within which a request's headers and body must arrive (408)",
      cxxopts::value<double>()->default_value("10"))(
      "max-batch", "texts per forward pass", cxxopts::value<int64_t>()->default_value("32"))(
      "max-delay-ms", "how long a batch waits for more texts after its first",
      cxxopts::value<int64_t>()->default_value("5"))(
      "queue", "texts waiting per model, at most (more: 503)",
      cxxopts::value<int64_t>()->default_value("1024"))(
      "max-body", "bytes of a request body, at most (more: 413)",
      cxxopts::value<int64_t>()->default_value("1048576"))(
      "max-texts", "texts per request, at most", cxxopts::value<int64_t>()->default_value("256"))(
      "max-text-bytes", "bytes of one text, at most",
      cxxopts::value<int64_t>()->default_value("65536"))(
      "max-tokens", "tokens one generate request may ask for, at most",
      cxxopts::value<int64_t>()->default_value("4096"))(
      "max-translate-work",
      "translate: beam x output tokens x source tokens, summed over a request's texts, at most "
      "(more: 413)",
      cxxopts::value<int64_t>()->default_value(
          std::to_string(serve::ServeOptions{}.max_translate_work)))(
      "max-request-seconds",
      "classify, tag, translate: a request not answered within this many seconds gets 504",
      cxxopts::value<double>()->default_value(
          fmt::format("{:g}", serve::ServeOptions{}.max_request_seconds)))(
      "max-attention-cells",
      "translate with attention: n_best x output tokens x source tokens per request, at most",
      cxxopts::value<int64_t>()->default_value(
          std::to_string(serve::ServeOptions{}.max_attention_cells)))(
      "api-key-file",
      "a file holding the key that /v1 and /metrics require as "
      "'Authorization: Bearer KEY'",
      cxxopts::value<std::string>())("drain-seconds",
                                     "on SIGTERM, how long requests in flight may take to finish",
                                     cxxopts::value<double>()->default_value("10"))(
      "trust-checkpoint-plugins", "load the cell plugins the checkpoints record (sha256-checked)")(
      "precision", "fp32, bf16 (the products in bf16, the rest fp32) or fp16 (CUDA)",
      cxxopts::value<std::string>()->default_value("fp32"))("h,help", "this help");
  train::add_runtime_options(cli);
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  if (!args.count("model")) throw cxxopts::exceptions::exception("give at least one --model");

  serve::ServeOptions o;
  o.host = args["host"].as<std::string>();
  o.port = args["port"].as<int>();
  o.http_threads = args["http-threads"].as<int>();
  o.max_connections = args["max-connections"].as<int64_t>();
  o.read_timeout_s = args["request-timeout"].as<double>();
  if (!(o.read_timeout_s >= 0.1 && o.read_timeout_s <= 3600)) {
    throw cxxopts::exceptions::exception(
        fmt::format("--request-timeout must be in [0.1, 3600], got {}", o.read_timeout_s));
  }
  o.max_batch = args["max-batch"].as<int64_t>();
  o.max_delay_ms = args["max-delay-ms"].as<int64_t>();
  o.queue = args["queue"].as<int64_t>();
  o.max_body = args["max-body"].as<int64_t>();
  o.max_texts = args["max-texts"].as<int64_t>();
  o.max_text_bytes = args["max-text-bytes"].as<int64_t>();
  o.max_tokens = args["max-tokens"].as<int64_t>();
  o.max_translate_work = args["max-translate-work"].as<int64_t>();
  o.max_attention_cells = args["max-attention-cells"].as<int64_t>();
  o.max_request_seconds = args["max-request-seconds"].as<double>();
  if (!(o.max_request_seconds >= 0.1 && o.max_request_seconds <= 86400)) {
    throw cxxopts::exceptions::exception(fmt::format(
        "--max-request-seconds must be in [0.1, 86400], got {}", o.max_request_seconds));
  }
  auto positive = [](const char* name, int64_t v, int64_t most) {
    if (v < 1 || v > most) {
      throw cxxopts::exceptions::exception(
          fmt::format("--{} must be in [1, {}], got {}", name, most, v));
    }
  };
  if (o.port < 0 || o.port > 65535) {
    throw cxxopts::exceptions::exception(
        fmt::format("--port must be in [0, 65535], got {}", o.port));
  }
  positive("http-threads", o.http_threads, 1024);
  positive("max-connections", o.max_connections, int64_t{1} << 20);
  positive("max-batch", o.max_batch, 65536);
  if (o.max_delay_ms < 0 || o.max_delay_ms > 10000) {
    throw cxxopts::exceptions::exception(
        fmt::format("--max-delay-ms must be in [0, 10000], got {}", o.max_delay_ms));
  }
  positive("queue", o.queue, int64_t{1} << 24);
  positive("max-body", o.max_body, int64_t{1} << 30);
  positive("max-texts", o.max_texts, int64_t{1} << 20);
  positive("max-text-bytes", o.max_text_bytes, int64_t{1} << 26);
  positive("max-tokens", o.max_tokens, int64_t{1} << 24);
  positive("max-translate-work", o.max_translate_work, int64_t{1} << 40);
  positive("max-attention-cells", o.max_attention_cells, int64_t{1} << 32);
  const double drain = args["drain-seconds"].as<double>();
  if (!(drain >= 0 && drain <= 3600)) {
    throw cxxopts::exceptions::exception("--drain-seconds must be in [0, 3600]");
  }
  if (args.count("api-key-file")) o.api_key = read_key(args["api-key-file"].as<std::string>());
  // cxxopts splits a vector option's values at commas, so "sst2=a.pt,b.pt" arrives as
  // "sst2=a.pt" and "b.pt": a value without '=' continues the one before it.
  std::vector<std::string> given;
  for (const auto& v : args["model"].as<std::vector<std::string>>()) {
    if (!given.empty() && v.find('=') == std::string::npos) {
      given.back() += "," + v;
    } else {
      given.push_back(v);
    }
  }
  std::vector<serve::ModelSpec> models;
  for (const auto& m : given) {
    try {
      models.push_back(serve::ModelSpec::parse(m));
    } catch (const std::invalid_argument& e) {
      throw cxxopts::exceptions::exception(e.what());
    }
  }
  const auto run = train::run_options(args, "");
  const auto device = train::setup_runtime(run, 0);  // checks --precision against the device
  o.precision = parse_precision(run.precision);

  // Signals go to one thread that waits for them; the others never see them.
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGHUP);  // a closed terminal: a drain too, not a kill
  pthread_sigmask(SIG_BLOCK, &stops, nullptr);
  // SIGUSR1/SIGUSR2 (log rotation's habit) mean nothing here; their default is to kill.
  std::signal(SIGUSR1, SIG_IGN);
  std::signal(SIGUSR2, SIG_IGN);

  serve::Server server(o, std::move(models), device);
  server.bind();
  std::thread http([&] { server.run(); });
  std::atomic<bool> failed{false};
  // The waiter waits for `drained` (set once http.join() returned) up to --drain-seconds.
  std::mutex drain_mutex;
  std::condition_variable drain_cv;
  bool drained = false;
  int expired_status = 0;  // the exit status once the drain ran out
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stops, &sig);
    try {
      server.wait_until_running();  // a stop before the listener runs would be lost
    } catch (const std::exception&) {
    }
    if (failed) return server.stop();  // loading failed: nothing to drain
    std::cerr << "rnnkit-serve: " << train::signal_name(sig)
              << ": draining (no new connections; requests in flight finish)\n";
    server.begin_drain();
    std::thread([&stops] {
      int again = 0;
      sigwait(&stops, &again);
      std::_Exit(train::exit_status_for_signal(again));  // a second signal: at once
    }).detach();
    server.stop();
    std::unique_lock<std::mutex> lock(drain_mutex);
    if (drain_cv.wait_for(lock, std::chrono::duration<double>(drain), [&] { return drained; })) {
      return;
    }
    // The requests still waiting for a model hear why (503) instead of a reset connection;
    // whatever has not ended two seconds later is cut off.
    std::cerr << "rnnkit-serve: requests still in flight after --drain-seconds; answering them "
                 "503 and exiting\n";
    expired_status = train::exit_status_for_signal(sig);
    server.expire("the server is shutting down (--drain-seconds ran out); retry");
    if (!drain_cv.wait_for(lock, std::chrono::seconds(2), [&] { return drained; })) {
      std::_Exit(expired_status);
    }
  });
  auto done_draining = [&] {
    {
      std::lock_guard<std::mutex> lock(drain_mutex);
      drained = true;
    }
    drain_cv.notify_all();
  };
  try {
    server.wait_until_running();
    server.load();
  } catch (...) {
    failed = true;
    ::kill(::getpid(), SIGTERM);  // stop the listener; the loading error is what is reported
    http.join();
    done_draining();
    waiter.join();
    throw;
  }
  std::cerr << fmt::format("rnnkit-serve: listening on http://{}:{} ({} model(s) loaded)\n", o.host,
                           server.port(), given.size());
  http.join();
  done_draining();
  waiter.join();
  std::cerr << "rnnkit-serve: stopped\n";
  return expired_status;
}

}  // namespace

int main(int argc, char** argv) {
  return rnnkit::train::guarded_main("rnnkit-serve", serve_main, argc, argv);
}
