#pragma once
// The data-parallel settings a run is given (--dist-backend, --dist-timeout). Only the options:
// the process group itself (distributed.h) is the framework's, and no task sees it.
#include <string>

namespace rnnkit::train::dist {

struct Options {
  std::string backend;     ///< "gloo", "nccl", or empty: nccl for CUDA when built in, else gloo
  double timeout_s = 300;  ///< collectives and the rendezvous give up after this long
};

}  // namespace rnnkit::train::dist
