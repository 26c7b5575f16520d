// The trainer's setup (include/sparcol/train/trainer.hpp): the data, this rank's part of them, the
// model and its initial point, the optimizer and the schedule. No communication.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>

#include "sparcol/core/error.hpp"
#include "sparcol/train/options.hpp"
#include "sparcol/train/partition.hpp"

#include "trainer_state.hpp"

namespace sparcol::train {

namespace {

// Synthetic task sizes when --train-samples / --test-samples are not given.
constexpr std::uint64_t kSyntheticTrain = 16384;
constexpr std::uint64_t kSyntheticTest = 4096;
constexpr int kSyntheticLatent = 32;

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
  mo.dropit_gamma = config_.dropit;
  mo.dropit_layers = parse_dropit_layers(config_.dropit_layers);
  s.model = config_.device == "cuda" ? make_gpu_model(config_.model, mo) : make_model(config_.model, mo);
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
    layout.tensors.push_back({t.name, t.offset, t.size, static_cast<int>(t.shape.size()),
                              t.shape.size() > 1 ? static_cast<std::uint64_t>(t.shape[0]) : 0});
    layout.rows.push_back(t.shape.empty() ? 0 : static_cast<std::uint64_t>(t.shape[0]));
  }
  optim::OptimConfig oc;
  oc.method = config_.optimizer;
  oc.momentum = config_.momentum;
  oc.weight_decay = config_.weight_decay;
  oc.alpha = config_.alpha;
  const bool sign_ring = config_.optimizer == "marsit" || config_.optimizer == "sign-cascade";
  oc.exchange.compressor.name = sign_ring ? "sign" : config_.compressor;
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
  oc.marsit_compensation = config_.marsit_compensation;
  oc.low_rank = resolved_low_rank(config_);
  oc.powersgd_error_feedback = !config_.powersgd_no_ef;
  oc.powersgd_warm_start = !config_.powersgd_no_warm_start;
  oc.powersgd_error_form_paper = config_.powersgd_error_form == "paper";
  oc.liec_down = {config_.down_compressor,
                  config_.down_compressor == "none" ? 1.0 : resolved_down_density(config_)};
  oc.topology = config_.topology;
  oc.power_iters = config_.power_iters;
  oc.diffusion_rate = config_.diffusion_rate;
  oc.relay_variant = config_.relay_variant;
  oc.comm_rate = config_.comm_rate;
  oc.comm_schedule = config_.comm_schedule;
  oc.acid_order = config_.acid_order;
  oc.nan_policy = config_.nan_policy == "stop" ? optim::NanPolicy::kStop : optim::NanPolicy::kSkip;
  // Steps: an epoch is one pass over the training set by all workers together.
  steps_per_epoch_ =
      std::max<std::uint64_t>(1, data.train.count / (static_cast<std::uint64_t>(K) * config_.batch));
  total_steps_ = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::llround(config_.epochs * static_cast<double>(steps_per_epoch_))));
  if (optim::method_is_local(config_.optimizer)) {
    oc.exchange.compressor.name = config_.avg_compressor;
    oc.exchange.compressor.density = config_.avg_compressor == "none" ? 1.0 : config_.avg_density;
    oc.period = config_.period;
    oc.stl_stages = config_.stl_stages;
    oc.stl_iid = config_.stl_data == "iid";
    oc.total_steps = total_steps_;
  }
  // The asynchronous methods end their protocol in the run's last step.
  if (optim::method_is_async(config_.optimizer))
    oc.total_steps = config_.max_steps > 0 ? std::min(total_steps_, config_.max_steps) : total_steps_;
  s.opt = optim::make_optimizer(backend_, layout, oc);
  s.per_worker = s.opt->per_worker_models();
  if (s.per_worker) s.test_all = data.test;
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

}  // namespace sparcol::train
