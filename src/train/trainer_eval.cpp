// Evaluation of the replicated model (or, for per-worker models, of the averaged model, the worst
// rank's own model and the consensus distance) on the test set, split over ranks (trainer.hpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <ostream>

#include "sparcol/coll/agree.hpp"
#include "trainer_state.hpp"

namespace sparcol::train {

void Trainer::evaluate(std::uint64_t completed) {
  State& s = *s_;
  const auto t0 = Clock::now();
  const auto K = static_cast<std::size_t>(s.world);
  // The evaluated parameters: x itself, or def-a's virtual model (a collective) in a second vector,
  // which only then exists (the synthetic model can have 10^8 parameters).
  std::span<const float> params = s.x;
  if (config_.eval_virtual) {
    s.eval_x.resize(s.x.size());
    s.opt->evaluation_model(s.x, s.eval_x, true);
    params = s.eval_x;
  }
  // Per-worker models: the averaged model xbar = mean_k x_k (one all-reduce, not counted as training
  // communication), this rank's share of the consensus distance, and its own model scored on the
  // whole test set (with its own BatchNorm statistics) for the worst-rank accuracy.
  double own_accuracy = 0, own_distance = 0, averaging_bytes = 0;
  if (s.per_worker) {
    const std::size_t n = s.x.size();
    s.eval_x.assign(s.x.begin(), s.x.end());
    if (!s.eval_avg) s.eval_avg = std::make_unique<coll::RingAllreduce>(backend_, n);
    s.eval_avg->run(s.eval_x.data(), completed);
    const auto kf = static_cast<float>(K);
    for (float& v : s.eval_x) v /= kf;
    averaging_bytes = static_cast<double>(s.eval_avg->bytes_sent_per_run());
    for (std::size_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(s.x[i]) - static_cast<double>(s.eval_x[i]);
      own_distance += d * d;
    }
    own_accuracy = s.model->evaluate(s.x, s.test_all, config_.eval_batch).accuracy;
    params = s.eval_x;
  }

  // BatchNorm: evaluate with the mean of every rank's running statistics, keep the local ones.
  auto buffers = s.model->buffers();
  std::vector<float> local(buffers.begin(), buffers.end());
  if (!buffers.empty()) {
    std::vector<float> all(K * buffers.size());
    coll::allgather_small(backend_, local.data(), buffers.size() * sizeof(float), all.data(),
                          comm::kTagAllgather);
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      double sum = 0;
      for (std::size_t r = 0; r < K; ++r) sum += all[r * buffers.size() + i];
      buffers[i] = static_cast<float>(sum / static_cast<double>(K));
    }
  }
  EvalResult er;
  if (s.test.count > 0) er = s.model->evaluate(params, s.test, config_.eval_batch);
  std::copy(local.begin(), local.end(), buffers.begin());

  constexpr std::size_t kFields = 10;
  const double mine[kFields] = {
      er.loss * static_cast<double>(er.count),
      static_cast<double>(std::llround(er.accuracy * static_cast<double>(er.count))),
      static_cast<double>(er.count),
      s.acc_loss,
      s.acc_correct,
      s.acc_samples,
      s.acc_steps,
      own_accuracy,
      own_distance,
      averaging_bytes};
  std::vector<double> all(K * kFields);
  coll::allgather_small(backend_, mine, sizeof mine, all.data(), comm::kTagAllgather);
  double sum[kFields] = {};
  double worst = std::numeric_limits<double>::infinity();
  for (std::size_t r = 0; r < K; ++r) {
    for (std::size_t f = 0; f < kFields; ++f) sum[f] += all[r * kFields + f];
    worst = std::min(worst, all[r * kFields + 7]);
  }
  s.acc_loss = s.acc_correct = s.acc_samples = s.acc_steps = 0;

  TraceEvalRow row;
  row.step = static_cast<std::int64_t>(completed);
  row.epoch = static_cast<double>(completed) / static_cast<double>(steps_per_epoch_);
  row.test_loss = sum[0] / sum[2];
  row.test_accuracy = sum[1] / sum[2];
  const double nan = std::numeric_limits<double>::quiet_NaN();
  row.train_loss = sum[6] > 0 ? sum[3] / sum[6] : nan;
  row.train_accuracy = sum[5] > 0 ? sum[4] / sum[5] : nan;
  row.test_accuracy_worst = s.per_worker ? worst : row.test_accuracy;
  row.consensus_distance = s.per_worker ? sum[8] / static_cast<double>(K) : 0.0;
  row.averaging_bytes_sent = s.per_worker ? sum[9] / static_cast<double>(K) : 0.0;
  row.time_eval_s = seconds(Clock::now() - t0);
  row.wall_time_s = s.wall_now();
  s.t_eval += row.time_eval_s;
  s.last_test_loss = row.test_loss;
  s.last_test_acc = row.test_accuracy;
  s.last_test_acc_worst = row.test_accuracy_worst;
  s.last_consensus = row.consensus_distance;
  if (s.rank != 0) return;
  if (!config_.trace.empty()) s.eval_rows.push_back(row);
  if (!config_.quiet && out_) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "eval step %lld epoch %.2f train_loss %.4f train_acc %.2f%% test_loss %.4f test_acc %.2f%%",
                  static_cast<long long>(row.step), row.epoch, row.train_loss, 100.0 * row.train_accuracy,
                  row.test_loss, 100.0 * row.test_accuracy);
    *out_ << buf;
    if (s.per_worker) {
      std::snprintf(buf, sizeof buf, " worst_rank_acc %.2f%% consensus %.4g", 100.0 * row.test_accuracy_worst,
                    row.consensus_distance);
      *out_ << buf;
    }
    *out_ << std::endl;
  }
}

}  // namespace sparcol::train
