#include "concurrent_directions.h"

#include "team.h"

#include <array>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <ostream>
#include <thread>

#include <sys/types.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace rnnkit::detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

/// Two long-lived threads, each with `half` intra-op threads, that run the two directions of
/// a layer when the caller's OpenMP team cannot (other than 2 threads, or no OpenMP here).
/// Long-lived because changing a thread's OpenMP thread count on every call (and starting a thread
/// per call) cost more than the concurrency gained on a 2-core machine; the caller's own thread
/// count is never touched. One pool per calling thread, so that two models used from two threads
/// never wait on each other.
class DirectionPool {
 public:
  DirectionPool() {
    for (auto& w : workers_) w.thread = std::thread([this, &w] { loop(w); });
  }
  ~DirectionPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.thread.join();
  }

  /// Runs f0 and f1 on the two workers with this thread's thread-local state (grad mode and the
  /// like) and `half` intra-op threads each; rethrows the first failure. Returns whether a worker
  /// changed its thread count (at::set_num_threads, which also sets the process-wide default).
  bool run(const std::function<void()>& f0, const std::function<void()>& f1, int half) {
    if (::getpid() != pid_) {  // a forked child has no workers
      f0();
      f1();
      return false;
    }
    const at::ThreadLocalState tls;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      workers_[0].task = &f0;
      workers_[1].task = &f1;
      for (auto& w : workers_) w.tls = &tls, w.threads = half, w.error = nullptr;
      pending_ = 2;
    }
    wake_.notify_all();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    const bool changed = changed_;
    changed_ = false;
    for (auto& w : workers_) {
      if (w.error) std::rethrow_exception(w.error);
    }
    return changed;
  }

 private:
  struct Worker {
    std::thread thread;
    const std::function<void()>* task = nullptr;
    const at::ThreadLocalState* tls = nullptr;
    int threads = 0;
    std::exception_ptr error;
  };

  void loop(Worker& w) {
    // ATen sets a new thread's OpenMP count from the global one at its first parallel op; that
    // happens now, so that the count set below stays.
    at::internal::lazy_init_num_threads();
    int current = at::get_num_threads();
    for (;;) {
      const std::function<void()>* task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || w.task != nullptr; });
        if (stop_) return;
        task = w.task;
      }
      // at::set_num_threads also sets the process-wide default for new threads, which run_pair
      // then puts back; this thread's own count stays until the caller's changes.
      bool changed = false;
      try {
        if (w.threads != current) at::set_num_threads(current = w.threads), changed = true;
        at::ThreadLocalStateGuard guard(*w.tls);
        (*task)();
      } catch (...) {
        w.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        w.task = nullptr;
        changed_ = changed_ || changed;
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  std::array<Worker, 2> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  int pending_ = 0;
  bool stop_ = false, changed_ = false;
  const pid_t pid_ = ::getpid();
};

/// Runs f0 and f1 at the same time, each with half of this thread's intra-op threads.
void run_pair(const std::function<void()>& f0, const std::function<void()>& f1) {
  const int threads = at::get_num_threads();
  if (threads == 1) {  // concurrent_directions(true) with one thread: the node, in turn
    f0();
    f1();
    return;
  }
  if (threads == 2 && detail::team_available()) {
    // One thread each: the caller's own intra-op team runs the pair. Two workers of our own
    // would compete with LibTorch's idle OpenMP thread, which spins for a few ms after each
    // parallel op: at the apps' sizes that cost more than the pair gained.
    const at::ThreadLocalState tls;
    auto with_state = [&tls](const std::function<void()>& f) {
      return [&tls, &f] {
        at::ThreadLocalStateGuard guard(tls);
        f();
      };
    };
    detail::run_on_team(with_state(f0), with_state(f1));
    return;
  }
  thread_local DirectionPool pool;
  // A worker that changed its count changed the default for new threads too: put it back.
  if (pool.run(f0, f1, threads / 2)) at::set_num_threads(threads);
}

/// A leaf that shares `t`'s storage and, when `t` needs a gradient, collects it: each
/// direction's graph starts at its own leaves, so that its backward can run on its own.
Tensor leaf(const Tensor& t) {
  if (!t.defined()) return t;
  return t.detach().requires_grad_(t.requires_grad());
}

using OptTensor = c10::optional<Tensor>;
Tensor leaf(const OptTensor& t) { return t.has_value() ? leaf(*t) : Tensor(); }
OptTensor opt(const Tensor& t) { return t.defined() ? OptTensor(t) : c10::nullopt; }

