// The training trace: an HDF5 file that sparcol-train's rank 0 grows while it trains (the public
// contract is docs/traces.md: every dataset, type, unit and attribute).
//
//   /train/<column>   one row per optimizer step (extendable 1-D datasets, all the same length)
//   /eval/<column>    one row per evaluation
//   attributes on /   the configuration (model, optimizer, ..., `config`: the canonical text that a
//                     resume must match) and run summaries updated at every flush
//
// Durability: rows are buffered by the caller and appended in batches, each followed by flush(), so
// a killed job leaves a file holding every row up to its last flush (HDF5 1.10 gives no guarantee
// for a kill in the middle of an append; the trainer therefore also keeps a copy of the trace in
// every checkpoint). Resume: open() drops the rows with step > the checkpoint's step first.
//
// Errors: Error(kIo) naming the file (from sparcol::io), or for a resume whose configuration differs,
// Error(kInvalidArgument) naming the first differing setting.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace sparcol::train {

// One optimizer step. Per-rank quantities are averaged over ranks (docs/traces.md).
struct TraceStepRow {
  std::int64_t step = 0;  // steps completed after this one (1-based)
  double epoch = 0.0;     // step / steps_per_epoch
  double loss = 0.0;      // minibatch loss, mean over ranks
  double accuracy = 0.0;  // minibatch accuracy in [0, 1], mean over ranks
  double lr = 0.0;
  double bytes_sent = 0.0;  // payload bytes sent by a rank in this step, mean over ranks
  double bytes_recv = 0.0;
  double elements_up = 0.0;     // a rank's message in elements, mean over ranks
  double elements_down = 0.0;   // the aggregate a parameter server would send back
  double time_compute_s = 0.0;  // forward + backward (and the gradient point), mean over ranks
  double time_compress_s = 0.0;
  double time_comm_s = 0.0;
  double time_step_s = 0.0;      // the whole step (batch, compute, optimizer), mean over ranks
  double wall_time_s = 0.0;      // rank 0's training time since step 0, across resumes
  std::int64_t skipped = 0;      // 1 when the NaN policy skipped the step
  std::int64_t comm_rounds = 0;  // communication rounds of the step (CommStats::rounds)
  double bytes_up = 0.0;         // a rank's message in bytes (CommStats::bytes_up), mean over ranks
  double bytes_down = 0.0;       // what a parameter server would send back, in bytes (CommStats::bytes_down)
  double bytes_sent_down = 0.0;  // of bytes_sent, a separate downward phase's (liec), mean over ranks
};

// One evaluation.
struct TraceEvalRow {
  std::int64_t step = 0;
  double epoch = 0.0;
  double train_loss = 0.0;      // mean minibatch loss of the steps since the previous evaluation
  double train_accuracy = 0.0;  // their minibatch accuracy (training mode), in [0, 1]
  double test_loss = 0.0;
  double test_accuracy = 0.0;  // in [0, 1]
  double time_eval_s = 0.0;
  double wall_time_s = 0.0;
  // Methods with a model per rank (Optimizer::per_worker_models): test_accuracy is that of the
  // rank-averaged model xbar, test_accuracy_worst the lowest of the ranks' own models on the whole
  // test set, consensus_distance mean_k ||x_k - xbar||^2, averaging_bytes_sent what a rank sent to
  // average the models for this evaluation (not training communication). Replicated models:
  // test_accuracy, 0, 0 (nothing is evaluated twice).
  double test_accuracy_worst = 0.0;
  double consensus_distance = 0.0;
  double averaging_bytes_sent = 0.0;
};

using TraceValue = std::variant<std::string, std::int64_t, double>;
struct TraceAttribute {
  std::string name;
  TraceValue value;
};

// The dataset names of each group, in documentation order.
const std::vector<std::string>& trace_step_columns();
const std::vector<std::string>& trace_eval_columns();

// What a read-only look at an existing trace finds (for deciding how to resume).
struct TraceInfo {
  bool readable = false;
  std::string error;            // why not readable
  std::string config;           // the `config` attribute ("" if absent)
  std::int64_t last_step = -1;  // the last /train/step (-1 when there are no rows)
};
TraceInfo inspect_trace(const std::string& path);

// Writes a trace so that the file at its path is always complete: the file is not kept open; rows
// and attributes wait in memory until flush(), which applies them to a copy (path + ".part") and
// renames the copy over the file. A kill at any moment leaves the file as of the last flush (and
// perhaps a stale ".part", which the next flush replaces). create() and resume() do the same.
class TraceWriter {
 public:
  // A new trace at path (an existing file is replaced: the caller checks --overwrite first), with
  // the given root attributes; `config` must be among them.
  static TraceWriter create(const std::string& path, const std::vector<TraceAttribute>& attributes);
  // An existing trace continued from `step`: its `config` attribute must equal config
  // (kInvalidArgument naming the first differing line otherwise); rows with step > `step` are
  // removed from both groups before anything is appended.
  static TraceWriter resume(const std::string& path, const std::string& config, std::int64_t step);

  TraceWriter(TraceWriter&&) noexcept;
  TraceWriter& operator=(TraceWriter&&) noexcept;
  ~TraceWriter();

  void append(std::span<const TraceStepRow> rows);
  void append(const TraceEvalRow& row);
  void set_attribute(const TraceAttribute& attribute);
  // Writes everything appended so far to the file, replacing it whole (see above); nothing to write,
  // nothing done.
  void flush();
  // Flushes and closes (a closed writer can only be destroyed or reopened by resume()).
  void close();
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  explicit TraceWriter(std::unique_ptr<Impl> impl, std::string path);
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

// The first line where two canonical configuration texts differ, as
// "<key>: <value in a> vs <value in b>" (empty when equal).
std::string config_difference(const std::string& a, const std::string& b);

}  // namespace sparcol::train
