// Internal: the two directions of a bidirectional layer at the same time, forward and backward.
//
// On the calling thread's OpenMP team when it has two threads (team.h), else on a pool of two
// long-lived threads of rnnkit's own. With grad mode on, the pair is one autograd node
// (ConcurrentDirections) whose backward also runs the two directions' graphs at once.
#pragma once

#include <utility>

#include <torch/types.h>

#include "rnnkit/recurrent.h"
#include "rnnkit/state.h"

namespace rnnkit::detail {

/// What one direction of a layer reads: its layer, the initial state and the dropout mask
/// drawn before the split.
struct Direction {
  RecurrentLayer layer;
  State initial;
  torch::Tensor drop;
};

/// Both directions of a layer at once, on the input h [T, B, D] (time-major): what
/// f.layer->forward_time_major and b.layer->forward_time_major would return, with the same
/// gradients.
std::pair<RecurrentOutput, RecurrentOutput> run_concurrently(Direction f, Direction b,
                                                             const torch::Tensor& h,
                                                             const SequenceMask& mask);

}  // namespace rnnkit::detail
