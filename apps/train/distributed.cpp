#include <rnnkit/train/distributed.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(USE_C10D_GLOO) && __has_include(<gloo/config.h>)
#define RNNKIT_HAS_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>

#include <rnnkit/compat.h>
#include <rnnkit/train/signals.h>

namespace rnnkit::train::dist {
namespace {

using rnnkit::CommBackend;

using Millis = std::chrono::milliseconds;

std::string env_or(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v ? std::string(v) : fallback;
}

int parse_int_env(const char* name, const std::string& text, int min, int max) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || !end || *end != '\0' || v < min || v > max) {
    throw DistributedError(
        fmt::format("{}='{}': expected an integer from {} to {}", name, text, min, max));
  }
  return static_cast<int>(v);
}

constexpr auto kHeartbeat = std::chrono::milliseconds(1000);

// ---- Waiting for the other ranks -------------------------------------------------------------
// A c10d call that waits for peers (the store's rendezvous, Gloo's group formation, a
// collective) blocks in a socket read that no signal interrupts. A job is told to stop with
// SIGTERM and killed a few seconds later, so a watchdog thread ends a wait that a stop signal
// has made pointless: kStopGrace after the signal (or after the wait began, if the signal came
// first), unless the ranks already agreed to stop (then the waits are for rank 0's checkpoint).
// It also holds the rendezvous to one deadline: the store's wait and Gloo's formation would
// otherwise each take up to the timeout.
using Clock = std::chrono::steady_clock;
constexpr double kStopGrace = 1.5;  // seconds; a peer that is alive answers within a step

struct Waiting {
  std::mutex mutex;
  bool active = false;
  std::string what;  // "the rendezvous of 2 ranks at 127.0.0.1:29500", "an all-reduce"
  Clock::time_point start, deadline;
  double timeout_s = 0;
  bool stop_agreed = false;
  int rank = 0, world_size = 1;
};

Waiting& waiting() {
  static auto* w = new Waiting;  // never destroyed: the watchdog may outlive static destructors
  return *w;
}

[[noreturn]] void end_now(const std::string& line, int status) {
  fmt::print(stderr, "{}: {}\n", program_invocation_short_name, line);
  std::fflush(stderr);
  ::_exit(status);
}

void watchdog() {
  Waiting& w = waiting();
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::unique_lock<std::mutex> lock(w.mutex);
    if (!w.active) continue;
    const auto now = Clock::now();
    const double since_signal = seconds_since_stop_signal();
    const double waited = std::chrono::duration<double>(now - w.start).count();
    if (since_signal >= 0 && !w.stop_agreed && std::min(since_signal, waited) >= kStopGrace) {
      const int sig = stop_signal();
      end_now(fmt::format("rank {} of {}: {} while waiting for {} ({:.1f} s); stopped without "
                          "waiting longer, no checkpoint written since the last one",
                          w.rank, w.world_size, signal_name(sig), w.what, waited),
              exit_status_for_signal(sig));
    }
    if (now >= w.deadline) {
      end_now(fmt::format("error: rank {} of {}: {} did not complete within {:g} s "
                          "(--dist-timeout); stopped",
                          w.rank, w.world_size, w.what, w.timeout_s),
              1);
    }
  }
}

/// While it lives, this process is waiting for its peers (see above).
class PeerWait {
 public:
  PeerWait(std::string what, const Env& env, double timeout_s = -1) {
    static std::once_flag started;
    std::call_once(started, [] { std::thread(watchdog).detach(); });
    Waiting& w = waiting();
    std::lock_guard<std::mutex> lock(w.mutex);
    w.active = true;
    w.what = std::move(what);
    w.start = Clock::now();
    w.timeout_s = timeout_s;
    // A little past the timeout: a single wait that times out reports it itself, with its reason.
    w.deadline =
        timeout_s < 0
            ? Clock::time_point::max()
            : w.start + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000) + 500);
    w.rank = env.rank;
    w.world_size = env.world_size;
  }
  ~PeerWait() {
    std::lock_guard<std::mutex> lock(waiting().mutex);
    waiting().active = false;
  }
  PeerWait(const PeerWait&) = delete;
  PeerWait& operator=(const PeerWait&) = delete;
};

