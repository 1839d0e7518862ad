#include "metrics_log.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>

#include <rnnkit/train/system.h>

namespace rnnkit::train {

void MetricsLog::append(int64_t epoch, int64_t step, double train_loss, const Metrics& m, double lr,
                        double seconds) const {
  const bool fresh = !std::filesystem::exists(path_);
  OutputFile out(path_, /*append=*/true);
  if (fresh) {
    out << "epoch,step,train_loss";
    for (const auto& kv : m.values) out << "," << kv.first;
    out << ",lr,seconds\n";
  }
  out << epoch << "," << step << "," << fmt::format("{:.6f}", train_loss);
  for (const auto& kv : m.values) out << "," << fmt::format("{:.6f}", kv.second);
  out << "," << lr << "," << fmt::format("{:.1f}", seconds) << "\n";
  out.close();
}

void MetricsLog::trim(int64_t epochs_done) const {
  std::ifstream in(path_);
  if (!in) return;
  std::string text, line;
  bool header = true, dropped = false;
  while (std::getline(in, line)) {
    if (!header && std::strtoll(line.c_str(), nullptr, 10) > epochs_done) {
      dropped = true;
      continue;
    }
    header = false;
    text += line + "\n";
  }
  if (dropped) write_text_atomically(path_, text);
}

}  // namespace rnnkit::train
