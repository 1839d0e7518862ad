#pragma once
// rnnkit-gradflow: the course's argument about gradients, as experiments a user can run.
//  - gradient_norms: ‖∂L/∂a<t>‖ and ‖∂L/∂x<t>‖ for every t, with L depending on the last step
//    only: how fast the signal from the end of a sequence fades on its way to the start;
//  - agreement: a long-range task (number agreement across a gap of filler words) trained with
//    the same budget for each cell and gap;
//  - explode: a vanilla RNN with a large recurrent initialisation, with and without clipping.
#include <c10/util/Optional.h>
#include <string>
#include <vector>

#include <rnnkit/compat.h>
#include <rnnkit/init.h>
#include <rnnkit/rnn_options.h>

namespace rnnkit::gradflow {

/// A cell to compare: its name, init and forget_bias in the library's options struct (the sizes
/// are each experiment's).
struct CellSetup {
  RNNOptions rnn{"lstm", 0, 0};
  std::string label() const;  ///< e.g. "lstm (forget bias 1)"; no commas
};

struct GradNorms {
  std::vector<double> da, dx;  ///< index t = 0 .. T-1
};
/// One seeded batch x [T, B, D] ~ N(0, 1) through the cell (float64, so that tiny norms do not
/// underflow); L = mean over the batch of r · a<T> with a fixed random r.
GradNorms gradient_norms(const CellSetup& setup, int64_t T, int64_t batch, int64_t input_size,
                         int64_t hidden_size, uint64_t seed);

struct AgreementOptions {
  int64_t hidden_size = 32, embedding_size = 16, steps = 300, batch_size = 32;
  double learning_rate = 0.01, clip_norm = 1.0;
  uint64_t seed = 1;
};
/// Number agreement: a singular or plural noun, `gap` filler words, then the query "was or
/// were?". Trains a fresh model for `options.steps` Adam steps; returns the accuracy on 1000
/// fresh sequences (0.5 is chance).
double agreement_accuracy(const CellSetup& setup, int64_t gap, const AgreementOptions& options);

struct ExplodeOptions {
  int64_t T = 50, hidden_size = 32, steps = 60, batch_size = 32;
  double scale = 3.0;  ///< the recurrent blocks are scale × an orthogonal matrix
  double learning_rate = 0.05;
  double clip_norm = 0, clip_value = 0;  ///< 0 = off
  uint64_t seed = 1;
};
struct ExplodeTrace {
  std::vector<double> norm_before, norm_after, loss;  ///< per step (norms: global L2 of grads)
  int64_t diverged_at = -1;  ///< the first step with a non-finite loss or gradient, or -1
};
/// A relu RNN on the agreement task (gap T), trained with SGD; records the gradient norm before
/// and after clipping at every step. Stops at the first non-finite loss.
ExplodeTrace explode(const ExplodeOptions& options);

}  // namespace rnnkit::gradflow
