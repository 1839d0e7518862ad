// The training framework's two seams: the Scheduler's decisions from what the loop reports, and
// a StepStrategy of one's own passed to fit() (a task never sees how steps are shared).
#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/scheduler.h>
#include <rnnkit/train/step_strategy.h>

#include "test_train_util.h"

using namespace rnnkit;
using rnnkit_test::expect_message;
using rnnkit_test::quiet_run;
using rnnkit_test::temp_dir;

namespace {

train::Metrics loss_of(double v) { return {{{"val_loss", v}}, "val_loss", false}; }

}  // namespace

TEST(Scheduler, BestEarlyStoppingAndPlateauFollowTheReportedEpochs) {
  train::TrainOptions o;
  o.schedule = "plateau";
  o.plateau_patience = 1;
  o.gamma = 0.5;
  o.early_stopping = 3;
  train::Scheduler s(o, 0);
  double lr = 1.0;
  const std::vector<double> losses = {2.0, 1.5, 1.6, 1.7, 1.8};
  std::vector<bool> best;
  std::vector<double> rates;
  bool stopped = false;
  for (size_t e = 0; e < losses.size() && !stopped; ++e) {
    best.push_back(s.is_new_best(loss_of(losses[e])));
    const auto end = s.after_epoch(static_cast<int64_t>(e), loss_of(losses[e]), lr, false);
    lr = end.rate;
    rates.push_back(lr);
    stopped = end.stop;
    if (stopped) {
      EXPECT_EQ(end.why, "early stopping: 3 epochs without improvement");
    }
  }
  EXPECT_EQ(best, (std::vector<bool>{true, true, false, false, false}));
  // Patience 1: the second epoch without a gain halves the rate, and the count starts again.
  EXPECT_EQ(rates, (std::vector<double>{1.0, 1.0, 1.0, 0.5, 0.5}));
  EXPECT_TRUE(stopped);
  EXPECT_TRUE(s.stopped_early());
  EXPECT_DOUBLE_EQ(s.best(), 1.5);
  EXPECT_EQ(s.best_metrics(), "val_loss 1.5000");
}

TEST(Scheduler, StepsGoOnStopOrRunOutOfTimeAndANonFiniteLossDiverges) {
  train::TrainOptions o;
  o.max_minutes = 1;
  train::Scheduler s(o, /*max_steps=*/5);
  train::StepReport ok;
  ok.loss_sum = 2.0;
  ok.count = 4;
  const train::Position early{0, 1, 10, 1, 1}, last{0, 4, 10, 4, 4};
  EXPECT_EQ(s.after_step(ok, early, ""), train::Scheduler::Next::kGoOn);
  EXPECT_EQ(s.after_step(ok, last, ""), train::Scheduler::Next::kStop) << "the 5th step of 5";
  train::StepReport signalled = ok;
  signalled.signal = 15;
  EXPECT_EQ(s.after_step(signalled, early, ""), train::Scheduler::Next::kStop);
  train::StepReport late = ok;
  late.time_up = true;
  EXPECT_EQ(s.after_step(late, early, ""), train::Scheduler::Next::kTimeUp);
  EXPECT_FALSE(s.out_of_time(59.9));
  EXPECT_TRUE(s.out_of_time(60.0));

  train::StepReport bad = ok;
  bad.loss_sum = std::numeric_limits<double>::infinity();
  bad.nonfinite = true;
  expect_message<train::TrainingDiverged>(
      [&] { s.after_step(bad, early, "runs/x"); },
      {"the loss is inf at step 2 (epoch 1, batch 2)", "kept in runs/x",
       "try clip_norm or a lower learning_rate"});
  bad.gathered = true;
  expect_message<train::TrainingDiverged>([&] { s.after_step(bad, early, ""); },
                                          {"the loss is not finite", "no checkpoint was written"});
}

TEST(Scheduler, CosineSetsTheRateBeforeEveryStepByPositionAlone) {
  train::TrainOptions o;
  o.schedule = "cosine";
  o.epochs = 2;
  o.learning_rate = 1.0;
  o.min_lr = 0.0;
  const train::Scheduler s(o, 0);
  EXPECT_DOUBLE_EQ(s.rate_before_step({0, 0, 4, 0, 0}), 1.0);
  EXPECT_NEAR(s.rate_before_step({1, 0, 4, 4, 4}), 0.5, 1e-12);  // halfway
  EXPECT_NEAR(s.rate_before_step({1, 2, 4, 6, 6}), train::cosine_learning_rate(1, 0, 0.75), 1e-15);
  o.schedule = "none";
  EXPECT_LT(train::Scheduler(o, 0).rate_before_step({0, 0, 4, 0, 0}), 0) << "not set per step";
}

