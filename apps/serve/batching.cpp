#include "batching.h"

#include <algorithm>

#include <fmt/core.h>
#include <torch/torch.h>

#include "request.h"

namespace rnnkit::serve {

void Worker::stop_thread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

// ---------------------------------------------------------------------------------------------
// Batcher

struct Batcher::Job {
  std::vector<Json> items, results;
  size_t next = 0, done = 0;
  std::exception_ptr error;
  bool answered = false;  // the promise is set; the worker no longer touches the job
  std::promise<void> promise;

  void answer() {
    answered = true;
    promise.set_value();
  }
};

Batcher::Batcher(Fn fn, int64_t max_batch, int64_t max_delay_ms, int64_t capacity,
                 std::function<void(size_t)> on_batch, double deadline_s)
    : fn_(std::move(fn)),
      max_batch_(static_cast<size_t>(max_batch)),
      max_delay_(max_delay_ms),
      capacity_(static_cast<size_t>(capacity)),
      on_batch_(std::move(on_batch)),
      deadline_s_(deadline_s) {
  start_thread();
}

std::vector<Batcher::Json> Batcher::submit(std::vector<Json> items) {
  auto job = std::make_shared<Job>();
  job->results.resize(items.size());
  job->items = std::move(items);
  auto done = job->promise.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!abandoned_.empty()) throw HttpError(503, abandoned_);
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
  if (deadline_s_ > 0 &&
      done.wait_for(std::chrono::duration<double>(deadline_s_)) != std::future_status::ready) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!job->answered) {
      // Its items still waiting leave the queue; a batch holding some of them runs to its end
      // and its results for this request are dropped (answered: the worker skips the job).
      const auto at = std::find(queue_.begin(), queue_.end(), job);
      if (at != queue_.end()) {
        waiting_ -= job->items.size() - job->next;
        queue_.erase(at);
      }
      job->answered = true;
      throw HttpError(504, fmt::format("the request was not done within {:g} s "
                                       "(--max-request-seconds): send fewer or shorter texts "
                                       "(or, to translate, a smaller beam)",
                                       deadline_s_));
    }
  }
  done.get();
  if (job->error) std::rethrow_exception(job->error);
  return std::move(job->results);
}

size_t Batcher::depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_;
}

void Batcher::abandon(const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  abandoned_ = why;
  auto refuse = [&](Job& job) {
    if (job.answered) return;
    job.error = std::make_exception_ptr(HttpError(503, why));
    job.answer();
  };
  for (auto& job : queue_) refuse(*job);
  for (auto& job : running_) refuse(*job);
  queue_.clear();
  waiting_ = 0;
}

void Batcher::loop() {
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
    std::vector<Origin> from;
    // The waiting requests in turn, one item each: eight long translations once held the
    // batcher for minutes while a one-text request waited behind them.
    while (!queue_.empty() && batch.size() < max_batch_) {
      for (auto it = queue_.begin(); it != queue_.end() && batch.size() < max_batch_;) {
        const auto job = *it;
        batch.push_back(job->items[job->next]);
        from.emplace_back(job, job->next++);
        --waiting_;
        if (std::find(running_.begin(), running_.end(), job) == running_.end()) {
          running_.push_back(job);
        }
        it = job->next == job->items.size() ? queue_.erase(it) : std::next(it);
      }
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
    running_.clear();
    for (size_t i = 0; i < from.size(); ++i) {
      auto& [job, k] = from[i];
      if (job->answered) continue;  // abandoned: its request has its 503
      if (errors[i]) {
        if (!job->error) job->error = errors[i];
      } else {
        job->results[k] = std::move(out[i]);
      }
      if (++job->done == job->items.size()) job->answer();
    }
  }
}

/// A batch failed: each request's share of it runs again on its own, so that the request that
/// caused the failure fails and the ones batched with it do not.
void Batcher::retry_alone(const std::vector<Json>& batch, const std::vector<Origin>& from,
                          std::vector<Json>& out, std::vector<std::exception_ptr>& errors) {
  out.assign(batch.size(), Json());
  std::vector<Job*> order;
  for (const auto& [job, k] : from) {
    if (std::find(order.begin(), order.end(), job.get()) == order.end()) order.push_back(job.get());
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

// ---------------------------------------------------------------------------------------------
// Generations

int Generations::Stream::take(Event& e) {
  if (events.empty()) {
    if (error) std::rethrow_exception(error);
    return 0;
  }
  e = std::move(events.front());
  events.pop_front();
  return 1;
}

bool Generations::Stream::wait(Event& e) {
  std::unique_lock<std::mutex> lock(mutex);
  cv.wait(lock, [&] { return !events.empty() || finished; });
  return take(e) == 1;
}

int Generations::Stream::wait_for(Event& e, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex);
  if (!cv.wait_for(lock, timeout, [&] { return !events.empty() || finished; })) return -1;
  return take(e);
}

void Generations::Stream::push(Event e) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    events.push_back(std::move(e));
  }
  cv.notify_all();
}