struct Group {
  Env env;
  Options options;
  c10::intrusive_ptr<c10d::Store> store;  // the prefixed store of this run
  c10::intrusive_ptr<CommBackend> pg;     // Gloo or NCCL
  std::string backend;
  std::thread heartbeat;
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  bool agent_store = false;
  std::string store_prefix;
};

std::unique_ptr<Group> g_group;

c10::intrusive_ptr<c10d::Store> connect_store(const Env& env, bool server, bool wait_workers,
                                              Millis timeout, const std::string& prefix) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(env.master_port);
  o.isServer = server;
  o.numWorkers = static_cast<size_t>(env.world_size);
  o.waitWorkers = wait_workers;
  o.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> s = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  return c10::make_intrusive<c10d::PrefixStore>(prefix, s);
}

std::string hb_key(int r) { return "rnnkit/heartbeat/" + std::to_string(r); }

/// Which ranks have stopped beating: two readings of every rank's heartbeat counter, 2.5
/// beats apart, from a fresh connection (the group's own may be what broke).
std::string diagnose(Group& g) {
  const Env& env = g.env;
  c10::intrusive_ptr<c10d::Store> s;
  try {
    s = connect_store(env, false, false, Millis(3000), g.store_prefix);
  } catch (const std::exception&) {
    return fmt::format(
        "the rendezvous store at {}:{} is gone{}", env.master_addr, env.master_port,
        g.agent_store ? " (the launcher stopped)" : ", and with it rank 0, which hosts it");
  }
  auto read = [&] {
    std::vector<std::string> v(static_cast<size_t>(env.world_size));
    for (int r = 0; r < env.world_size; ++r) {
      if (s->check({hb_key(r)})) {
        const auto bytes = s->get(hb_key(r));
        v[static_cast<size_t>(r)] = std::string(bytes.begin(), bytes.end());
      }
    }
    return v;
  };
  try {
    const auto before = read();
    std::this_thread::sleep_for(kHeartbeat * 5 / 2);
    const auto after = read();
    std::vector<std::string> lost;
    for (int r = 0; r < env.world_size; ++r) {
      if (r != env.rank && before[static_cast<size_t>(r)] == after[static_cast<size_t>(r)]) {
        lost.push_back(std::to_string(r));
      }
    }
    if (lost.empty())
      return "every other rank still answers (a network fault, or a rank that gave up)";
    return fmt::format("lost rank{} {} (no heartbeat for {:.1f} s)", lost.size() > 1 ? "s" : "",
                       fmt::join(lost, ", "),
                       std::chrono::duration<double>(kHeartbeat * 5 / 2).count());
  } catch (const std::exception&) {
    return fmt::format("the rendezvous store at {}:{} stopped answering", env.master_addr,
                       env.master_port);
  }
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

/// Runs a collective and turns its failure into a DistributedError naming the lost rank.
template <class F>
void collective(const char* what, F&& fn) {
  if (!g_group) return;
  try {
    const PeerWait wait(std::string(what[0] == 'a' ? "an " : "a ") + what, g_group->env);
    fn(*g_group->pg)->wait();
  } catch (const std::exception& e) {
    const std::string why = diagnose(*g_group);
    throw DistributedError(fmt::format("rank {} of {}: {} failed: {}; {}", g_group->env.rank,
                                       g_group->env.world_size, what, why, first_line(e.what())));
  }
}

void heartbeat_loop(Group* g) {
  c10::intrusive_ptr<c10d::Store> s;
  try {
    s = connect_store(g->env, false, false,
                      Millis(static_cast<int64_t>(g->options.timeout_s * 1000)), g->store_prefix);
  } catch (const std::exception&) {
    return;  // no heartbeat: the others will call this rank lost if it also stops answering
  }
  std::unique_lock<std::mutex> lock(g->mutex);
  for (int64_t beat = 0; !g->stopping; ++beat) {
    lock.unlock();
    try {
      const std::string v = std::to_string(beat);
      s->set(hb_key(g->env.rank), std::vector<uint8_t>(v.begin(), v.end()));
    } catch (const std::exception&) {
      return;
    }
    lock.lock();
    g->cv.wait_for(lock, kHeartbeat, [&] { return g->stopping; });
  }
}

}  // namespace

