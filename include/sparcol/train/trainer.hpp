// The native data-parallel trainer behind sparcol-train (docs/train.md): one worker per rank of a
// Backend, any optimizer and compressor of sparcol::optim, a model and data set of sparcol::train,
// an HDF5 trace (trace.hpp, docs/traces.md) and checkpoints (checkpoint.hpp).
//
// Per step t (0-based; "step" in traces and checkpoints counts completed steps, t + 1):
//   lr = schedule(t);  batch = this rank's next minibatch
//   z = opt.gradient_point(x, lr);  loss, g = model.forward_backward(z, batch)
//   opt.step(x, g, t, lr, epoch)      -> x identical on every rank
// then, at fixed steps that every rank computes alike: gather the per-rank trace rows, evaluate,
// write the trace (rank 0), checkpoint. Nothing depends on clocks or on who finishes first, so a
// run is bitwise reproducible, and a run resumed from a checkpoint continues bitwise as the
// uninterrupted run would have (the same loss trace and final parameters; tested).
//
// Evaluation: every rank evaluates the replicated model on its contiguous slice of the test set and
// the sums (loss * count, correct, count) are combined in rank order; the evaluated parameters are
// Optimizer::evaluation_model (x; def-a's virtual model x - mean_k e_k with eval_virtual). BatchNorm
// running statistics are averaged over ranks into the model for the evaluation only; training goes
// on with each rank's own statistics, which the per-rank checkpoint files keep (docs/models.md).
// Methods with a model per rank (Optimizer::per_worker_models: local SGD and its variants, the
// decentralized methods) are evaluated at xbar = mean_k x_k (one all-reduce at evaluation time, its
// bytes reported apart from training communication); the worst rank's own model on the whole test set
// and the consensus distance mean_k ||x_k - xbar||^2 are recorded beside it (docs/traces.md). Their
// checkpoints are written only where Optimizer::at_checkpoint_boundary() allows: one asked for in the
// middle of an averaging period is written at the next boundary.
//
// Construction, load_checkpoint and check_outputs never communicate, so a program can let each rank
// fail on its own input and agree on the outcome before run() (apps/common/app_support.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/train/data.hpp"

namespace sparcol::train {

struct TrainConfig {
  // Model and data
  std::string model = "mlp";                // mlp, cnn, resnet20, synthetic
  std::uint64_t params = 0;                 // synthetic: number of parameters N
  std::string norm = "gn";                  // resnet20: gn or bn
  std::string data_dir = kFashionMnistDir;  // Fashion-MNIST IDX files (not used by synthetic)
  std::uint64_t train_samples = 0;          // the first N training samples; 0 = all (synthetic: 16384)
  std::uint64_t test_samples = 0;           // the first N test samples; 0 = all (synthetic: 4096)
  std::string partition = "iid";            // iid, dirichlet, shards
  double dirichlet_alpha = 0.1;
  int dirichlet_group = 0;               // workers per Dirichlet group; 0 = all at once
  bool augment = false;                  // random crop (pad 2) and horizontal flip
  double dropit = 0.0;                   // DropIT gamma in [0, 1) (ALGORITHMS.md 10.10); 0 = off
  std::string dropit_layers = "hidden";  // hidden (all but the first and last layer) or all

