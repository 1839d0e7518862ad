#pragma once
// Data-parallel training on PyTorch's own engine: c10d's TCPStore for the rendezvous,
// ProcessGroupGloo on the CPU and ProcessGroupNCCL on CUDA (when the LibTorch build has it),
// started by torchrun. This is the process-wide default group, as torch.distributed has one:
// init_from_env() reads what torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT); without those variables every function here is a no-op for one process.
//
// Every collective failure (a rank that died, was killed or hangs past the timeout) becomes a
// DistributedError that names the lost rank, found from the heartbeats each rank keeps in the
// store: the survivors exit instead of waiting forever.
#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/types.h>

#include "dist_options.h"

namespace rnnkit::train::dist {

class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What torchrun's environment says; `present` is false when WORLD_SIZE is not set. Throws
/// DistributedError for an inconsistent environment (WORLD_SIZE without RANK, RANK out of
/// range, no MASTER_ADDR/MASTER_PORT, non-numeric values).
struct Env {
  bool present = false;
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  static Env read();
};

/// Joins the process group torchrun describes (a no-op for one process). `device` is the
/// training device (it picks the backend's default). Throws DistributedError naming the master
/// address when the rendezvous cannot be reached within the timeout.
void init_from_env(const Options& options, const torch::Device& device);
/// Every rank has learnt of a stop signal and stops together: from now on waits for peers are
/// the stop's own (rank 0 writing last.pt) and a pending signal no longer cuts them short.
/// Before that, a wait for peers that a stop signal interrupts ends the process within 2 s
/// (exit status 128 + signal, a line naming the wait), and the rendezvous as a whole gives up
/// after the timeout.
void stop_agreed();
/// Leaves the group (also at exit).
void shutdown();

bool enabled();    ///< a process group of more than one process is up
int rank();        ///< 0 without a group
int world_size();  ///< 1 without a group
inline bool is_rank0() { return rank() == 0; }

/// In-place collectives over the default group; no-ops for one process.
void broadcast_(std::vector<torch::Tensor>& tensors, int root = 0);
void all_reduce_sum_(torch::Tensor& tensor);
/// Gathers one equally shaped tensor from every rank, in rank order.
std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor);
/// Rank `root`'s string, on every rank.
std::string broadcast_string(const std::string& s, int root = 0);

/// Every parameter and buffer of rank 0's model, copied to the others.
void broadcast_module(const std::vector<torch::Tensor>& tensors);
/// Sums the gradients of `params` over the ranks, in flattened buckets of about `bucket_bytes`
/// (one all-reduce per bucket, as DDP does), and divides by the world size. A missing gradient
/// counts as zeros.
void average_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes = 25 << 20);

/// Runs `fn` on rank 0 only and makes its failure everyone's: the other ranks throw the same
/// message (prefixed with "rank 0: "), so that no rank waits for one that has given up.
void on_rank0(const std::function<void()>& fn);

}  // namespace rnnkit::train::dist