Env Env::read() {
  Env e;
  const std::string world = env_or("WORLD_SIZE");
  if (world.empty()) {
    if (!env_or("RANK").empty()) {
      throw DistributedError(
          "RANK is set but WORLD_SIZE is not; launch data-parallel runs with torchrun, "
          "which sets both");
    }
    return e;
  }
  e.present = true;
  e.world_size = parse_int_env("WORLD_SIZE", world, 1, 1 << 20);
  const std::string rank = env_or("RANK");
  if (rank.empty()) {
    throw DistributedError(
        "WORLD_SIZE=" + world +
        " is set but RANK is not; launch data-parallel runs with "
        "torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT");
  }
  e.rank = parse_int_env("RANK", rank, 0, e.world_size - 1);
  e.local_rank = parse_int_env("LOCAL_RANK", env_or("LOCAL_RANK", rank), 0, 1 << 20);
  if (e.world_size > 1) {
    e.master_addr = env_or("MASTER_ADDR");
    const std::string port = env_or("MASTER_PORT");
    if (e.master_addr.empty() || port.empty()) {
      throw DistributedError(
          fmt::format("WORLD_SIZE={} needs MASTER_ADDR and MASTER_PORT (the rendezvous "
                      "store's address); torchrun sets them",
                      e.world_size));
    }
    e.master_port = parse_int_env("MASTER_PORT", port, 1, 65535);
  }
  return e;
}