  // Optimizer (docs/optimizers.md)
  std::string optimizer = "gmc";
  std::string compressor = "topk";
  double density = 0.01;
  double alpha = -1.0;  // < 0: the method's default
  double momentum = 0.9;
  double weight_decay = 0.0;
  bool layerwise = false;
  std::uint64_t min_compress_size = 0;
  std::string nan_policy = "skip";            // skip or stop
  double clip_norm = 0.0;                     // DGC
  int warmup_epochs = 0;                      // DGC density warm-up
  bool nesterov = false;                      // DGC
  bool wd_outside = false;                    // weight decay on the update (not for gmc, gmc-plus, cser)
  int cser_period = 4;                        // CSER H
  double cser_density1 = -1.0;                // CSER C1 density; < 0: density / 2
  double cser_density2 = -1.0;                // CSER C2 density; < 0: min(1, 2 * density)
  std::string marsit_compensation = "local";  // marsit: local or global (ALGORITHMS.md 10.1)
  int low_rank = 0;             // powersgd rank r (10.3), powergossip rank; 0: the method's default (2, 1)
  bool powersgd_no_ef = false;  // powersgd: error feedback off (ablation)
  bool powersgd_no_warm_start = false;        // powersgd: fresh Q every step (ablation)
  std::string powersgd_error_form = "paper";  // powersgd: paper (M - P Q^T) or library (M - P Q_k^T)
  std::string down_compressor = "topk";       // liec: C_down of the owners' chunks (none, topk, randk)
  double down_density = -1.0;                 // liec: C_down's density; < 0: --density
  // The local-SGD family (local-sgd, vrl-sgd, stl-sgd): averaging period, STL's stages and growth,
  // the compressor of the model difference at an averaging ("none": exact averaging)
  int period = 8;
  int stl_stages = 3;
  std::string stl_data = "iid";  // iid: the period doubles per stage; noniid: grows by sqrt(2)
  std::string avg_compressor = "none";
  double avg_density = 0.01;
  // Decentralized methods (dpsgd, relaysgd, powergossip, a2cid2, async-gossip; docs/optimizers.md)
  std::string topology;                  // "": the method's default (ring; relaysgd: chain)
  int power_iters = 1;                   // powergossip power iterations per step
  double diffusion_rate = 1.0;           // powergossip gamma
  std::string relay_variant = "model";   // relaysgd: model or update
  double comm_rate = 1.0;                // a2cid2, async-gossip: pairwise averagings per step (> 0)
  std::string comm_schedule = "exact";   // a2cid2, async-gossip: exact or poisson
  std::string acid_order = "mix-first";  // a2cid2: mix-first or exchange-first (10.6)

  // Schedule
  double lr = 0.1;
  std::string schedule = "cosine";  // constant, step, cosine
  std::vector<double> milestones;   // step schedule: epochs
  double gamma = 0.1;               // step schedule factor
  double epochs = 5.0;
  std::uint64_t max_steps = 0;  // stop after this many completed steps; 0 = the schedule's end
  std::uint64_t batch = 32;     // per worker

  // Evaluation
  std::int64_t eval_every = -1;  // steps; -1 = once per epoch; 0 = only at the end
  std::uint64_t eval_batch = 500;
  bool eval_virtual = false;  // def-a: evaluate x - mean_k e_k

  std::uint64_t seed = 1;

  // Outputs
  std::string trace;                   // HDF5 trace (rank 0); "" = none
  bool overwrite = false;              // replace an existing trace when not resuming
  std::string checkpoint_dir;          // "" = no checkpoints
  std::uint64_t checkpoint_every = 0;  // steps; 0 = only at the end of the run
  int keep_checkpoints = 2;
  bool resume = false;
  std::string resume_from;             // "" = the latest checkpoint in checkpoint_dir
  std::string save_params;             // raw float32 file of the final parameters (rank 0)
  std::uint64_t progress_every = 100;  // steps; 0 = no progress lines
  bool quiet = false;
  double step_delay_ms = 0.0;  // sleep after every step (throttles a run)
  std::string device = "cpu";  // cpu, or cuda: the model's forward and backward on the current GPU
};

// Presets: named protocols. apply_preset sets every setting of the preset that the configuration
// reads (options.hpp) and for which given(flag) is false (flags given explicitly win). "gmc-paper"
// (ALGORITHMS.md 12.1): momentum 0.9, weight decay 1e-4, cosine schedule without warm-up, batch 16 per
// worker, density 0.0025, lr 0.1.
const std::vector<std::string>& preset_names();
void apply_preset(TrainConfig& config, const std::string& preset,
                  const std::function<bool(const std::string& flag)>& given);

// Checks the values that need neither data nor communication; throws kInvalidArgument naming the
// flag (--lr, --density, ...). With given (a program's "was this flag on the command line"), an
// option given that the configuration does not read is an error too (options.hpp).
void validate_config(const TrainConfig& config, int world_size, int rank,
                     const std::function<bool(const std::string& flag)>& given = {});

// The data set the configuration names: Fashion-MNIST from data_dir (normalised with the fixed
// Fashion-MNIST constants) or the synthetic task, cut to the first train_samples / test_samples.
// Throws kIo naming the file and rank for missing or corrupt files.
DataSplit load_training_data(const TrainConfig& config, int rank);

struct TrainSummary {
  std::uint64_t start_step = 0;     // completed steps when run() began (the checkpoint's step)
  std::uint64_t steps = 0;          // completed steps when run() ended
  std::uint64_t total_steps = 0;    // the schedule's length
  std::uint64_t skipped_steps = 0;  // NaN-policy skips over the whole run (across resumes)
  double test_loss = 0.0;           // of the last evaluation (NaN if none happened)
  double test_accuracy = 0.0;
  double test_accuracy_worst = 0.0;    // per-worker models: the worst rank's own model (else test_accuracy)
  double consensus_distance = 0.0;     // per-worker models: mean_k ||x_k - xbar||^2 (else 0)
  double rcc = 0.0;                    // relative communication cost of all steps so far (spec 9)
  std::uint64_t rounds_total = 0;      // communication rounds of all steps so far (across resumes)
  std::uint64_t bytes_sent_total = 0;  // this rank's training payload bytes so far (no evaluation)
  std::uint64_t bytes_recv_total = 0;
  double wall_time_s = 0.0;  // training time across resumes
};

class Trainer {
 public:
  // Builds the model, partition, batch iterator, optimizer and schedule from config (validated by
  // validate_config). Copies what this rank needs of data (its part of the training set, its slice of
  // the test set), so data may be freed afterwards. No communication.
  Trainer(comm::Backend& backend, TrainConfig config, const DataSplit& data);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Restores this rank's state from checkpoint_dir/rank-<r>.bin (checkpoint_dir as resolve_checkpoint
  // returns it). kIo for a missing or corrupt file, kInvalidArgument for a checkpoint of another
  // configuration or world size; the message names the file and rank. No communication.
  void load_checkpoint(const std::string& checkpoint_dir);

