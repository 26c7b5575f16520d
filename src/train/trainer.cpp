// The native trainer (include/sparcol/train/trainer.hpp, docs/train.md).
#include "sparcol/train/trainer.hpp"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <numeric>
#include <thread>

#include "sparcol/compress/compressor.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/optim/optimizer.hpp"
#include "sparcol/optim/schedule.hpp"
#include "sparcol/train/batch_iterator.hpp"
#include "sparcol/train/checkpoint.hpp"
#include "sparcol/train/model.hpp"
#include "sparcol/train/options.hpp"
#include "sparcol/train/partition.hpp"
#include "sparcol/train/trace.hpp"

namespace sparcol::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Synthetic task sizes when --train-samples / --test-samples are not given.
constexpr std::uint64_t kSyntheticTrain = 16384;
constexpr std::uint64_t kSyntheticTest = 4096;
constexpr int kSyntheticLatent = 32;

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
  kLocalFields
};

// Shortest text that reads back as the same double.
std::string num(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto total = static_cast<long long>(std::llround(s));
  char buf[48];
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", total / 3600, (total % 3600) / 60);
  } else if (total >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", total / 60, total % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%llds", total);
  }
  return buf;
}

// The programs' warning line, written at once so that ranks' lines do not interleave.
void warn(int rank, const std::string& message) {
  const std::string line = "sparcol: rank " + std::to_string(rank) + ": warning: " + message + "\n";
  std::cerr.write(line.data(), static_cast<std::streamsize>(line.size())).flush();
}

// Why path cannot be created as a file (its directory is missing or not writable), or "".
std::string unwritable_reason(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) return "'" + path + "' is a directory";
  fs::path dir = p.parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec)) return "directory '" + dir.string() + "' of '" + path + "' does not exist";
  if (::access(dir.c_str(), W_OK) != 0) return "directory '" + dir.string() + "' is not writable";
  if (fs::exists(p, ec) && ::access(p.c_str(), W_OK) != 0) return "'" + path + "' exists and is not writable";
  return {};
}

std::uint32_t crc_bytes(std::uint32_t c, const void* data, std::size_t bytes) {
  return static_cast<std::uint32_t>(crc32(c, static_cast<const Bytef*>(data), static_cast<uInt>(bytes)));
}

// Labels and sizes identify the data set well enough to catch a resume on other data.
std::uint32_t data_crc(const DataSplit& d) {
  std::uint32_t c = static_cast<std::uint32_t>(crc32(0L, Z_NULL, 0));
  for (const Dataset* s : {&d.train, &d.test}) {
    const std::uint64_t sizes[2] = {s->count, s->sample_size()};
    c = crc_bytes(c, sizes, sizeof sizes);
    c = crc_bytes(c, s->labels.data(), s->labels.size() * sizeof(std::int32_t));
  }
  return c;
}

// Samples `indices` of data, in that order, as a data set of their own.
Dataset subset(const Dataset& data, std::span<const std::uint32_t> indices) {
  Dataset out;
  out.count = indices.size();
  out.shape = data.shape;
  out.num_classes = data.num_classes;
  out.background = data.background;
  const std::size_t n = data.sample_size();
  out.images.resize(out.count * n);
  out.labels.resize(out.count);
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const auto src = data.sample(indices[i]);
    std::copy(src.begin(), src.end(), out.images.begin() + static_cast<std::ptrdiff_t>(i * n));
    out.labels[i] = data.labels[indices[i]];
  }
  return out;
}

void truncate(Dataset& d, std::uint64_t count) {
  if (count == 0 || count >= d.count) return;
  d.count = count;
  d.images.resize(count * d.sample_size());
  d.labels.resize(count);
}

bool is_dense(const TrainConfig& c) {
  return optim::method_is_dense(c.optimizer);
}
}  // namespace

