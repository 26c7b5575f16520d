// The trainer's state and the helpers its files share (private to src/train). The trainer is split
// by idea: trainer_setup.cpp (data, model, partition, optimizer), trainer.cpp (the run and its
// step loop), trainer_eval.cpp (evaluation), trainer_trace.cpp (the trace and the outputs),
// trainer_checkpoint.cpp (checkpoint and resume), trainer_progress.cpp (what rank 0 prints).
#pragma once

#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/optim/optimizer.hpp"
#include "sparcol/optim/schedule.hpp"
#include "sparcol/train/batch_iterator.hpp"
#include "sparcol/train/model.hpp"
#include "sparcol/train/trace.hpp"
#include "sparcol/train/trainer.hpp"

namespace sparcol::train {

using Clock = std::chrono::steady_clock;

// Per-rank values of one step that the trace averages over ranks, in this order.
enum LocalField : std::size_t {
  kLoss,
  kAccuracy,
  kBytesSent,
  kBytesRecv,
  kElementsUp,
  kTimeCompute,
  kTimeCompress,
  kTimeComm,
  kTimeStep,
  kBytesUp,
  kBytesSentDown,
  kLocalFields
};

// Shortest text that reads back as the same double.
inline std::string num(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

inline double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

inline bool is_dense(const TrainConfig& c) {
  return optim::method_is_dense(c.optimizer) || optim::method_is_decentralized(c.optimizer);
}

struct Trainer::State {
  int rank = 0;
  int world = 1;
  std::uint32_t data_crc = 0;
  std::unique_ptr<Model> model;
  Dataset train;     // this rank's part, in partition order
  Dataset test;      // this rank's contiguous slice of the test set
  Dataset test_all;  // per-worker models only: the whole test set (each rank's own model is scored on it)
  std::uint32_t part_crc = 0;
  std::unique_ptr<BatchIterator> iter;
  Batch batch;
  // eval_x: def-a's virtual model (--eval-virtual), or for per-worker models the averaged model xbar
  // of the last evaluation (what --save-params writes for them).
  std::vector<float> x, g, eval_x;
  bool per_worker = false;                        // opt->per_worker_models()
  bool ckpt_pending = false;                      // a checkpoint was asked for in the middle of a period
  std::unique_ptr<coll::RingAllreduce> eval_avg;  // per-worker models: averages x for an evaluation
  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<optim::Schedule> schedule;
  std::uint64_t eval_every = 0;  // resolved: 0 = only at the end
  std::uint64_t end_step = 0;

  // Since the last evaluation, this rank: sum of minibatch losses, correct predictions, samples, steps.
  double acc_loss = 0, acc_correct = 0, acc_samples = 0, acc_steps = 0;
  // Run totals for the RCC (the same on every rank: elements_up_all and elements_down are global).
  double up_all = 0, down = 0, dense = 0;
  // Run totals (checkpointed): communication rounds (the same on every rank), this rank's bytes, and
  // on rank 0 the sums of the trace rows' rank-mean bytes (the trace attributes).
  double rounds = 0, bytes_sent = 0, bytes_recv = 0, mean_bytes_sent = 0, mean_bytes_recv = 0;

  // Rows of steps not yet gathered: kLocalFields values per step, and the parts every rank knows.
  std::vector<double> pending_local;
  std::vector<TraceStepRow> pending_shared;
  // Rank 0: gathered rows not yet in the trace file.
  std::vector<TraceStepRow> rows;
  std::vector<TraceEvalRow> eval_rows;
  std::unique_ptr<TraceWriter> trace;

  std::string resumed_from;  // the checkpoint directory this run started from ("" = step 0)
  double wall_base = 0;      // training time before this process (from the checkpoint)
  Clock::time_point run_start;

  // Rank 0's progress line: rows since the last line.
  double prog_loss = 0, prog_acc = 0, prog_rows = 0;
  std::uint64_t prog_step = 0;
  Clock::time_point prog_time;
  std::uint64_t first_step = 0;  // the step this process started at (for the ETA)

  // This rank's time totals for the summary.
  double t_compute = 0, t_compress = 0, t_comm = 0, t_eval = 0;
  // Memory: the linear and convolution layers' caches for backward (DropIT, Model::layer_caches) of
  // the step of this process whose total was the largest, and that total with and without DropIT.
  std::vector<LayerCache> peak_caches;
  std::size_t peak_cached = 0, peak_cached_dense = 0;
  std::vector<double> peak_rss;  // rank 0, at the end: every rank's peak resident bytes (getrusage)
  double last_test_loss = std::numeric_limits<double>::quiet_NaN();
  double last_test_acc = std::numeric_limits<double>::quiet_NaN();
  double last_test_acc_worst = std::numeric_limits<double>::quiet_NaN();
  double last_consensus = std::numeric_limits<double>::quiet_NaN();

  double wall_now() const { return wall_base + seconds(Clock::now() - run_start); }
};

}  // namespace sparcol::train
