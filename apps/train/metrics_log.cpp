#include <rnnkit/train/metrics_log.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include <rnnkit/train/system.h>

namespace rnnkit::train {
namespace {

/// Rewrites a metrics.csv whose header is `header` minus the precision column (a run begun
/// before it existed, resumed since) with an empty precision cell in each earlier row.
void add_precision_column(const std::string& path, const std::string& header) {
  const std::string before_seconds = ",lr,seconds";
  std::ifstream in(path);
  std::string first;
  if (!std::getline(in, first) || first + "\n" == header) return;
  const auto at = first.rfind(before_seconds);
  if (at == std::string::npos || at + before_seconds.size() != first.size() ||
      first.substr(0, at) + ",lr,precision,seconds\n" != header) {
    return;  // another layout: rows are appended as they are
  }
  std::string text = header;
  for (std::string line; std::getline(in, line);) {
    const auto last = line.rfind(',');
    if (last == std::string::npos) {
      text += line + "\n";
      continue;
    }
    text += line.substr(0, last) + "," + line.substr(last) + "\n";
  }
  in.close();
  write_text_atomically(path, text);
}

}  // namespace

void MetricsLog::append(int64_t epoch, int64_t step, double train_loss, const Metrics& m, double lr,
                        const std::string& precision, double seconds) const {
  std::string header = "epoch,step,train_loss";
  for (const auto& kv : m.values) header += "," + kv.first;
  header += ",lr,precision,seconds\n";
  std::error_code ec;
  const bool fresh = !std::filesystem::exists(path_) || std::filesystem::file_size(path_, ec) == 0;
  if (!fresh) add_precision_column(path_, header);
  OutputFile out(path_, /*append=*/true);
  if (fresh) out << header;
  out << epoch << "," << step << "," << fmt::format("{:.6f}", train_loss);
  for (const auto& kv : m.values) out << "," << fmt::format("{:.6f}", kv.second);
  out << "," << lr << "," << precision << "," << fmt::format("{:.1f}", seconds) << "\n";
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

std::optional<std::vector<std::pair<std::string, std::string>>> MetricsLog::row(
    int64_t epoch) const {
  std::ifstream in(path_);
  std::string header, line, cell;
  if (!std::getline(in, header)) return std::nullopt;
  std::vector<std::string> names;
  for (std::istringstream hs(header); std::getline(hs, cell, ',');) names.push_back(cell);
  std::optional<std::vector<std::pair<std::string, std::string>>> found;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    for (std::istringstream ls(line); std::getline(ls, cell, ',');) cells.push_back(cell);
    if (cells.empty() || cells[0] != std::to_string(epoch)) continue;
    found.emplace();
    for (size_t i = 0; i < cells.size() && i < names.size(); ++i) {
      found->emplace_back(names[i], cells[i]);
    }
  }
  return found;
}

}  // namespace rnnkit::train
