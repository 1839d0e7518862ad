#pragma once
// The state a recurrent cell carries from step t-1 to step t.
#include <torch/types.h>

namespace rnnkit {

/// Notation of docs/equations.md. Shapes: B = batch, H = hidden size.
struct State {
  torch::Tensor a;  ///< a<t>, the activation passed on: [B, H]
  torch::Tensor c;  ///< c<t>, the LSTM memory cell: [B, H]; undefined for cells where c<t> = a<t>

  bool defined() const { return a.defined(); }
  State detach() const { return {a.defined() ? a.detach() : a, c.defined() ? c.detach() : c}; }
};

}  // namespace rnnkit