  // Rank 0 (other ranks return at once): checks that the trace and --save-params can be written and
  // that an existing trace is only replaced with overwrite or continued with resume. No writing.
  void check_outputs();

  // Trains from the current step to the end of the schedule or max_steps. Every rank calls it.
  TrainSummary run();

  std::span<const float> params() const;
  const std::string& config_text() const { return config_text_; }
  std::uint64_t steps_per_epoch() const { return steps_per_epoch_; }
  std::uint64_t total_steps() const { return total_steps_; }
  std::uint64_t step() const { return step_; }
  std::size_t num_params() const;

  // Where rank 0 prints progress (default std::cout).
  void set_output(std::ostream* out) { out_ = out; }

 private:
  struct State;
  // The run (trainer.cpp)
  void begin_run();
  void train_step(std::uint64_t t);
  void after_step(std::uint64_t completed);
  TrainSummary end_run(std::uint64_t first_step);
  // The asynchronous methods' event counts per rank: printed and put into the trace (a collective).
  void report_events();
  // Evaluation (trainer_eval.cpp), the trace (trainer_trace.cpp), checkpoints (trainer_checkpoint.cpp)
  void evaluate(std::uint64_t completed);
  void gather_rows();
  void open_trace();
  void write_trace();
  void gather_peak_rss();          // every rank (trainer.cpp)
  void write_memory_attributes();  // rank 0, into the trace (trainer_trace.cpp)
  void checkpoint(std::uint64_t completed);
  // What rank 0 prints (trainer_progress.cpp)
  void print_header();
  void print_progress(std::uint64_t completed);
  void report_skip(std::uint64_t completed, const std::vector<int>& bad_ranks);
  void print_summary(const TrainSummary& summary);
  void print_memory();

  comm::Backend& backend_;
  TrainConfig config_;
  std::string config_text_;
  std::uint64_t steps_per_epoch_ = 1;
  std::uint64_t total_steps_ = 0;
  std::uint64_t step_ = 0;  // completed steps
  std::unique_ptr<State> s_;
  std::ostream* out_ = nullptr;
};

// The canonical "key=value" lines of everything that determines a run's trajectory (checkpoints and
// traces store it; a resume must match it): world_size, data_crc, then the options of the table in
// options.hpp that change parameters and that this configuration reads, with defaults resolved.
std::string canonical_config(const TrainConfig& config, int world_size, std::uint32_t data_crc);

}  // namespace sparcol::train
