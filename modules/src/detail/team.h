// Internal: the two directions of a bidirectional layer on the calling thread's OpenMP team.
#pragma once

#include <functional>

namespace rnnkit::detail {

/// Whether run_on_team can run two tasks at once here: this file was built with OpenMP, the
/// OpenMP runtime is LibTorch's own (an official LibTorch bundles its own libgomp), and a team
/// of two threads forms.
bool team_available();

/// Runs f0 on the calling thread and f1 on the other thread of its OpenMP team (the intra-op
/// threads LibTorch already runs, so no thread is woken or left spinning); inside, LibTorch and
/// OpenBLAS see a parallel region and run single-threaded. Rethrows the first failure. Call only
/// when at::get_num_threads() == 2 and team_available().
void run_on_team(const std::function<void()>& f0, const std::function<void()>& f1);

}  // namespace rnnkit::detail