void Generations::Stream::finish(std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    finished = true;
    error = std::move(e);
  }
  cv.notify_all();
}

Generations::Generations(lm::Loaded& m, torch::Device device, Precision precision,
                         int64_t max_streams, int64_t capacity, std::function<void(size_t)> on_step,
                         std::function<void(uint64_t)> on_tokens)
    : m_(m),
      device_(device),
      precision_(precision),
      max_streams_(static_cast<size_t>(max_streams)),
      capacity_(static_cast<size_t>(capacity)),
      on_step_(std::move(on_step)),
      on_tokens_(std::move(on_tokens)) {
  start_thread();
}

std::shared_ptr<Generations::Stream> Generations::start(lm::SampleOptions o) {
  auto s = std::make_shared<Stream>(m_, std::move(o));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!abandoned_.empty()) throw HttpError(503, abandoned_);
    if (pending_.size() + running_ >= capacity_) {
      throw HttpError(503, fmt::format("the model is busy ({} generations waiting or running, at "
                                       "most {}; --queue); retry later",
                                       pending_.size() + running_, capacity_));
    }
    pending_.push_back(s);
  }
  cv_.notify_all();
  return s;
}

size_t Generations::depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_.size();
}

void Generations::abandon(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    abandoned_ = why;
    for (auto& s : pending_) s->finish(std::make_exception_ptr(HttpError(503, why)));
    pending_.clear();
  }
  cv_.notify_all();  // the running ones end in loop(), which owns them
}

void Generations::loop() {
  const AutocastGuard autocast(precision_, device_.type());  // this thread's forward passes
  std::vector<std::shared_ptr<Stream>> active;
  for (;;) {
    std::vector<std::shared_ptr<Stream>> joining;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !pending_.empty() || !active.empty(); });
      if (stopping_ && pending_.empty() && active.empty()) return;
      if (!abandoned_.empty()) {
        for (auto& s : active) s->finish(std::make_exception_ptr(HttpError(503, abandoned_)));
        active.clear();
      }
      while (!pending_.empty() && active.size() + joining.size() < max_streams_) {
        joining.push_back(pending_.front());
        pending_.pop_front();
      }
      running_ = active.size() + joining.size();
    }
    c10::InferenceMode guard;
    for (auto& s : joining) {  // the prompt: its own pass, as sample() feeds it
      try {
        const auto& ids = s->sampler.prompt_ids();
        auto x = torch::tensor(ids, torch::kLong).view({-1, 1}).to(device_);
        auto out = m_.model->forward(x, {});
        s->states = std::move(out.states);
        s->logits = out.logits[-1][0];
        active.push_back(s);
      } catch (...) {
        s->finish(std::current_exception());
      }
    }
    // Each draws its next token; the ones that go on make the next batch.
    std::vector<std::shared_ptr<Stream>> going;
    uint64_t drawn = 0;
    for (auto& s : active) {
      try {
        if (!s->cancelled && s->sampler.next(s->logits)) {
          s->push({s->sampler.piece(), s->sampler.logprob()});
          ++drawn;
          going.push_back(s);
        } else {
          s->finish(nullptr);
        }
      } catch (...) {
        s->finish(std::current_exception());
      }
    }
    on_tokens_(drawn);
    active = std::move(going);
    if (active.empty()) continue;
    try {
      step(active);
    } catch (...) {
      for (auto& s : active) s->finish(std::current_exception());
      active.clear();
    }
  }
}

void Generations::step(const std::vector<std::shared_ptr<Stream>>& active) {
  std::vector<int64_t> last;
  for (const auto& s : active) last.push_back(s->sampler.last_token());
  const auto x = torch::tensor(last, torch::kLong).view({1, -1}).to(device_);  // [1, N]
  std::vector<State> states(active.front()->states.size());
  for (size_t l = 0; l < states.size(); ++l) {
    std::vector<torch::Tensor> a, c;
    for (const auto& s : active) {
      a.push_back(s->states[l].a);
      if (s->states[l].c.defined()) c.push_back(s->states[l].c);
    }
    states[l].a = torch::cat(a, 0);  // [N, H]
    if (!c.empty()) states[l].c = torch::cat(c, 0);
  }
  auto out = m_.model->forward(x, states);
  for (size_t i = 0; i < active.size(); ++i) {
    const auto b = static_cast<int64_t>(i);
    active[i]->logits = out.logits[0][b];
    for (size_t l = 0; l < states.size(); ++l) {
      const auto& st = out.states[l];
      active[i]->states[l] = {st.a.narrow(0, b, 1),
                              st.c.defined() ? st.c.narrow(0, b, 1) : torch::Tensor()};
    }
  }
  on_step_(active.size());
}

}  // namespace rnnkit::serve