DataSplit load_training_data(const TrainConfig& c, int rank) {
  DataSplit d;
  if (c.model == "synthetic") {
    d = make_synthetic_data(c.train_samples > 0 ? c.train_samples : kSyntheticTrain,
                            c.test_samples > 0 ? c.test_samples : kSyntheticTest, kSyntheticLatent, c.seed);
    return d;
  }
  d = load_fashion_mnist(c.data_dir, rank);
  SPARCOL_CHECK_ARG(c.train_samples <= d.train.count, rank,
                    "--train-samples " + std::to_string(c.train_samples) + " exceeds the " +
                        std::to_string(d.train.count) + " training samples in '" + c.data_dir + "'");
  SPARCOL_CHECK_ARG(c.test_samples <= d.test.count, rank,
                    "--test-samples " + std::to_string(c.test_samples) + " exceeds the " +
                        std::to_string(d.test.count) + " test samples in '" + c.data_dir + "'");
  truncate(d.train, c.train_samples);
  truncate(d.test, c.test_samples);
  const auto n = fashion_mnist_normalization();
  normalize(d.train, n);
  normalize(d.test, n);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Trainer state
// ---------------------------------------------------------------------------------------------
struct Trainer::State {
  int rank = 0;
  int world = 1;
  std::uint32_t data_crc = 0;
  std::unique_ptr<Model> model;
  Dataset train;  // this rank's part, in partition order
  Dataset test;   // this rank's contiguous slice of the test set
  std::uint32_t part_crc = 0;
  std::unique_ptr<BatchIterator> iter;
  Batch batch;
  std::vector<float> x, g, eval_x;  // eval_x: def-a's virtual model (--eval-virtual) only
  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<optim::Schedule> schedule;
  std::uint64_t eval_every = 0;  // resolved: 0 = only at the end
  std::uint64_t end_step = 0;

  // Since the last evaluation, this rank: sum of minibatch losses, correct predictions, samples, steps.
  double acc_loss = 0, acc_correct = 0, acc_samples = 0, acc_steps = 0;
  // Run totals for the RCC (the same on every rank: elements_up_all and elements_down are global).
  double up_all = 0, down = 0, dense = 0;

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
  double last_test_loss = std::numeric_limits<double>::quiet_NaN();
  double last_test_acc = std::numeric_limits<double>::quiet_NaN();

  double wall_now() const { return wall_base + seconds(Clock::now() - run_start); }
};

Trainer::Trainer(comm::Backend& backend, TrainConfig config, const DataSplit& data)
    : backend_(backend), config_(std::move(config)), s_(std::make_unique<State>()), out_(&std::cout) {
  State& s = *s_;
  s.rank = backend_.rank();
  s.world = backend_.size();
  const int r = s.rank, K = s.world;
  validate_config(config_, K, r);
  SPARCOL_CHECK_ARG(data.train.count >= static_cast<std::size_t>(K), r,
                    "the training set has " + std::to_string(data.train.count) + " samples, fewer than the " +
                        std::to_string(K) + " workers");
  SPARCOL_CHECK_ARG(data.test.count >= 1, r, "the test set is empty");
  // Record the sizes actually used, so that the canonical configuration is explicit.
  config_.train_samples = data.train.count;
  config_.test_samples = data.test.count;
  s.data_crc = data_crc(data);
  config_text_ = canonical_config(config_, K, s.data_crc);

  // Model and initial point (the same on every rank: a pure function of the seed).
  ModelOptions mo;
  mo.input = data.train.shape;
  mo.num_classes = data.train.num_classes;
  mo.norm = parse_norm_kind(config_.norm);
  mo.synthetic_params = config_.params;
  s.model = make_model(config_.model, mo);
  s.x.resize(s.model->num_params());
  s.g.resize(s.x.size());
  s.model->init(s.x, config_.seed);

  // This rank's part of the training set and slice of the test set.
  PartitionOptions po;
  po.kind = parse_partition_kind(config_.partition);
  po.alpha = config_.dirichlet_alpha;
  po.seed = config_.seed;
  po.dirichlet_group = config_.dirichlet_group;
  Partition partition;
  try {
    partition = make_partition(data.train, K, po);
  } catch (const Error& e) {
    throw Error(e.code(), r, "--partition " + config_.partition + ": " + e.message());
  }
  const auto& part = partition.parts[static_cast<std::size_t>(r)];
  s.part_crc = crc_bytes(static_cast<std::uint32_t>(crc32(0L, Z_NULL, 0)), part.data(),
                         part.size() * sizeof(std::uint32_t));
  s.train = subset(data.train, part);
  const std::size_t t0 = data.test.count * static_cast<std::size_t>(r) / static_cast<std::size_t>(K);
  const std::size_t t1 = data.test.count * static_cast<std::size_t>(r + 1) / static_cast<std::size_t>(K);
  std::vector<std::uint32_t> test_idx(t1 - t0);
  std::iota(test_idx.begin(), test_idx.end(), static_cast<std::uint32_t>(t0));
  s.test = subset(data.test, test_idx);

  BatchIteratorOptions bo;
  bo.batch_size = config_.batch;
  bo.augment = config_.augment;
  bo.seed = config_.seed;
  bo.rank = r;
  std::vector<std::uint32_t> local(s.train.count);
  std::iota(local.begin(), local.end(), 0u);
  s.iter = std::make_unique<BatchIterator>(s.train, std::move(local), bo);

  // Optimizer over the model's tensors (layer-wise compression and exclusions need them).
  optim::Layout layout;
  for (const auto& t : s.model->tensors()) {
    layout.tensors.push_back({t.name, t.offset, t.size, static_cast<int>(t.shape.size())});
  }
  optim::OptimConfig oc;
  oc.method = config_.optimizer;
  oc.momentum = config_.momentum;
  oc.weight_decay = config_.weight_decay;
  oc.alpha = config_.alpha;
  oc.exchange.compressor.name = config_.compressor;
  oc.exchange.compressor.density = config_.density;
  oc.exchange.layerwise = config_.layerwise;
  oc.exchange.min_compress_size = config_.min_compress_size;
  oc.exchange.seed = config_.seed;
  oc.clip_norm = config_.clip_norm;
  oc.warmup_epochs = config_.warmup_epochs;
  oc.nesterov = config_.nesterov;
  oc.wd_outside = config_.wd_outside;
  oc.cser_c1 = {config_.compressor, cser_density1(config_)};
  oc.cser_c2 = {config_.compressor, cser_density2(config_)};
  oc.cser_period = config_.cser_period;
  oc.nan_policy = config_.nan_policy == "stop" ? optim::NanPolicy::kStop : optim::NanPolicy::kSkip;
  s.opt = optim::make_optimizer(backend_, layout, oc);

  // Steps: an epoch is one pass over the training set by all workers together.
  steps_per_epoch_ =
      std::max<std::uint64_t>(1, data.train.count / (static_cast<std::uint64_t>(K) * config_.batch));
  total_steps_ = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::llround(config_.epochs * static_cast<double>(steps_per_epoch_))));
  s.end_step = config_.max_steps > 0 ? std::min(total_steps_, config_.max_steps) : total_steps_;
  optim::ScheduleConfig sc;
  sc.kind = config_.schedule;
  sc.lr = config_.lr;
  sc.milestones = config_.milestones;
  sc.gamma = config_.gamma;
  sc.total_epochs = config_.epochs;
  s.schedule = std::make_unique<optim::Schedule>(sc, steps_per_epoch_);
  s.eval_every = config_.eval_every < 0 ? steps_per_epoch_ : static_cast<std::uint64_t>(config_.eval_every);
}

