// The trainer's run (include/sparcol/train/trainer.hpp): the step loop and what follows each step.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "sparcol/coll/agree.hpp"
#include "sparcol/train/checkpoint.hpp"

#include "trainer_state.hpp"

namespace sparcol::train {

TrainSummary Trainer::run() {
  State& s = *s_;
  const std::uint64_t first = step_;
  begin_run();
  for (std::uint64_t t = step_; t < s.end_step; ++t) {
    train_step(t);
    after_step(t + 1);
  }
  return end_run(first);
}

void Trainer::begin_run() {
  State& s = *s_;
  open_trace();
  s.run_start = Clock::now();
  s.prog_time = s.run_start;
  s.prog_step = step_;
  s.first_step = step_;
  print_header();
}

// Step t (0-based): the minibatch, the gradient at the optimizer's point, the optimizer's step; then
// this rank's totals and its row of the trace.
void Trainer::train_step(std::uint64_t t) {
  State& s = *s_;
  const auto B = static_cast<double>(config_.batch);
  const auto t_begin = Clock::now();
  const double lr = s.schedule->lr(t);
  const double epoch = static_cast<double>(t) / static_cast<double>(steps_per_epoch_);
  s.iter->next(s.batch);
  const auto t_c0 = Clock::now();
  const auto z = s.opt->gradient_point(s.x, lr);
  const double loss = s.model->forward_backward(z, s.batch.view(), s.g);
  const double correct = static_cast<double>(s.model->last_batch_correct());
  const auto t_c1 = Clock::now();
  if (s.peak_caches.empty() || s.model->cached_bytes() > s.peak_cached) {
    s.peak_caches = s.model->layer_caches();
    s.peak_cached = s.model->cached_bytes();
    s.peak_cached_dense = s.model->cached_dense_bytes();
  }
  const optim::StepStats st = s.opt->step(s.x, s.g, t, lr, epoch);
  const auto t_end = Clock::now();
  const std::uint64_t completed = t + 1;
  step_ = completed;

  const double t_compute = seconds(t_c1 - t_c0);
  s.t_compute += t_compute;
  s.t_compress += st.comm.time_compress_s;
  s.t_comm += st.comm.time_comm_s;
  s.acc_loss += loss;
  s.acc_correct += correct;
  s.acc_samples += B;
  s.acc_steps += 1;
  s.up_all += st.comm.elements_up_all;
  s.down += st.comm.elements_down;
  s.dense += st.comm.dense_elements;
  s.rounds += static_cast<double>(st.comm.rounds);
  s.bytes_sent += static_cast<double>(st.comm.bytes_sent);
  s.bytes_recv += static_cast<double>(st.comm.bytes_recv);
  const double local[kLocalFields] = {loss,
                                      correct / B,
                                      static_cast<double>(st.comm.bytes_sent),
                                      static_cast<double>(st.comm.bytes_recv),
                                      st.comm.elements_up,
                                      t_compute,
                                      st.comm.time_compress_s,
                                      st.comm.time_comm_s,
                                      seconds(t_end - t_begin),
                                      static_cast<double>(st.comm.bytes_up),
                                      static_cast<double>(st.comm.bytes_sent_down)};
  s.pending_local.insert(s.pending_local.end(), local, local + kLocalFields);
  TraceStepRow shared;
  shared.step = static_cast<std::int64_t>(completed);
  shared.epoch = static_cast<double>(completed) / static_cast<double>(steps_per_epoch_);
  shared.lr = lr;
  shared.elements_down = st.comm.elements_down;
  shared.bytes_down = static_cast<double>(st.comm.bytes_down);
  shared.skipped = st.skipped ? 1 : 0;
  shared.comm_rounds = static_cast<std::int64_t>(st.comm.rounds);
  shared.wall_time_s = s.wall_now();
  s.pending_shared.push_back(shared);
  if (st.skipped) report_skip(completed, st.bad_ranks);
  if (config_.step_delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(config_.step_delay_ms));
  }
}

