// The only file built with OpenMP (modules/CMakeLists.txt): LibTorch's headers parallelize
// at::parallel_for only in code compiled with OpenMP, so a team has to be asked for here.
#include "team.h"

#include <exception>

#include <ATen/Parallel.h>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rnnkit::detail {

bool team_available() {
#ifdef _OPENMP
  // Inside a region of this runtime, LibTorch's runtime says "parallel" only if it is the same.
  static const bool same = [] {
    bool inside = false;
#pragma omp parallel num_threads(2)
    {
      if (omp_get_thread_num() == 1) inside = at::in_parallel_region();
    }
    return inside;
  }();
  return same;
#else
  return false;
#endif
}

void run_on_team(const std::function<void()>& f0, const std::function<void()>& f1) {
#ifdef _OPENMP
  std::exception_ptr error[2];
  // No num_threads clause: a team of another size than the caller's makes GOMP rebuild its pool
  // (LibTorch avoids it for the same reason, pytorch/pytorch#32008); the caller has 2 threads.
#pragma omp parallel
  {
    const int tid = omp_get_thread_num();
    if (tid < 2) {
      try {
        (tid == 0 ? f0 : f1)();
      } catch (...) {
        error[tid] = std::current_exception();
      }
    }
  }
  for (const auto& e : error) {
    if (e) std::rethrow_exception(e);
  }
#else
  f0();
  f1();
#endif
}

}  // namespace rnnkit::detail
