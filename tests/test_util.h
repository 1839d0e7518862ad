#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include <rnnkit/rnnkit.h>

#include "mgu_cell.h"

namespace rnnkit_test {

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>();
}

/// Every cell built into the library, from its registry: a new one is in every once-per-cell
/// test without a list to update here.
inline const std::vector<std::string>& builtin_cells() {
  static const std::vector<std::string> names = rnnkit::builtin_cell_names();
  return names;
}

/// The example's user-defined cell, registered once for the whole test binary: ctest runs each
/// test alone, so no test may rely on another having registered it.
inline const bool kMguRegistered = (mgu::register_mgu(), true);

/// The built-in cells and the example's user-defined "mgu".
inline const std::vector<std::string>& all_cells() {
  static const std::vector<std::string> names = [] {
    auto n = builtin_cells();
    n.push_back("mgu");
    return n;
  }();
  return names;
}

inline std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

inline torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kDouble); }

/// Copies parameters by name (both modules must have the same structure).
inline void copy_params(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto dst = to.named_parameters();
  for (const auto& kv : from.named_parameters()) dst[kv.key()].copy_(kv.value());
}

/// Runs f, expects a c10::Error whose message contains every one of `parts`.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << *parts.begin() << "', got none";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    for (const auto& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "message lacks '" << p << "': " << msg;
    }
  }
}

/// A fresh, empty folder under the test temp dir.
inline std::string temp_dir(const std::string& name) {
  const auto d = std::filesystem::path(::testing::TempDir()) / ("rnnkit_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

/// Writes `text` to dir/name (bytes as given) and returns the path.
inline std::string write_file(const std::string& dir, const std::string& name,
                              const std::string& text) {
  const auto p = (std::filesystem::path(dir) / name).string();
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

/// Runs f, expects an exception of type E whose what() contains every one of `parts`.
template <class E, class F>
void expect_message(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << *parts.begin() << "', got none";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "message lacks '" << p << "': " << msg;
  }
}

/// A fixed random weighting of everything a sequence run returns, so one scalar loss depends on
/// every output, final activation and memory cell.
inline torch::Tensor weighted_sum(const std::vector<torch::Tensor>& ts, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor loss = torch::zeros({}, ts.front().options());
  for (const auto& t : ts) {
    if (t.defined()) loss = loss + (t * torch::randn(t.sizes(), t.options())).sum();
  }
  return loss;
}

/// Compares d loss / d v from autograd with central differences for every element of every
/// tensor in `vars`. `loss` must be deterministic (reseed inside it if it draws).
inline void gradcheck(const std::function<torch::Tensor()>& loss,
                      const std::vector<torch::Tensor>& vars, const std::string& what) {
  for (const auto& v : vars) {
    if (v.grad().defined()) v.mutable_grad().zero_();
  }
  loss().backward();
  const double eps = 1e-6;
  int64_t checked = 0;
  for (size_t k = 0; k < vars.size(); ++k) {
    const torch::Tensor analytic = vars[k].grad().clone();
    ASSERT_TRUE(analytic.defined()) << what << ": no gradient for variable " << k;
    torch::Tensor flat = vars[k].detach().view(-1);  // shares storage with the variable
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double orig = flat[i].item<double>();
      double plus, minus;
      {
        torch::NoGradGuard g;
        flat[i].fill_(orig + eps);
        plus = loss().item<double>();
        flat[i].fill_(orig - eps);
        minus = loss().item<double>();
        flat[i].fill_(orig);
      }
      const double numeric = (plus - minus) / (2 * eps);
      const double a = analytic.view(-1)[i].item<double>();
      ASSERT_NEAR(a, numeric, 1e-7 + 1e-5 * std::abs(numeric))
          << what << ": variable " << k << " element " << i;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

/// The bytes of a file ("" when it cannot be read).
inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace rnnkit_test
