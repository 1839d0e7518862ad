#include <rnnkit/train/signals.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <rnnkit/data/text.h>

namespace rnnkit::train {
namespace {

std::atomic<int> g_signal{0};
std::atomic<int64_t> g_signal_ns{0};  // CLOCK_MONOTONIC when the stop was asked for
std::atomic<int> g_guards{0};
std::atomic<bool> g_poll{true};
// Under torchrun a Ctrl-C reaches a worker twice, from the terminal and relayed by the agent
// (which escalates to SIGKILL itself after 30 s): there the second signal must not abort.
std::atomic<bool> g_second_aborts{true};
struct sigaction g_old_int, g_old_term, g_old_hup;

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe, unlike most of the library
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

extern "C" void on_stop_signal(int sig) {
  if (g_signal.load() != 0 && g_second_aborts.load()) {
    // The second signal: the default action (termination by this signal), now. The signal is
    // blocked inside its handler, so the re-raised one is delivered as soon as this returns.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  if (g_signal.load() == 0) g_signal_ns = monotonic_ns();
  g_signal = sig;
}

}  // namespace

StopGuard::StopGuard() {
  if (g_guards++ > 0) return;  // nested (sentiment's pretraining inside a run): one handler
  g_signal = 0;
  g_second_aborts = std::getenv("TORCHELASTIC_RUN_ID") == nullptr;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
  // A closed terminal or ssh session: the same clean stop (last.pt), not a lost run.
  sigaction(SIGHUP, &sa, &g_old_hup);
  // Readers poll too: a stop while a large file loads is seen at once.
  data::set_stop_check(&throw_if_stopped);
}

StopGuard::~StopGuard() {
  if (--g_guards > 0) return;
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
  sigaction(SIGHUP, &g_old_hup, nullptr);
  data::set_stop_check(nullptr);
}

int stop_signal() { return g_signal.load(); }
void set_stop_signal(int sig) {
  if (sig != 0 && g_signal.load() == 0) g_signal_ns = monotonic_ns();
  g_signal = sig;
}

double seconds_since_stop_signal() {
  if (g_signal.load() == 0) return -1;
  return static_cast<double>(monotonic_ns() - g_signal_ns.load()) * 1e-9;
}

std::string signal_name(int sig) {
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGTERM) return "SIGTERM";
  if (sig == SIGHUP) return "SIGHUP";
  return "signal " + std::to_string(sig);
}

void throw_if_stopped() {
  if (!g_poll.load()) return;
  if (const int s = g_signal.load()) throw Interrupted(s);
}

PollStops::PollStops(bool on) : previous_(g_poll.exchange(on)) {}
PollStops::~PollStops() { g_poll = previous_; }

}  // namespace rnnkit::train
