#pragma once
// rnnkit-serve's model workers: dynamic batching for taggers, classifiers and translators
// (Batcher), and continuous batching of generations (Generations). Each is one thread per model
// on the Worker base, which owns the thread, its lock, its wake-up and its stop flag.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <rnnkit/precision.h>
#include <rnnkit/state.h>
#include <rnnkit/train/json.h>

#include "lm/lm.h"

namespace rnnkit::serve {

/// One model's thread. A derived class (final) calls start_thread() last in its constructor and
/// stop_thread() first in its destructor, so that loop() never sees it half built or half
/// destroyed.
class Worker {
 public:
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

 protected:
  Worker() = default;
  virtual ~Worker() = default;
  void start_thread() {
    thread_ = std::thread([this] { loop(); });
  }
  /// Sets stopping_, wakes loop() and waits for it to return.
  void stop_thread();
  /// Runs until stopping_ is set and nothing is left to do.
  virtual void loop() = 0;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;

 private:
  std::thread thread_;
};

/// One queue per model: a batch takes up to max_batch items, waiting at most max_delay after the
/// first; a request with more items than that is split over batches and reassembled in order.
/// A batch takes the waiting requests' items in turn, one each, so that a request of many texts
/// shares the batches with the requests that came after it instead of holding them all.
/// The queue holds at most `capacity` items: past it, 503. A request not answered within
/// `deadline_s` seconds (0: none) gets 504, and its items still waiting leave the queue.
class Batcher final : public Worker {
 public:
  using Json = train::Json;
  using Fn = std::function<std::vector<Json>(const std::vector<Json>&)>;
  Batcher(Fn fn, int64_t max_batch, int64_t max_delay_ms, int64_t capacity,
          std::function<void(size_t)> on_batch, double deadline_s = 0);
  ~Batcher() override { stop_thread(); }
  /// The results of `items`, in order; HttpError 503 when the queue is full, 413 when it could
  /// never hold them, 504 past the deadline.
  std::vector<Json> submit(std::vector<Json> items);
  /// Items waiting for a batch.
  size_t depth() const;
  /// The drain ran out: every request not yet answered (waiting, or in the batch now running)
  /// gets HttpError 503 `why` at once, and so does every later submit().
  void abandon(const std::string& why);

 private:
  struct Job;
  using Origin = std::pair<std::shared_ptr<Job>, size_t>;  // a batch item's request and index
  void loop() override;
  void retry_alone(const std::vector<Json>& batch, const std::vector<Origin>& from,
                   std::vector<Json>& out, std::vector<std::exception_ptr>& errors);

  Fn fn_;
  size_t max_batch_;
  std::chrono::milliseconds max_delay_;
  size_t capacity_;
  std::function<void(size_t)> on_batch_;
  double deadline_s_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::shared_ptr<Job>> running_;  // the jobs of the batch being run
  size_t waiting_ = 0, last_batch_ = 0;
  std::string abandoned_;  // why, once abandon() was called
};

/// One thread per language model steps every active generation in one forward pass ([1, N]
/// tokens, the generations' states side by side), as llama.cpp's parallel slots do: a new one
/// joins between steps (after its prompt's own pass), a finished or abandoned one leaves. Each
/// draws from its own lm::Sampler, so it gives the text rnnkit-lm sample gives for its seed,
/// alone or batched. The HTTP threads read each generation's tokens from its own queue: a slow
/// client never holds up the others.
class Generations final : public Worker {
 public:
  struct Event {
    std::string piece;
    double logprob = 0;
  };
  /// One generation: the worker writes its events, one HTTP thread reads them.
  class Stream {
   public:
    Stream(const lm::Loaded& m, lm::SampleOptions o) : sampler(m, std::move(o)) {}
    /// The next token's event; false once the generation has ended (rethrowing its error).
    bool wait(Event& e);
    /// As wait(), but gives up after `timeout`: 1 an event, 0 the end, -1 no event yet.
    int wait_for(Event& e, std::chrono::milliseconds timeout);
    std::atomic<bool> cancelled{false};  ///< the client went away

   private:
    friend class Generations;
    void push(Event e);
    void finish(std::exception_ptr error);
    int take(Event& e);  // with mutex held: 1 an event, 0 the end (rethrowing its error)

    lm::Sampler sampler;  // the generation thread's alone
    std::vector<State> states;
    torch::Tensor logits;
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<Event> events;
    bool finished = false;
    std::exception_ptr error;
  };

  Generations(lm::Loaded& m, torch::Device device, Precision precision, int64_t max_streams,
              int64_t capacity, std::function<void(size_t)> on_step,
              std::function<void(uint64_t)> on_tokens);
  ~Generations() override { stop_thread(); }
  /// A new generation; HttpError 503 when `capacity` generations are waiting or running.
  std::shared_ptr<Stream> start(lm::SampleOptions o);
  /// Generations waiting to join.
  size_t depth() const;
  /// The drain ran out: every generation waiting or running ends with HttpError 503 `why`
  /// (before its next token), and so does every later start().
  void abandon(const std::string& why);

 private:
  void loop() override;
  /// One forward pass for every active generation: [1, N] tokens, each layer's states side by
  /// side.
  void step(const std::vector<std::shared_ptr<Stream>>& active);

  lm::Loaded& m_;
  torch::Device device_;
  Precision precision_;
  size_t max_streams_, capacity_;
  std::function<void(size_t)> on_step_;
  std::function<void(uint64_t)> on_tokens_;
  std::deque<std::shared_ptr<Stream>> pending_;
  size_t running_ = 0;
  std::string abandoned_;  // why, once abandon() was called
};

}  // namespace rnnkit::serve
