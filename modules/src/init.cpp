#include "rnnkit/init.h"

#include <cmath>

#include <c10/util/Exception.h>
#include <torch/nn/init.h>

namespace rnnkit {

const std::vector<std::string>& init_names() {
  static const std::vector<std::string> names{"uniform", "xavier", "he", "orthogonal"};
  return names;
}

Init parse_init(const std::string& name) {
  if (name == "uniform") return Init::kUniform;
  if (name == "xavier") return Init::kXavier;
  if (name == "he") return Init::kHe;
  if (name == "orthogonal") return Init::kOrthogonal;
  TORCH_CHECK(false, "unknown initialisation '", name,
              "'; expected one of: uniform, xavier, he, orthogonal");
}

std::string to_string(Init init) {
  switch (init) {
    case Init::kUniform:
      return "uniform";
    case Init::kXavier:
      return "xavier";
    case Init::kHe:
      return "he";
    case Init::kOrthogonal:
      return "orthogonal";
  }
  return "?";
}

namespace detail {

void init_gate(const torch::Tensor& W, const torch::Tensor& b, Init init) {
  torch::NoGradGuard no_grad;
  const int64_t H = W.size(0);
  const double fan_in = static_cast<double>(W.size(1));  // H + D
  switch (init) {
    case Init::kUniform: {
      const double k = 1.0 / std::sqrt(static_cast<double>(H));
      W.uniform_(-k, k);
      if (b.defined()) b.uniform_(-k, k);
      return;
    }
    case Init::kXavier:
      W.normal_(0.0, std::sqrt(1.0 / fan_in));
      break;
    case Init::kHe:
      W.normal_(0.0, std::sqrt(2.0 / fan_in));
      break;
    case Init::kOrthogonal: {
      W.normal_(0.0, std::sqrt(1.0 / fan_in));
      // orthogonal_ writes through a copy: the narrowed block is not contiguous.
      auto block = torch::empty({H, H}, W.options());
      torch::nn::init::orthogonal_(block);
      W.narrow(1, 0, H).copy_(block);
      break;
    }
  }
  if (b.defined()) b.zero_();
}

void init_vector(const torch::Tensor& v, int64_t hidden_size, Init init) {
  torch::NoGradGuard no_grad;
  if (init == Init::kUniform) {
    const double k = 1.0 / std::sqrt(static_cast<double>(hidden_size));
    v.uniform_(-k, k);
  } else {
    v.zero_();
  }
}

}  // namespace detail
}  // namespace rnnkit