// What happens after a step depends only on the step number, so every rank agrees.
void Trainer::after_step(std::uint64_t completed) {
  State& s = *s_;
  const bool end = completed == s.end_step;
  const bool progress = config_.progress_every > 0 && completed % config_.progress_every == 0;
  const bool eval = end || (s.eval_every > 0 && completed % s.eval_every == 0);
  const bool epoch_end = completed % steps_per_epoch_ == 0;
  const bool asked = !config_.checkpoint_dir.empty() &&
                     (end || (config_.checkpoint_every > 0 && completed % config_.checkpoint_every == 0));
  // A checkpoint asked for in the middle of a period (per-worker methods) waits for the next boundary.
  const bool ckpt = (asked || s.ckpt_pending) && s.opt->at_checkpoint_boundary();
  s.ckpt_pending = (asked || s.ckpt_pending) && !ckpt;
  if (end && s.ckpt_pending && s.rank == 0 && !config_.quiet && out_) {
    *out_
        << "no checkpoint at step " << completed
        << ": the run ended in the middle of an averaging period (checkpoints are written at its boundaries)"
        << std::endl;
  }
  if (progress || eval || epoch_end || ckpt) gather_rows();
  if (progress) print_progress(completed);
  if (eval) evaluate(completed);
  if (eval || epoch_end || ckpt) write_trace();
  if (ckpt) checkpoint(completed);
}

TrainSummary Trainer::end_run(std::uint64_t first) {
  State& s = *s_;
  gather_peak_rss();
  report_events();
  if (s.rank == 0 && s.trace) {
    write_memory_attributes();
    s.trace->close();
  }
  if (s.rank == 0 && !config_.save_params.empty()) {
    // Per-worker models: the averaged model of the final evaluation (the run always ends with one).
    const std::vector<float>& v = s.per_worker ? s.eval_x : s.x;
    const auto* p = reinterpret_cast<const char*>(v.data());
    write_file_durably(config_.save_params, std::string(p, p + v.size() * sizeof(float)), 0);
  }
  TrainSummary sum;
  sum.start_step = first;
  sum.steps = step_;
  sum.total_steps = total_steps_;
  sum.skipped_steps = s.opt->skipped_steps();
  sum.test_loss = s.last_test_loss;
  sum.test_accuracy = s.last_test_acc;
  sum.test_accuracy_worst = s.last_test_acc_worst;
  sum.consensus_distance = s.last_consensus;
  sum.rounds_total = static_cast<std::uint64_t>(s.rounds);
  sum.bytes_sent_total = static_cast<std::uint64_t>(s.bytes_sent);
  sum.bytes_recv_total = static_cast<std::uint64_t>(s.bytes_recv);
  sum.rcc = s.dense > 0 ? (s.up_all + s.down) / s.dense : 0.0;
  sum.wall_time_s = s.wall_now();
  print_summary(sum);
  return sum;
}

}  // namespace sparcol::train

namespace sparcol::train {

// Every rank's peak resident memory so far (getrusage: ru_maxrss, KiB on Linux), to rank 0.
void Trainer::report_events() {
  State& s = *s_;
  const auto ev = s.opt->event_counts();
  if (ev.empty()) return;  // the same answer on every rank (the same method)
  std::vector<double> mine;
  for (const auto& e : ev) mine.push_back(e.second);
  const auto K = static_cast<std::size_t>(s.world);
  std::vector<double> all(K * mine.size());
  const std::vector<std::size_t> bytes(K, mine.size() * sizeof(double));
  backend_.allgatherv(mine.data(), all.data(), bytes);
  if (s.rank != 0) return;
  std::string text;
  for (std::size_t f = 0; f < ev.size(); ++f) {
    std::string per_rank;
    double sum = 0;
    for (std::size_t r = 0; r < K; ++r) {
      const double v = all[r * ev.size() + f];
      sum += v;
      char buf[48];
      std::snprintf(buf, sizeof buf, "%.6g", v);
      per_rank += (r == 0 ? "" : ",") + std::string(buf);
    }
    text += (f == 0 ? "" : "; ") + ev[f].first + " " + per_rank;
    if (s.trace) {
      s.trace->set_attribute({"events_" + ev[f].first, per_rank});
      s.trace->set_attribute({"events_" + ev[f].first + "_mean", sum / static_cast<double>(K)});
    }
  }
  if (!config_.quiet && out_)
    *out_ << "events per rank (asynchronous: they depend on timing): " << text << std::endl;
}

void Trainer::gather_peak_rss() {
  State& s = *s_;
  rusage ru{};
  const double mine = ::getrusage(RUSAGE_SELF, &ru) == 0 ? static_cast<double>(ru.ru_maxrss) * 1024.0 : 0.0;
  std::vector<double> all(static_cast<std::size_t>(s.world));
  coll::allgather_small(backend_, &mine, sizeof mine, all.data(), comm::kTagAllgather);
  if (s.rank == 0) s.peak_rss = std::move(all);
}

}  // namespace sparcol::train
