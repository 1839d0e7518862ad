#pragma once
// Stopping a long command cleanly. While a StopGuard lives, SIGINT, SIGTERM and SIGHUP only raise a
// flag: training finishes its step (or abandons an evaluation) and writes last.pt. A second
// signal ends the process at once, by that signal, as the shell expects of a second Ctrl-C
// (except under torchrun, which relays the terminal's Ctrl-C a second time and escalates to
// SIGKILL on its own).
#include <stdexcept>
#include <string>

namespace rnnkit::train {

class StopGuard {
 public:
  StopGuard();
  ~StopGuard();
  StopGuard(const StopGuard&) = delete;
  StopGuard& operator=(const StopGuard&) = delete;
};

/// The signal that asked to stop (SIGINT, SIGTERM), or 0.
int stop_signal();
/// Seconds since the stop signal arrived, or -1 when none did.
double seconds_since_stop_signal();
/// "SIGINT", "SIGTERM" or "signal N".
std::string signal_name(int sig);
/// The exit status of a command stopped by `sig`: 128 + sig (130 for SIGINT, 143 for SIGTERM).
inline int exit_status_for_signal(int sig) { return 128 + sig; }

/// Thrown by throw_if_stopped(): long loops outside the training step (evaluation) call it so
/// that a stop is seen within a batch, not at the end of the loop.
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(int sig)
      : std::runtime_error("stopped by " + signal_name(sig)), signal(sig) {}
  int signal;
};
void throw_if_stopped();

/// While it lives, throw_if_stopped() throws (on) or not (off): a data-parallel run must not
/// abandon an evaluation on one rank while the others go on.
class PollStops {
 public:
  explicit PollStops(bool on);
  ~PollStops();

 private:
  bool previous_;
};

/// Tests and the distributed stop path: pretend `sig` arrived (0 clears the flag).
void set_stop_signal(int sig);

}  // namespace rnnkit::train