namespace {

/// A task with state that each shard holds a slice of (as an LM's carried state), which it only
/// describes: it never gathers, narrows by rank, or knows the world size.
class ShardedTask : public train::Task {
 public:
  ShardedTask() : lin_(torch::nn::Linear(2, 1)) {}
  torch::nn::Module& model() override { return *lin_; }
  std::string app_name() const override { return "fake"; }
  std::string architecture() const override { return "linear"; }
  int64_t begin_epoch(int64_t) override { return 3; }
  train::BatchLoss train_batch(int64_t) override {
    ++batches;
    return {lin_->forward(torch::ones({2, 2})).pow(2).mean(), 2};
  }
  train::Metrics evaluate() override {
    return loss_of(lin_->forward(torch::ones({1, 2})).pow(2).item<double>());
  }
  std::vector<std::pair<std::string, torch::Tensor>> sharded_state() const override {
    // This shard's two rows of the carried state: the rank's number, twice.
    return {{"carried", torch::full({2, 3}, static_cast<double>(shard().rank))}};
  }
  int batches = 0;

 private:
  torch::nn::Linear lin_;
};

/// A strategy of one's own: one process that plays shard 1 of 2, whose "gather" adds shard 0's
/// rows. It delegates the step itself to single_process().
class PretendSecondShard : public train::StepStrategy {
 public:
  struct Counts {
    int steps = 0, gathers = 0;
  };
  /// `counts` outlives the strategy, which fit() owns and destroys.
  explicit PretendSecondShard(Counts& counts) : counts_(counts) {}
  train::Shard shard() const override { return {1, 2}; }
  void agree_on_config(const std::string&) override {}
  std::string from_first(const std::string& s) override { return s; }
  void on_first(const std::function<void()>& fn) override { fn(); }
  void synchronize(torch::nn::Module&) override {}
  train::StepReport forward_backward(train::Task& task, int64_t index,
                                     const std::function<bool()>& out_of_time,
                                     const std::vector<torch::Tensor>& params) override {
    ++counts_.steps;
    return one_->forward_backward(task, index, out_of_time, params);
  }
  train::Metrics agree_on(train::Metrics m) override { return m; }
  std::vector<torch::Tensor> gather(const torch::Tensor& t) override {
    ++counts_.gathers;
    return {torch::zeros_like(t), t};
  }

 private:
  Counts& counts_;
  std::unique_ptr<train::StepStrategy> one_ = train::single_process();
};

}  // namespace

TEST(StepStrategy, FitUsesTheStrategyItIsGivenAndGathersTheTasksShardedState) {
  const std::string dir = temp_dir("strategy");
  train::TrainOptions o;
  o.epochs = 2;
  o.batch_size = 4;
  ShardedTask task;
  PretendSecondShard::Counts seen;
  auto strategy = std::make_unique<PretendSecondShard>(seen);
  const auto r =
      train::fit(task, o, quiet_run(dir + "/run"), "[train]\nepochs = 2\n", std::move(strategy));
  EXPECT_EQ(r.steps, 6);
  EXPECT_EQ(seen.steps, 6) << "every step went through the strategy";
  EXPECT_EQ(task.shard().rank, 1) << "the task was handed the strategy's shard";
  EXPECT_EQ(task.shard().world, 2);
  EXPECT_EQ(task.batches, 6);

  // last.pt holds the whole carried state, shard 0's rows then shard 1's.
  auto a = train::open_checkpoint(dir + "/run/last.pt", "fake", "linear");
  torch::serialize::InputArchive t;
  a.read("task", t);
  torch::Tensor whole;
  t.read("carried", whole, true);
  ASSERT_EQ(whole.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(whole.narrow(0, 0, 2).eq(0).all().item<bool>());
  EXPECT_TRUE(whole.narrow(0, 2, 2).eq(1).all().item<bool>());
  EXPECT_GE(seen.gathers, 2) << "the random streams and the task's state";

  // Shard::slice is how a task takes its part back on resume.
  const train::Shard second{1, 2};
  EXPECT_TRUE(second.slice(whole).eq(1).all().item<bool>());
  expect_message<c10::Error>(
      [&] {
        train::Shard{0, 3}.slice(whole);
      },
      {"dimension 0 of size 4 cannot be shared equally by 3 processes"});
}
