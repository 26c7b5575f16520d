// Evaluation of the replicated model on the test set, split over ranks (trainer.hpp, "Evaluation").
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <ostream>

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

  // BatchNorm: evaluate with the mean of every rank's running statistics, keep the local ones.
  auto buffers = s.model->buffers();
  std::vector<float> local(buffers.begin(), buffers.end());
  if (!buffers.empty()) {
    std::vector<float> all(K * buffers.size());
    const std::vector<std::size_t> bytes(K, buffers.size() * sizeof(float));
    backend_.allgatherv(local.data(), all.data(), bytes);
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      double sum = 0;
      for (std::size_t r = 0; r < K; ++r) sum += all[r * buffers.size() + i];
      buffers[i] = static_cast<float>(sum / static_cast<double>(K));
    }
  }
  EvalResult er;
  if (s.test.count > 0) er = s.model->evaluate(params, s.test, config_.eval_batch);
  std::copy(local.begin(), local.end(), buffers.begin());

  constexpr std::size_t kFields = 7;
  const double mine[kFields] = {
      er.loss * static_cast<double>(er.count),
      static_cast<double>(std::llround(er.accuracy * static_cast<double>(er.count))),
      static_cast<double>(er.count),
      s.acc_loss,
      s.acc_correct,
      s.acc_samples,
      s.acc_steps};
  std::vector<double> all(K * kFields);
  const std::vector<std::size_t> bytes(K, sizeof mine);
  backend_.allgatherv(mine, all.data(), bytes);
  double sum[kFields] = {};
  for (std::size_t r = 0; r < K; ++r) {
    for (std::size_t f = 0; f < kFields; ++f) sum[f] += all[r * kFields + f];
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
  row.time_eval_s = seconds(Clock::now() - t0);
  row.wall_time_s = s.wall_now();
  s.t_eval += row.time_eval_s;
  s.last_test_loss = row.test_loss;
  s.last_test_acc = row.test_accuracy;
  if (s.rank != 0) return;
  if (!config_.trace.empty()) s.eval_rows.push_back(row);
  if (!config_.quiet && out_) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "eval step %lld epoch %.2f train_loss %.4f train_acc %.2f%% test_loss %.4f test_acc %.2f%%",
                  static_cast<long long>(row.step), row.epoch, row.train_loss, 100.0 * row.train_accuracy,
                  row.test_loss, 100.0 * row.test_accuracy);
    *out_ << buf << std::endl;
  }
}

}  // namespace sparcol::train
