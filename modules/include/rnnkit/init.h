#pragma once
// Parameter initialisation schemes shared by every cell.
#include <string>
#include <vector>

#include <torch/types.h>

namespace rnnkit {

/// kUniform: PyTorch's default, every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
/// kXavier: W ~ randn * sqrt(1 / fan_in), fan_in = H + D; biases zero (docs/equations.md).
/// kHe: W ~ randn * sqrt(2 / fan_in); biases zero.
/// kOrthogonal: the recurrent block [H, H] of each gate orthogonal, the input block Xavier,
///              biases zero. Keeps the recurrent Jacobian's singular values at 1 at the start.
enum class Init { kUniform, kXavier, kHe, kOrthogonal };

/// "uniform", "xavier", "he", "orthogonal". Throws on any other name, listing these.
Init parse_init(const std::string& name);
std::string to_string(Init init);
const std::vector<std::string>& init_names();

namespace detail {
/// Fills one gate: W [H, H + D] (recurrent columns first) and its bias b [H] (may be undefined).
void init_gate(const torch::Tensor& W, const torch::Tensor& b, Init init);
/// Fills a vector that acts element-wise on c<t-1> (LSTM peepholes, the GRU's b_cc).
void init_vector(const torch::Tensor& v, int64_t hidden_size, Init init);
}  // namespace detail

}  // namespace rnnkit