/// The two directions of one bidirectional layer as one autograd node. Forward runs them on
/// two threads, each building its own graph from detached leaves (the input, the initial
/// states); backward runs one torch::autograd::grad per direction, on two threads, over that
/// direction's graph, and returns the gradients of the input (the two directions' summed), of
/// the initial states and of the parameters, which are inputs of the node so that the engine
/// accumulates them as for any other op. Outputs: out_f, out_b, a_f, a_b[, c_f, c_b].
struct ConcurrentDirections : public torch::autograd::Function<ConcurrentDirections> {
  // The initial states are optional: an undefined Tensor cannot be a custom Function's input.
  // params: the forward direction's parameters, then the reverse's (f->layer's come first).
  static variable_list forward(AutogradContext* ctx, const Tensor& h, const OptTensor& a0f,
                               const OptTensor& c0f, const OptTensor& a0b, const OptTensor& c0b,
                               at::TensorList params, Direction* f, Direction* b,
                               const SequenceMask* mask) {
    // h, a0f, c0f, a0b, c0b, and h again: each direction reads the input through its own leaf.
    const std::vector<Tensor> leaves{leaf(h), leaf(a0f), leaf(c0f), leaf(a0b), leaf(c0b), leaf(h)};
    RecurrentOutput rf, rb;
    run_pair(
        [&] {
          torch::AutoGradMode grad(true);  // Function::forward runs without it
          rf = f->layer->forward_time_major(leaves[0], *mask, State{leaves[1], leaves[2]}, f->drop);
        },
        [&] {
          torch::AutoGradMode grad(true);
          rb = b->layer->forward_time_major(leaves[5], *mask, State{leaves[3], leaves[4]}, b->drop);
        });
    const bool memory = rf.state.c.defined();
    std::vector<Tensor> roots_f{rf.output, rf.state.a}, roots_b{rb.output, rb.state.a};
    if (memory) roots_f.push_back(rf.state.c), roots_b.push_back(rb.state.c);
    ctx->saved_data["roots_f"] = roots_f;
    ctx->saved_data["roots_b"] = roots_b;
    ctx->saved_data["leaves"] = leaves;
    ctx->saved_data["params"] = params.vec();
    ctx->saved_data["params_f"] = static_cast<int64_t>(f->layer->parameters().size());
    // New tensors sharing the results' storage; this node is their history.
    variable_list out{rf.output.detach(), rb.output.detach(), rf.state.a.detach(),
                      rb.state.a.detach()};
    if (memory) out.push_back(rf.state.c.detach()), out.push_back(rb.state.c.detach());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "rnnkit::RNN: a second derivative (create_graph=true) through concurrent "
                "directions is not supported; set RNNOptions::concurrent_directions(false)");
    const auto roots_f = ctx->saved_data["roots_f"].toTensorVector();
    const auto roots_b = ctx->saved_data["roots_b"].toTensorVector();
    const auto leaves = ctx->saved_data["leaves"].toTensorVector();
    const auto params = ctx->saved_data["params"].toTensorVector();
    const size_t params_f = static_cast<size_t>(ctx->saved_data["params_f"].toInt());

    // One direction's work: its roots with their incoming gradients (grads holds out_f, out_b,
    // a_f, a_b[, c_f, c_b]), and the tensors whose gradients it returns (positions into
    // `all`, which is the node's tensor inputs in order: h, a0f, c0f, a0b, c0b, params...).
    struct Work {
      std::vector<Tensor> roots, grads, inputs;
      std::vector<size_t> at;
      variable_list result;
    };
    auto plan = [&](const std::vector<Tensor>& roots, int d, std::vector<size_t> leaf_at, size_t p0,
                    size_t p1) {
      Work w;
      for (size_t k = 0; k < roots.size(); ++k) {
        const Tensor& g = grads[2 * k + d];
        if (g.defined() && roots[k].requires_grad())
          w.roots.push_back(roots[k]), w.grads.push_back(g);
      }
      auto add = [&](const Tensor& t, size_t at) {
        if (t.defined() && t.requires_grad()) w.inputs.push_back(t), w.at.push_back(at);
      };
      // leaf_at: which leaves this direction reads (leaf 5, the reverse's h, counts as input 0).
      for (size_t i : leaf_at) add(leaves[i], i == 5 ? 0 : i);
      for (size_t i = p0; i < p1; ++i) add(params[i], 5 + i);
      return w;
    };
    Work wf = plan(roots_f, 0, {0, 1, 2}, 0, params_f);
    Work wb = plan(roots_b, 1, {5, 3, 4}, params_f, params.size());
    auto run = [](Work& w) {
      if (w.roots.empty() || w.inputs.empty()) return;
      // retain_graph: the inner graphs live as long as this node, which is what lets a retained
      // outer graph run backward again; peak memory is the forward pass's either way.
      w.result = torch::autograd::grad(w.roots, w.inputs, w.grads, /*retain_graph=*/true,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    };
    run_pair([&] { run(wf); }, [&] { run(wb); });

    // The node's inputs: h, a0f, c0f, a0b, c0b, every parameter, then f, b and mask.
    variable_list out(5 + params.size() + 3);
    for (const Work* w : {&wf, &wb}) {
      for (size_t k = 0; k < w->result.size(); ++k) {
        const Tensor& g = w->result[k];
        if (!g.defined()) continue;
        Tensor& slot = out[w->at[k]];
        slot = slot.defined() ? slot + g : g;  // only h is read by both directions
      }
    }
    return out;
  }
};

}  // namespace

/// Both directions of a layer at once, on the input h (time-major).
std::pair<RecurrentOutput, RecurrentOutput> run_concurrently(Direction f, Direction b,
                                                             const Tensor& h,
                                                             const SequenceMask& mask) {
  // Without grad mode (inference) there is no graph to build, so no node either.
  if (!torch::GradMode::is_enabled()) {
    RecurrentOutput rf, rb;
    run_pair([&] { rf = f.layer->forward_time_major(h, mask, f.initial, f.drop); },
             [&] { rb = b.layer->forward_time_major(h, mask, b.initial, b.drop); });
    return {rf, rb};
  }
  std::vector<Tensor> params = f.layer->parameters();
  for (const auto& p : b.layer->parameters()) params.push_back(p);
  const auto out =
      ConcurrentDirections::apply(h, opt(f.initial.a), opt(f.initial.c), opt(b.initial.a),
                                  opt(b.initial.c), at::TensorList(params), &f, &b, &mask);
  const bool memory = out.size() == 6;
  return {RecurrentOutput{out[0], State{out[2], memory ? out[4] : Tensor()}},
          RecurrentOutput{out[1], State{out[3], memory ? out[5] : Tensor()}}};
}

}  // namespace rnnkit::detail
