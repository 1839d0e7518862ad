#pragma once
// Dynamic batching for rnnkit-serve's taggers, classifiers and translators.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <rnnkit/train/json.h>

#include "request.h"

namespace rnnkit::serve {

/// One queue and one thread per model: a batch takes up to max_batch items, waiting at most
/// max_delay after the first; a request with more items than that is split over batches and
/// reassembled in order. The queue holds at most `capacity` items: past it, 503.
class Batcher {
 public:
  using Json = train::Json;
  using Fn = std::function<std::vector<Json>(const std::vector<Json>&)>;
  Batcher(Fn fn, int64_t max_batch, int64_t max_delay_ms, int64_t capacity,
          std::function<void(size_t)> on_batch)
      : fn_(std::move(fn)),
        max_batch_(static_cast<size_t>(max_batch)),
        max_delay_(max_delay_ms),
        capacity_(static_cast<size_t>(capacity)),
        on_batch_(std::move(on_batch)),
        thread_([this] { loop(); }) {}
  ~Batcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  /// The results of `items`, in order; HttpError 503 when the queue is full.
  std::vector<Json> submit(std::vector<Json> items) {
    auto job = std::make_shared<Job>();
    job->results.resize(items.size());
    job->items = std::move(items);
    auto done = job->promise.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (job->items.size() > capacity_) {  // it can never fit: retrying does not help
        throw HttpError(413, fmt::format("the request holds {} texts, more than the model's "
                                         "queue holds (at most {}; --queue)",
                                         job->items.size(), capacity_));
      }
      if (waiting_ + job->items.size() > capacity_) {
        throw HttpError(503, fmt::format("the model's queue is full ({} texts waiting, at most {}; "
                                         "--queue); retry later",
                                         waiting_, capacity_));
      }
      waiting_ += job->items.size();
      queue_.push_back(job);
    }
    cv_.notify_all();
    done.get();
    if (job->error) std::rethrow_exception(job->error);
    return std::move(job->results);
  }
  size_t depth() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return waiting_;
  }

 private:
  struct Job {
    std::vector<Json> items, results;
    size_t next = 0, done = 0;
    std::exception_ptr error;
    std::promise<void> promise;
  };

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      // Under load the queue fills while the previous batch runs; a short wait for more texts
      // pays only when requests come in together (the last batch held more than one). A lone
      // request runs at once.
      if (last_batch_ > 1) {
        const auto deadline = std::chrono::steady_clock::now() + max_delay_;
        cv_.wait_until(lock, deadline, [&] { return stopping_ || waiting_ >= max_batch_; });
      }
      std::vector<Json> batch;
      std::vector<std::pair<std::shared_ptr<Job>, size_t>> from;
      while (!queue_.empty() && batch.size() < max_batch_) {
        auto job = queue_.front();
        while (job->next < job->items.size() && batch.size() < max_batch_) {
          batch.push_back(job->items[job->next]);
          from.emplace_back(job, job->next++);
          --waiting_;
        }
        if (job->next == job->items.size()) queue_.pop_front();
      }
      lock.unlock();
      std::vector<Json> out;
      std::exception_ptr error;
      try {
        out = fn_(batch);
      } catch (...) {
        error = std::current_exception();
      }
      on_batch_(batch.size());
      std::vector<std::exception_ptr> errors(batch.size(), error);
      if (error) retry_alone(batch, from, out, errors);
      lock.lock();
      last_batch_ = batch.size();
      for (size_t i = 0; i < from.size(); ++i) {
        auto& [job, k] = from[i];
        if (errors[i]) {
          if (!job->error) job->error = errors[i];
        } else {
          job->results[k] = std::move(out[i]);
        }
        if (++job->done == job->items.size()) job->promise.set_value();
      }
    }
  }

  /// A batch failed: each request's share of it runs again on its own, so that the request
  /// that caused the failure fails and the ones batched with it do not.
  void retry_alone(const std::vector<Json>& batch,
                   const std::vector<std::pair<std::shared_ptr<Job>, size_t>>& from,
                   std::vector<Json>& out, std::vector<std::exception_ptr>& errors) {
    out.assign(batch.size(), Json());
    std::vector<Job*> order;
    for (const auto& [job, k] : from) {
      if (std::find(order.begin(), order.end(), job.get()) == order.end())
        order.push_back(job.get());
    }
    if (order.size() < 2) return;  // one request: its own failure
    for (Job* job : order) {
      std::vector<size_t> at;
      std::vector<Json> share;
      for (size_t i = 0; i < from.size(); ++i) {
        if (from[i].first.get() == job) at.push_back(i), share.push_back(batch[i]);
      }
      try {
        auto r = fn_(share);
        for (size_t j = 0; j < at.size(); ++j) {
          out[at[j]] = std::move(r[j]);
          errors[at[j]] = nullptr;
        }
      } catch (...) {
        for (size_t i : at) errors[i] = std::current_exception();
      }
      on_batch_(share.size());
    }
  }

  Fn fn_;
  size_t max_batch_;
  std::chrono::milliseconds max_delay_;
  size_t capacity_;
  std::function<void(size_t)> on_batch_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  size_t waiting_ = 0, last_batch_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // last: it starts once everything above is ready
};

}  // namespace rnnkit::serve