Trainer::~Trainer() = default;

std::span<const float> Trainer::params() const {
  return s_->x;
}
std::size_t Trainer::num_params() const {
  return s_->x.size();
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------
void Trainer::load_checkpoint(const std::string& checkpoint_dir) {
  State& s = *s_;
  const int r = s.rank;
  const std::string path = (fs::path(checkpoint_dir) / rank_file_name(r)).string();
  const CheckpointData d = read_checkpoint_file(path, r);
  const std::string who = "checkpoint '" + path + "'";
  const auto world = d.get_u64("world_size");
  SPARCOL_CHECK_ARG(world == static_cast<std::uint64_t>(s.world), r,
                    who + " was written by a run on " + std::to_string(world) + " ranks; this run has " +
                        std::to_string(s.world));
  SPARCOL_CHECK(d.get_u64("rank") == static_cast<std::uint64_t>(r), ErrorCode::kIo, r,
                who + " belongs to rank " + std::to_string(d.get_u64("rank")));
  const std::string diff = config_difference(d.get_string("config"), config_text_);
  SPARCOL_CHECK_ARG(diff.empty(), r,
                    who + " was written by another configuration (" + diff +
                        " in this run); resume with the same flags, or start afresh");
  const auto step = d.get_u64("step");
  SPARCOL_CHECK(step == checkpoint_step(checkpoint_dir, r), ErrorCode::kIo, r,
                who + " holds step " + std::to_string(step) + ", but its directory names another step");
  SPARCOL_CHECK(d.get_u64("part_crc") == s.part_crc, ErrorCode::kIo, r,
                who + ": this rank's part of the training set differs from the checkpoint's");

  d.get_f32_into("params", s.x);
  d.get_f32_into("buffers", s.model->buffers());
  for (auto& b : s.opt->state()) d.get_f32_into("opt." + b.name, b.data);
  s.opt->set_skipped_steps(d.get_u64("skipped_steps"));
  BatchIteratorState st;
  st.epoch = d.get_u64("iter.epoch");
  st.position = d.get_u64("iter.position");
  st.seed = d.get_u64("iter.seed");
  st.part_size = d.get_u64("iter.part_size");
  try {
    s.iter->restore(st);
  } catch (const Error& e) {
    throw Error(ErrorCode::kIo, r, who + ": batch order: " + e.message());
  }
  s.acc_loss = d.get_f64("acc.loss");
  s.acc_correct = d.get_f64("acc.correct");
  s.acc_samples = d.get_f64("acc.samples");
  s.acc_steps = d.get_f64("acc.steps");
  s.up_all = d.get_f64("total.elements_up_all");
  s.down = d.get_f64("total.elements_down");
  s.dense = d.get_f64("total.dense_elements");
  s.wall_base = d.get_f64("wall_time_s");
  step_ = step;
  s.resumed_from = checkpoint_dir;
}

void Trainer::checkpoint(std::uint64_t completed) {
  State& s = *s_;
  const std::string& dir = config_.checkpoint_dir;
  if (s.rank == 0) {
    const std::string staging = begin_checkpoint(dir, completed);
    if (s.trace) {
      // The copy lets a resume restore a trace that was lost or damaged after this checkpoint. After
      // a flush the file on disk is complete (TraceWriter replaces it whole).
      s.trace->flush();
      copy_file_durably(config_.trace, (fs::path(staging) / "trace.h5").string(), 0);
    }
  }
  backend_.barrier();  // the staging directory exists

  CheckpointData d;
  d.put_string("config", config_text_);
  d.put_u64("world_size", static_cast<std::uint64_t>(s.world));
  d.put_u64("rank", static_cast<std::uint64_t>(s.rank));
  d.put_u64("step", completed);
  d.put_u64("skipped_steps", s.opt->skipped_steps());
  const auto st = s.iter->state();
  d.put_u64("iter.epoch", st.epoch);
  d.put_u64("iter.position", st.position);
  d.put_u64("iter.seed", st.seed);
  d.put_u64("iter.part_size", st.part_size);
  d.put_u64("part_crc", s.part_crc);
  d.put_f32("params", s.x);
  d.put_f32("buffers", s.model->buffers());
  for (const auto& b : s.opt->state()) d.put_f32("opt." + b.name, b.data);
  d.put_f64("acc.loss", s.acc_loss);
  d.put_f64("acc.correct", s.acc_correct);
  d.put_f64("acc.samples", s.acc_samples);
  d.put_f64("acc.steps", s.acc_steps);
  d.put_f64("total.elements_up_all", s.up_all);
  d.put_f64("total.elements_down", s.down);
  d.put_f64("total.dense_elements", s.dense);
  d.put_f64("wall_time_s", s.wall_now());
  write_checkpoint_file((fs::path(staging_path(dir, completed)) / rank_file_name(s.rank)).string(), d,
                        s.rank);
  backend_.barrier();  // every rank's file is durable

  if (s.rank == 0) {
    commit_checkpoint(dir, completed, config_.keep_checkpoints);
    if (!config_.quiet && out_) {
      *out_ << "checkpoint " << (fs::path(dir) / checkpoint_name(completed)).string() << std::endl;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------
void Trainer::check_outputs() {
  State& s = *s_;
  const int r = s.rank;
  if (!config_.checkpoint_dir.empty()) {
    std::error_code ec;
    const fs::path dir(config_.checkpoint_dir);
    if (fs::exists(dir, ec)) {
      SPARCOL_CHECK(fs::is_directory(dir, ec), ErrorCode::kIo, r,
                    "--checkpoint: '" + config_.checkpoint_dir + "' is not a directory");
      SPARCOL_CHECK(::access(dir.c_str(), W_OK) == 0, ErrorCode::kIo, r,
                    "--checkpoint: directory '" + config_.checkpoint_dir + "' is not writable");
    } else {
      const std::string why = unwritable_reason(config_.checkpoint_dir);
      SPARCOL_CHECK(why.empty(), ErrorCode::kIo, r, "--checkpoint: " + why);
    }
  }
  if (r != 0) return;
  if (!config_.save_params.empty()) {
    const std::string why = unwritable_reason(config_.save_params);
    SPARCOL_CHECK(why.empty(), ErrorCode::kIo, r, "--save-params: " + why);
  }
  if (config_.trace.empty()) return;
  const std::string& path = config_.trace;
  const std::string why = unwritable_reason(path);
  SPARCOL_CHECK(why.empty(), ErrorCode::kIo, r, "--trace: " + why);
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (s.resumed_from.empty()) {
    SPARCOL_CHECK(
        !exists || config_.overwrite, ErrorCode::kIo, r,
        "--trace: '" + path + "' exists; pass --overwrite to replace it, or --resume to continue it");
    return;
  }
  if (!exists) return;
  const TraceInfo info = inspect_trace(path);
  if (info.readable) {
    const std::string diff = config_difference(info.config, config_text_);
    SPARCOL_CHECK_ARG(diff.empty(), r,
                      "--trace: '" + path + "' was written by another configuration (" + diff +
                          " in this run); use another --trace");
  }
  const bool copy = fs::exists(fs::path(s.resumed_from) / "trace.h5", ec);
  const bool usable = info.readable && info.last_step >= static_cast<std::int64_t>(step_);
  SPARCOL_CHECK(
      usable || copy, ErrorCode::kIo, r,
      "--trace: '" + path + "' " +
          (info.readable ? "ends at step " + std::to_string(info.last_step) + ", before the checkpoint's"
                         : "is unreadable (" + info.error + ")") +
          ", and checkpoint '" + s.resumed_from + "' holds no copy of the trace");
}

void Trainer::open_trace() {
  State& s = *s_;
  if (s.rank != 0 || config_.trace.empty()) return;
  const std::string& path = config_.trace;
  const auto step = static_cast<std::int64_t>(step_);
  std::error_code ec;
  // Resuming into an existing trace continues it (rows past the checkpoint dropped); a damaged or
  // short one is first restored from the checkpoint's copy. A trace that does not exist yet (a
  // resubmitted job writing into a new directory) starts afresh at the checkpoint's step.
  if (!s.resumed_from.empty() && fs::exists(path, ec)) {
    const TraceInfo info = inspect_trace(path);
    if (info.readable && info.last_step >= step) {
      s.trace = std::make_unique<TraceWriter>(TraceWriter::resume(path, config_text_, step));
      return;
    }
    const std::string copy = (fs::path(s.resumed_from) / "trace.h5").string();
    const std::string what = info.readable ? "ends at step " + std::to_string(info.last_step) +
                                                 ", before the checkpoint's step " + std::to_string(step)
                                           : "is unreadable (" + info.error + ")";
    SPARCOL_CHECK(fs::exists(copy, ec), ErrorCode::kIo, 0,
                  "--trace: '" + path + "' " + what + ", and checkpoint '" + s.resumed_from +
                      "' holds no copy of the trace");
    warn(0, "trace '" + path + "' " + what + "; restoring it from the copy in '" + s.resumed_from + "'");
    copy_file_durably(copy, path, 0);
    s.trace = std::make_unique<TraceWriter>(TraceWriter::resume(path, config_text_, step));
    return;
  }
  std::vector<TraceAttribute> a;
  auto i64 = [](auto v) { return TraceValue(static_cast<std::int64_t>(v)); };
  const bool dense = is_dense(config_);
  a.push_back({"program", std::string("sparcol-train")});
  a.push_back({"version", std::string(SPARCOL_VERSION_STRING)});
  a.push_back({"config", config_text_});
  a.push_back({"model", config_.model});
  a.push_back({"num_params", i64(s.x.size())});
  a.push_back({"norm", config_.model == "resnet20" ? config_.norm : std::string("none")});
  a.push_back({"data", config_.model == "synthetic" ? std::string("synthetic") : config_.data_dir});
  a.push_back({"train_samples", i64(config_.train_samples)});
  a.push_back({"test_samples", i64(config_.test_samples)});
  a.push_back({"partition", config_.partition});
  a.push_back({"dirichlet_alpha", config_.dirichlet_alpha});
  a.push_back({"augment", i64(config_.augment)});
  a.push_back({"optimizer", config_.optimizer});
  a.push_back({"compressor", dense ? std::string("none") : config_.compressor});
  a.push_back({"density", dense ? 1.0 : config_.density});
  a.push_back({"layerwise", i64(config_.layerwise)});
  a.push_back({"alpha", s.opt->alpha()});
  a.push_back({"momentum", config_.momentum});
  a.push_back({"weight_decay", config_.weight_decay});
  a.push_back({"lr", config_.lr});
  a.push_back({"schedule", config_.schedule});
  a.push_back({"epochs", config_.epochs});
  a.push_back({"batch", i64(config_.batch)});
  a.push_back({"world_size", i64(s.world)});
  a.push_back({"seed", i64(config_.seed)});
  a.push_back({"steps_per_epoch", i64(steps_per_epoch_)});
  a.push_back({"total_steps", i64(total_steps_)});
  a.push_back({"eval_every", i64(s.eval_every)});
  a.push_back({"first_step", i64(step_)});
  a.push_back({"completed_steps", i64(step_)});
  a.push_back({"skipped_steps", i64(s.opt->skipped_steps())});
  a.push_back({"rcc", s.dense > 0 ? (s.up_all + s.down) / s.dense : 0.0});
  a.push_back({"wall_time_s", s.wall_base});
  s.trace = std::make_unique<TraceWriter>(TraceWriter::create(path, a));
}

void Trainer::write_trace() {
  State& s = *s_;
  if (s.rank != 0 || !s.trace) return;
  s.trace->append(s.rows);
  for (const auto& e : s.eval_rows) s.trace->append(e);
  s.rows.clear();
  s.eval_rows.clear();
  s.trace->set_attribute({"completed_steps", static_cast<std::int64_t>(step_)});
  s.trace->set_attribute({"skipped_steps", static_cast<std::int64_t>(s.opt->skipped_steps())});
  s.trace->set_attribute({"rcc", s.dense > 0 ? (s.up_all + s.down) / s.dense : 0.0});
  s.trace->set_attribute({"wall_time_s", s.wall_now()});
  s.trace->flush();
}

// Averages the per-rank values of the pending steps over ranks (in rank order, so the result does
// not depend on timing) and hands them to rank 0.
void Trainer::gather_rows() {
  State& s = *s_;
  const std::size_t rows = s.pending_shared.size();
  if (rows == 0) return;
  const auto K = static_cast<std::size_t>(s.world);
  const std::size_t per_rank = rows * kLocalFields;
  std::vector<double> all(K * per_rank);
  const std::vector<std::size_t> bytes(K, per_rank * sizeof(double));
  backend_.allgatherv(s.pending_local.data(), all.data(), bytes);
  if (s.rank == 0) {
    for (std::size_t i = 0; i < rows; ++i) {
      double mean[kLocalFields] = {};
      for (std::size_t r = 0; r < K; ++r) {
        for (std::size_t f = 0; f < kLocalFields; ++f) mean[f] += all[r * per_rank + i * kLocalFields + f];
      }
      for (double& m : mean) m /= static_cast<double>(K);
      TraceStepRow row = s.pending_shared[i];
      row.loss = mean[kLoss];
      row.accuracy = mean[kAccuracy];
      row.bytes_sent = mean[kBytesSent];
      row.bytes_recv = mean[kBytesRecv];
      row.elements_up = mean[kElementsUp];
      row.time_compute_s = mean[kTimeCompute];
      row.time_compress_s = mean[kTimeCompress];
      row.time_comm_s = mean[kTimeComm];
      row.time_step_s = mean[kTimeStep];
      s.prog_loss += row.loss;
      s.prog_acc += row.accuracy;
      s.prog_rows += 1;
      if (!config_.trace.empty()) s.rows.push_back(row);
    }
  }
  s.pending_local.clear();
  s.pending_shared.clear();
}

void Trainer::print_progress(std::uint64_t completed) {
  State& s = *s_;
  if (s.rank != 0 || config_.quiet || out_ == nullptr || s.prog_rows == 0) return;
  const auto now = Clock::now();
  const double dt = seconds(now - s.prog_time);
  const double samples = static_cast<double>((completed - s.prog_step) * config_.batch) * s.world;
  char buf[256];
  const double elapsed = seconds(now - s.run_start);
  const double steps_here = static_cast<double>(completed - s.first_step);
  const double eta =
      steps_here > 0 ? elapsed / steps_here * static_cast<double>(s.end_step - completed) : -1.0;
  std::snprintf(buf, sizeof buf, "step %llu/%llu epoch %.2f loss %.4f acc %.2f%% %.0f samples/s ETA %s",
                static_cast<unsigned long long>(completed), static_cast<unsigned long long>(s.end_step),
                static_cast<double>(completed) / static_cast<double>(steps_per_epoch_),
                s.prog_loss / s.prog_rows, 100.0 * s.prog_acc / s.prog_rows, dt > 0 ? samples / dt : 0.0,
                format_duration(eta).c_str());
  *out_ << buf << std::endl;
  s.prog_loss = s.prog_acc = s.prog_rows = 0;
  s.prog_step = completed;
  s.prog_time = now;
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------------
TrainSummary Trainer::run() {
  State& s = *s_;
  open_trace();
  s.run_start = Clock::now();
  s.prog_time = s.run_start;
  s.prog_step = step_;
  const std::uint64_t first = step_;
  s.first_step = first;
  const auto B = static_cast<double>(config_.batch);
  if (s.rank == 0 && !config_.quiet && out_) {
    *out_ << "sparcol-train: " << config_.model << " (" << s.x.size() << " parameters), " << config_.optimizer
          << (is_dense(config_) ? std::string() : " with " + config_.compressor + " " + num(config_.density))
          << ", " << s.world << " ranks x batch " << config_.batch << ", " << steps_per_epoch_
          << " steps per epoch, " << total_steps_ << " steps";
    if (!s.resumed_from.empty()) *out_ << ", resumed at step " << step_ << " from " << s.resumed_from;
    *out_ << std::endl;
  }

  for (std::uint64_t t = step_; t < s.end_step; ++t) {
    const auto t_begin = Clock::now();
    const double lr = s.schedule->lr(t);
    const double epoch = static_cast<double>(t) / static_cast<double>(steps_per_epoch_);
    s.iter->next(s.batch);
    const auto t_c0 = Clock::now();
    const auto z = s.opt->gradient_point(s.x, lr);
    const double loss = s.model->forward_backward(z, s.batch.view(), s.g);
    const double correct = static_cast<double>(s.model->last_batch_correct());
    const auto t_c1 = Clock::now();
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
    const double local[kLocalFields] = {loss,
                                        correct / B,
                                        static_cast<double>(st.comm.bytes_sent),
                                        static_cast<double>(st.comm.bytes_recv),
                                        st.comm.elements_up,
                                        t_compute,
                                        st.comm.time_compress_s,
                                        st.comm.time_comm_s,
                                        seconds(t_end - t_begin)};
    s.pending_local.insert(s.pending_local.end(), local, local + kLocalFields);
    TraceStepRow shared;
    shared.step = static_cast<std::int64_t>(completed);
    shared.epoch = static_cast<double>(completed) / static_cast<double>(steps_per_epoch_);
    shared.lr = lr;
    shared.elements_down = st.comm.elements_down;
    shared.skipped = st.skipped ? 1 : 0;
    shared.wall_time_s = s.wall_now();
    s.pending_shared.push_back(shared);
    if (st.skipped && s.rank == 0) {
      // The first skips one by one, then every 1000th: a diverged run skips every step from then on.
      const std::uint64_t n = s.opt->skipped_steps();
      if (n <= 10 || n % 1000 == 0) {
        std::string ranks;
        for (int r : st.bad_ranks) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
        warn(0, "step " + std::to_string(completed) + " skipped: non-finite gradient on rank(s) " + ranks +
                    " (" + std::to_string(n) + " skipped so far" +
                    (n == 10 ? "; from now on every 1000th is reported" : "") + ")");
      }
    }
    if (config_.step_delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(config_.step_delay_ms));
    }

    // What happens after this step depends only on the step number, so every rank agrees.
    const bool end = completed == s.end_step;
    const bool progress = config_.progress_every > 0 && completed % config_.progress_every == 0;
    const bool eval = end || (s.eval_every > 0 && completed % s.eval_every == 0);
    const bool epoch_end = completed % steps_per_epoch_ == 0;
    const bool ckpt = !config_.checkpoint_dir.empty() &&
                      (end || (config_.checkpoint_every > 0 && completed % config_.checkpoint_every == 0));
    if (progress || eval || epoch_end || ckpt) gather_rows();
    if (progress) print_progress(completed);
    if (eval) evaluate(completed);
    if (eval || epoch_end || ckpt) write_trace();
    if (ckpt) checkpoint(completed);
  }
  if (step_ == first && s.rank == 0 && !config_.quiet && out_) {
    *out_ << "nothing to do: the run is at step " << step_ << " of " << s.end_step << std::endl;
  }
  if (s.rank == 0 && s.trace) s.trace->close();
  if (s.rank == 0 && !config_.save_params.empty()) {
    const auto* p = reinterpret_cast<const char*>(s.x.data());
    write_file_durably(config_.save_params, std::string(p, p + s.x.size() * sizeof(float)), 0);
  }

  TrainSummary sum;
  sum.start_step = first;
  sum.steps = step_;
  sum.total_steps = total_steps_;
  sum.skipped_steps = s.opt->skipped_steps();
  sum.test_loss = s.last_test_loss;
  sum.test_accuracy = s.last_test_acc;
  sum.rcc = s.dense > 0 ? (s.up_all + s.down) / s.dense : 0.0;
  sum.wall_time_s = s.wall_now();
  if (s.rank == 0 && !config_.quiet && out_ && step_ > first) {
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "done: step %llu/%llu, test accuracy %.2f%%, test loss %.4f, RCC %.4f%%, %.1f s "
                  "(rank 0: compute %.1f s, compress %.1f s, communication %.1f s, evaluation %.1f s)",
                  static_cast<unsigned long long>(step_), static_cast<unsigned long long>(total_steps_),
                  100.0 * sum.test_accuracy, sum.test_loss, 100.0 * sum.rcc,
                  seconds(Clock::now() - s.run_start), s.t_compute, s.t_compress, s.t_comm, s.t_eval);
    *out_ << buf;
    if (sum.skipped_steps > 0) *out_ << "; " << sum.skipped_steps << " steps skipped (non-finite gradients)";
    *out_ << std::endl;
  }
  return sum;
}

}  // namespace sparcol::train
