// A float64 training process for the data-parallel tests (tests/cli_distributed.sh): the same
// lm and sentiment training code as the apps, with every parameter in float64, so that 2
// processes on Gloo and 1 process with the whole batch can be compared to 1e-10.
//
//   rnnkit_dist_worker train APP CONFIG RUN_DIR MAX_STEPS [resume]   (torchrun sets the ranks)
//   rnnkit_dist_worker compare APP A.pt B.pt TOLERANCE               (max |a - b| over parameters)
#include <cmath>
#include <iostream>
#include <string>

#include <fmt/core.h>
#include <torch/torch.h>

#include <rnnkit/train/cli.h>
#include <rnnkit/train/signals.h>
#include "lm/lm.h"
#include "sentiment/sentiment.h"

using namespace rnnkit;

namespace {

std::vector<std::pair<std::string, torch::Tensor>> parameters(const std::string& app,
                                                              const std::string& path) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  auto take = [&](const torch::nn::Module& m) {
    for (const auto& p : m.named_parameters())
      out.emplace_back(p.key(), p.value().detach().clone());
  };
  if (app == "lm") {
    take(*lm::load_model(path, torch::kCPU).model);
  } else {
    take(*sentiment::load_model(path, torch::kCPU).model);
  }
  return out;
}

int body(int argc, char** argv) {
  torch::set_default_dtype(caffe2::TypeMeta::Make<double>());
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "train" && (argc == 6 || argc == 7)) {
    const std::string app = argv[2];
    train::ConfigReader config(argv[3]);
    train::RunOptions run;
    run.run_dir = argv[4];
    run.max_steps = std::stoll(argv[5]);
    run.resume = argc == 7 && std::string(argv[6]) == "resume";
    run.threads = 1;
    run.quiet = true;
    run.distributed = true;
    run.dist.timeout_s = 60;
    const train::StopGuard stop;
    const auto r = app == "lm" ? lm::train(config, run) : sentiment::train(config, run);
    return train::exit_status(r);
  }
  if (cmd == "compare" && argc == 6) {
    const auto a = parameters(argv[2], argv[3]), b = parameters(argv[2], argv[4]);
    const double tol = std::stod(argv[5]);
    if (a.size() != b.size()) throw std::runtime_error("different parameter counts");
    double worst = 0;
    std::string where;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].first != b[i].first || !a[i].second.sizes().equals(b[i].second.sizes())) {
        throw std::runtime_error("parameter " + a[i].first + " differs in name or shape");
      }
      const double d = (a[i].second - b[i].second).abs().max().item<double>();
      if (d > worst) worst = d, where = a[i].first;
    }
    std::cout << fmt::format("max |difference| {:.3e} ({}) over {} parameters\n", worst, where,
                             a.size());
    return worst <= tol ? 0 : 1;
  }
  std::cerr << "usage: rnnkit_dist_worker train APP CONFIG RUN_DIR MAX_STEPS [resume] | compare "
               "APP A B TOL\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  return train::guarded_main("rnnkit_dist_worker", body, argc, argv);
}