void init_from_env(const Options& options, const torch::Device& device) {
  if (g_group) return;
  const Env env = Env::read();
  if (!env.present || env.world_size == 1) return;
  auto g = std::make_unique<Group>();
  g->env = env;
  g->options = options;
  g->backend = options.backend;
  if (g->backend.empty()) {
#ifdef USE_C10D_NCCL
    g->backend = device.is_cuda() ? "nccl" : "gloo";
#else
    g->backend = "gloo";
#endif
  }
  const Millis timeout(static_cast<int64_t>(options.timeout_s * 1000));
  // torchrun from PyTorch 2.x may host the store in its agent (as Python's env:// does then).
  g->agent_store = env_or("TORCHELASTIC_USE_AGENT_STORE") == "True";
  g->store_prefix =
      g->agent_store ? "/worker/attempt_" + env_or("TORCHELASTIC_RESTART_COUNT", "0") + "/" : "";
  const PeerWait wait(fmt::format("the rendezvous of {} ranks at {}:{}", env.world_size,
                                  env.master_addr, env.master_port),
                      env, options.timeout_s);
  try {
    g->store = connect_store(env, env.rank == 0 && !g->agent_store, true, timeout, g->store_prefix);
  } catch (const std::exception& e) {
    throw DistributedError(
        fmt::format("rank {} of {}: cannot reach the rendezvous store at {}:{} "
                    "(MASTER_ADDR, MASTER_PORT) within {:g} s: {}",
                    env.rank, env.world_size, env.master_addr, env.master_port, options.timeout_s,
                    first_line(e.what())));
  }
  auto pg_store = c10::make_intrusive<c10d::PrefixStore>("default_pg/", g->store);
  try {
    if (g->backend == "gloo") {
#ifdef RNNKIT_HAS_GLOO
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      const std::string ifname = env_or("GLOO_SOCKET_IFNAME");
      if (!ifname.empty()) {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else {
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(pg_store, env.rank, env.world_size, o);
#else
      throw DistributedError(
          "--dist-backend gloo: this LibTorch build has no Gloo (or its headers are missing)");
#endif
    } else if (g->backend == "nccl") {
#ifdef USE_C10D_NCCL
      if (!device.is_cuda()) throw DistributedError("--dist-backend nccl needs --device cuda");
      // Without these a dead peer leaves NCCL collectives waiting forever.
      setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg_store, env.rank, env.world_size, o);
#else
      throw DistributedError(
          "--dist-backend nccl: this LibTorch build has no NCCL (a CPU build); use gloo");
#endif
    } else {
      throw DistributedError("--dist-backend: expected gloo or nccl, got '" + g->backend + "'");
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistributedError(
        fmt::format("rank {} of {}: the {} process group did not form within {:g} s: {}", env.rank,
                    env.world_size, g->backend, options.timeout_s, first_line(e.what())));
  }
  g->heartbeat = std::thread(heartbeat_loop, g.get());
  g_group = std::move(g);
  std::atexit([] { shutdown(); });
}

void shutdown() {
  if (!g_group) return;
  {
    std::lock_guard<std::mutex> lock(g_group->mutex);
    g_group->stopping = true;
  }
  g_group->cv.notify_all();
  if (g_group->heartbeat.joinable()) g_group->heartbeat.join();
  g_group.reset();
}

void stop_agreed() {
  std::lock_guard<std::mutex> lock(waiting().mutex);
  waiting().stop_agreed = true;
}

bool enabled() { return g_group != nullptr; }
int rank() { return g_group ? g_group->env.rank : 0; }
int world_size() { return g_group ? g_group->env.world_size : 1; }

void broadcast_(std::vector<torch::Tensor>& tensors, int root) {
  if (!g_group || tensors.empty()) return;
  torch::NoGradGuard no_grad;
  for (auto& t : tensors) {
    // Gloo has no bool type (the CRF's transition masks are bool buffers): send those as bytes.
    const bool as_bytes = t.scalar_type() == torch::kBool;
    std::vector<torch::Tensor> one{as_bytes ? t.to(torch::kUInt8) : t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    collective("broadcast", [&](CommBackend& pg) { return pg.broadcast(one, o); });
    if (as_bytes) t.copy_(one[0].to(torch::kBool));
  }
}

void all_reduce_sum_(torch::Tensor& tensor) {
  if (!g_group) return;
  std::vector<torch::Tensor> one{tensor};
  collective("all-reduce", [&](CommBackend& pg) { return pg.allreduce(one); });
}

std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor) {
  if (!g_group) return {tensor};
  std::vector<torch::Tensor> in{tensor.contiguous()};
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < world_size(); ++r) out[0].push_back(torch::empty_like(in[0]));
  collective("all-gather", [&](CommBackend& pg) { return pg.allgather(out, in); });
  return out[0];
}

std::string broadcast_string(const std::string& s, int root) {
  if (!g_group) return s;
  std::vector<torch::Tensor> size{torch::tensor({static_cast<int64_t>(s.size())}, torch::kLong)};
  broadcast_(size, root);
  const int64_t n = size[0].item<int64_t>();
  std::vector<torch::Tensor> bytes{torch::zeros({n}, torch::kUInt8)};
  if (rank() == root && n > 0) std::memcpy(bytes[0].data_ptr(), s.data(), s.size());
  if (n > 0) broadcast_(bytes, root);
  return std::string(static_cast<const char*>(bytes[0].data_ptr()), static_cast<size_t>(n));
}

void broadcast_module(const std::vector<torch::Tensor>& tensors) {
  if (!g_group) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> ts(tensors.begin(), tensors.end());
  broadcast_(ts, 0);
}

void average_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  if (!g_group) return;
  torch::NoGradGuard no_grad;
  const double world = world_size();
  // Buckets of one dtype and device, in parameter order.
  std::vector<std::vector<torch::Tensor>> buckets;
  int64_t bytes = 0;
  for (const auto& p : params) {
    if (!p.requires_grad()) continue;
    auto& grad = const_cast<torch::Tensor&>(p).mutable_grad();
    if (!grad.defined()) grad = torch::zeros_like(p);
    const int64_t b = grad.numel() * static_cast<int64_t>(grad.element_size());
    if (buckets.empty() || bytes + b > bucket_bytes ||
        buckets.back().front().dtype() != grad.dtype() ||
        buckets.back().front().device() != grad.device()) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(grad);
    bytes += b;
  }
  for (auto& bucket : buckets) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& g : bucket) flat_parts.push_back(g.reshape(-1));
    torch::Tensor flat = torch::cat(flat_parts);
    all_reduce_sum_(flat);
    flat.div_(world);
    int64_t offset = 0;
    for (auto& g : bucket) {
      g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
  }
}

void on_rank0(const std::function<void()>& fn) {
  if (!g_group) {
    fn();
    return;
  }
  std::string error;
  std::exception_ptr ep;
  if (rank() == 0) {
    try {
      fn();
    } catch (const std::exception& e) {
      error = e.what();
      ep = std::current_exception();
    }
  }
  error = broadcast_string(error, 0);
  if (ep) std::rethrow_exception(ep);
  if (!error.empty()) throw DistributedError("rank 0: " + error);
}

}  // namespace rnnkit::train::dist
