// The configuration of sparcol-train (include/sparcol/train/options.hpp): the table of options and who
// reads them, and what is derived from it (validation, presets, the canonical text).
#include "sparcol/train/options.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include "sparcol/compress/compressor.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/optim/optimizer.hpp"
#include "sparcol/topo/acid.hpp"
#include "sparcol/topo/graph.hpp"
#include "sparcol/train/model.hpp"

namespace sparcol::train {

namespace {

// Shortest text that reads back as the same double.
std::string num(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string boolean(bool v) {
  return v ? "1" : "0";
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// The methods that compress (all but the dense ones), those that take weight decay outside the
// compression (the library refuses it for gmc, gmc-plus and cser), and the image models.
const std::vector<std::string> kCompressing{"ef-sgd", "ef-sgdm",  "dgc",   "dgc-mfm",
                                            "gmc",    "gmc-plus", "def-a", "cser"};
const std::vector<std::string> kWdOutside{"dmsgd",   "dmsgd-local", "ef-sgd", "ef-sgdm",  "dgc",
                                          "dgc-mfm", "def-a",       "dpsgd",  "relaysgd", "powergossip"};
const std::vector<std::string> kDgc{"dgc", "dgc-mfm"};
// The sign-ring methods (issue 13) always send scaled signs: they read the grouping options
// (--layerwise, --min-compress-size) but not --compressor or --density.
const std::vector<std::string> kSignRing{"marsit", "sign-cascade"};
std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
// The methods with a model per rank averaged every --period steps (docs/optimizers.md).
const std::vector<std::string> kLocal{"local-sgd", "vrl-sgd", "stl-sgd", "cocod-sgd"};
// Those whose averaging may be compressed.
const std::vector<std::string> kLocalAveraging{"local-sgd", "vrl-sgd", "stl-sgd"};
const std::vector<std::string> kDecentralized{"dpsgd", "relaysgd", "powergossip", "a2cid2", "async-gossip"};
const std::vector<std::string> kAsync{"a2cid2", "async-gossip"};
const std::vector<std::string> kImageModels{"mlp", "cnn", "resnet20"};

// The detach coefficient a method uses (OptimConfig::alpha: gmc-plus 0.5, def-a 0.3 by default).
double resolved_alpha(const TrainConfig& c) {
  if (c.alpha >= 0) return c.alpha;
  return c.optimizer == "gmc-plus" ? 0.5 : 0.3;
}

std::string flag_of(ReadBy r) {
  switch (r) {
    case ReadBy::kMethod:
      return "--optimizer";
    case ReadBy::kModel:
      return "--model";
    case ReadBy::kPartition:
      return "--partition";
    case ReadBy::kSchedule:
      return "--schedule";
    case ReadBy::kAll:
      break;
  }
  return {};
}

const std::string& choice_of(ReadBy r, const TrainConfig& c) {
  switch (r) {
    case ReadBy::kMethod:
      return c.optimizer;
    case ReadBy::kModel:
      return c.model;
    case ReadBy::kPartition:
      return c.partition;
    case ReadBy::kSchedule:
      return c.schedule;
    case ReadBy::kAll:
      break;
  }
  static const std::string none;
  return none;
}

std::vector<TrainOption> make_table() {
  using C = const TrainConfig&;
  const auto all = ReadBy::kAll;
  const auto method = ReadBy::kMethod;
  const auto model = ReadBy::kModel;
  const auto partition = ReadBy::kPartition;
  const auto schedule = ReadBy::kSchedule;
  auto u64 = [](std::uint64_t v) { return std::to_string(v); };
  return {
      // Model and data
      {"--model", all, {}, "model", [](C c) { return c.model; }},
      {"--params", model, {"synthetic"}, "params", [=](C c) { return u64(c.params); }},
      {"--norm",
       model,
       {"resnet20"},
       "norm",
       [](C c) { return std::string(c.norm == "bn" || c.norm == "batchnorm" ? "bn" : "gn"); }},
      {"--data", model, kImageModels, "", {}},  // the data themselves are recorded as data_crc
      {"--train-samples", all, {}, "train_samples", [=](C c) { return u64(c.train_samples); }},
      {"--test-samples", all, {}, "test_samples", [=](C c) { return u64(c.test_samples); }},
      {"--partition", all, {}, "partition", [](C c) { return c.partition; }},
      {"--dirichlet-alpha",
       partition,
       {"dirichlet"},
       "dirichlet_alpha",
       [](C c) { return num(c.dirichlet_alpha); }},
      {"--dirichlet-group",
       partition,
       {"dirichlet"},
       "dirichlet_group",
       [](C c) { return std::to_string(c.dirichlet_group); }},
      {"--augment", model, kImageModels, "augment", [](C c) { return boolean(c.augment); }},
      // DropIT: recorded only when on (an empty value leaves the key out), so that runs without it
      // keep their canonical text.
      {"--dropit", model, kImageModels, "dropit", [](C c) { return c.dropit > 0 ? num(c.dropit) : ""; }},
      {"--dropit-layers", model, kImageModels, "dropit_layers",
       [](C c) { return c.dropit > 0 ? c.dropit_layers : std::string(); }},
      // Optimizer
      {"--optimizer", all, {}, "optimizer", [](C c) { return c.optimizer; }},
      {"--compressor", method, with(kCompressing, {"liec"}), "compressor", [](C c) { return c.compressor; }},
      {"--density", method, with(kCompressing, {"liec"}), "density", [](C c) { return num(c.density); }},
      {"--layerwise", method, with(kCompressing, kSignRing), "layerwise",
       [](C c) { return boolean(c.layerwise); }},
      {"--min-compress-size", method, with(kCompressing, kSignRing), "min_compress_size",
       [=](C c) { return u64(c.min_compress_size); }},
      {"--alpha", method, {"gmc-plus", "def-a"}, "alpha", [](C c) { return num(resolved_alpha(c)); }},
      {"--momentum",
       method,
       {"dmsgd",     "dmsgd-local", "ef-sgdm",  "dgc",         "dgc-mfm",   "gmc",         "gmc-plus",
        "def-a",     "cser",        "powersgd", "liec",        "local-sgd", "vrl-sgd",     "stl-sgd",
        "cocod-sgd", "dpsgd",       "relaysgd", "powergossip", "a2cid2",    "async-gossip"},
       "momentum",
       [](C c) { return num(c.momentum); }},
      {"--weight-decay", all, {}, "weight_decay", [](C c) { return num(c.weight_decay); }},
      {"--wd-outside", method, kWdOutside, "wd_outside", [](C c) { return boolean(c.wd_outside); }},
      {"--nan-policy", all, {}, "nan_policy", [](C c) { return c.nan_policy; }},
      {"--clip-norm", method, kDgc, "clip_norm", [](C c) { return num(c.clip_norm); }},
      {"--warmup-epochs", method, kDgc, "warmup_epochs", [](C c) { return std::to_string(c.warmup_epochs); }},
      {"--nesterov", method, kDgc, "nesterov", [](C c) { return boolean(c.nesterov); }},
      {"--cser-period", method, {"cser"}, "cser_period", [](C c) { return std::to_string(c.cser_period); }},
      {"--cser-density1", method, {"cser"}, "cser_density1", [](C c) { return num(cser_density1(c)); }},
      {"--cser-density2", method, {"cser"}, "cser_density2", [](C c) { return num(cser_density2(c)); }},
      {"--marsit-compensation",
       method,
       {"marsit"},
       "marsit_compensation",
       [](C c) { return c.marsit_compensation; }},
      {"--low-rank",
       method,
       {"powersgd", "powergossip"},
       "low_rank",
       [](C c) { return std::to_string(resolved_low_rank(c)); }},
      {"--powersgd-no-ef",
       method,
       {"powersgd"},
       "powersgd_no_ef",
       [](C c) { return boolean(c.powersgd_no_ef); }},
      {"--powersgd-no-warm-start",
       method,
       {"powersgd"},
       "powersgd_no_warm_start",
       [](C c) { return boolean(c.powersgd_no_warm_start); }},
      {"--powersgd-error-form",
       method,
       {"powersgd"},
       "powersgd_error_form",
       [](C c) { return c.powersgd_error_form; }},
      {"--down-compressor", method, {"liec"}, "down_compressor", [](C c) { return c.down_compressor; }},
      {"--down-density",
       method,
       {"liec"},
       "down_density",
       [](C c) { return c.down_compressor == "none" ? std::string("1") : num(resolved_down_density(c)); }},
      {"--period", method, kLocal, "period", [](C c) { return std::to_string(c.period); }},
      {"--stl-stages", method, {"stl-sgd"}, "stl_stages", [](C c) { return std::to_string(c.stl_stages); }},
      {"--stl-data", method, {"stl-sgd"}, "stl_data", [](C c) { return c.stl_data; }},
      {"--avg-compressor", method, kLocalAveraging, "avg_compressor", [](C c) { return c.avg_compressor; }},
      {"--avg-density", method, kLocalAveraging, "avg_density", [](C c) { return num(c.avg_density); }},
      {"--topology", method, kDecentralized, "topology",
       [](C c) { return c.topology.empty() ? optim::default_topology(c.optimizer) : c.topology; }},
      {"--power-iters",
       method,
       {"powergossip"},
       "power_iters",
       [](C c) { return std::to_string(c.power_iters); }},
      {"--diffusion-rate",
       method,
       {"powergossip"},
       "diffusion_rate",
       [](C c) { return num(c.diffusion_rate); }},
      {"--relay-variant", method, {"relaysgd"}, "relay_variant", [](C c) { return c.relay_variant; }},
      {"--comm-rate", method, kAsync, "comm_rate", [](C c) { return num(c.comm_rate); }},
      {"--comm-schedule", method, kAsync, "comm_schedule", [](C c) { return c.comm_schedule; }},
      {"--acid-order", method, {"a2cid2"}, "acid_order", [](C c) { return c.acid_order; }},
      // Schedule
      {"--lr", all, {}, "lr", [](C c) { return num(c.lr); }},
      {"--schedule", all, {}, "schedule", [](C c) { return c.schedule; }},
      {"--milestones",
       schedule,
       {"step"},
       "milestones",
       [](C c) {
         std::string m;
         for (double v : c.milestones) m += (m.empty() ? "" : ",") + num(v);
         return m;
       }},
      {"--gamma", schedule, {"step"}, "gamma", [](C c) { return num(c.gamma); }},
      {"--epochs", all, {}, "epochs", [](C c) { return num(c.epochs); }},
      {"--max-steps", all, {}, "", {}},  // a run stopped early can be continued
      {"--batch", all, {}, "batch", [=](C c) { return u64(c.batch); }},
      // Evaluation and outputs: they change no parameter
      {"--eval-every", all, {}, "", {}},
      {"--eval-batch", all, {}, "", {}},
      {"--eval-virtual", method, {"def-a"}, "", {}},
      {"--seed", all, {}, "seed", [=](C c) { return u64(c.seed); }},
      {"--trace", all, {}, "", {}},
      {"--overwrite", all, {}, "", {}},
      {"--checkpoint", all, {}, "", {}},
      {"--checkpoint-every", all, {}, "", {}},
      {"--keep-checkpoints", all, {}, "", {}},
      {"--save-params", all, {}, "", {}},
      {"--progress-every", all, {}, "", {}},
      {"--quiet", all, {}, "", {}},
      {"--step-delay", all, {}, "", {}},
      {"--device", all, {}, "", {}},
      {"--gpus-per-node", all, {}, "", {}},
  };
}

}  // namespace

double resolved_down_density(const TrainConfig& c) {
  return c.down_density > 0 ? c.down_density : c.density;
}

int resolved_low_rank(const TrainConfig& c) {
  if (c.low_rank > 0) return c.low_rank;
  return c.optimizer == "powergossip" ? 1 : 2;
}

double cser_density1(const TrainConfig& c) {
  return c.cser_density1 > 0 ? c.cser_density1 : c.density / 2;
}

double cser_density2(const TrainConfig& c) {
  return c.cser_density2 > 0 ? c.cser_density2 : std::min(1.0, 2 * c.density);
}

const std::vector<TrainOption>& train_options() {
  static const std::vector<TrainOption> table = make_table();
  return table;
}

const TrainOption* find_train_option(const std::string& flag) {
  for (const auto& o : train_options()) {
    if (o.flag == flag) return &o;
  }
  return nullptr;
}

bool reads(const TrainOption& o, const TrainConfig& c) {
  return o.read_by == ReadBy::kAll || contains(o.readers, choice_of(o.read_by, c));
}

std::string readers_text(const TrainOption& o) {
  if (o.read_by == ReadBy::kAll) return {};
  return flag_of(o.read_by) + " " + join(o.readers);
}

void check_options_read(const TrainConfig& c, const std::function<bool(const std::string& flag)>& given,
                        int rank) {
  for (const auto& o : train_options()) {
    if (!given(o.flag) || reads(o, c)) continue;
    throw Error(ErrorCode::kInvalidArgument, rank,
                o.flag + " applies to " + readers_text(o) + " only (this run: " + flag_of(o.read_by) + " " +
                    choice_of(o.read_by, c) + ")");
  }
}

// ---------------------------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------------------------
const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names{"gmc-paper"};
  return names;
}

void apply_preset(TrainConfig& c, const std::string& preset,
                  const std::function<bool(const std::string& flag)>& given) {
  SPARCOL_CHECK_ARG(contains(preset_names(), preset), -1,
                    "--preset: unknown preset '" + preset + "' (valid: " + join(preset_names()) + ")");
  // A preset sets what the configuration reads and the flags did not give.
  auto unset = [&](const char* flag) { return !given(flag) && reads(*find_train_option(flag), c); };
  // ALGORITHMS.md 12.1: momentum 0.9, weight decay 1e-4, cosine annealing without restarts or
  // warm-up, total batch 128 over 8 workers, k/d = 0.25% [P], eta_0 = 0.1 [P].
  if (unset("--momentum")) c.momentum = 0.9;
  if (unset("--weight-decay")) c.weight_decay = 1e-4;
  if (unset("--schedule")) c.schedule = "cosine";
  if (unset("--warmup-epochs")) c.warmup_epochs = 0;
  if (unset("--batch")) c.batch = 16;
  if (unset("--density")) c.density = 0.0025;
  if (unset("--lr")) c.lr = 0.1;
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------
void validate_config(const TrainConfig& c, int world_size, int rank,
                     const std::function<bool(const std::string& flag)>& given) {
  auto need = [&](bool ok, const std::string& what) { SPARCOL_CHECK_ARG(ok, rank, what); };
  auto finite = [](double v) { return std::isfinite(v); };
  need(world_size >= 1, "world size must be >= 1");
  // The names first (who reads an option depends on them), then the values, then who reads them.
  need(contains(model_names(), c.model),
       "--model: unknown model '" + c.model + "' (valid: " + join(model_names()) + ")");
  need(c.partition == "iid" || c.partition == "dirichlet" || c.partition == "shards",
       "--partition: unknown partition '" + c.partition + "' (valid: iid, dirichlet, shards)");
  need(contains(optim::method_names(), c.optimizer),
       "--optimizer: unknown method '" + c.optimizer + "' (valid: " + join(optim::method_names()) + ")");
  need(c.schedule == "constant" || c.schedule == "step" || c.schedule == "cosine",
       "--schedule: unknown schedule '" + c.schedule + "' (valid: constant, step, cosine)");
  need(c.model != "synthetic" || c.params >= 1, "--model synthetic needs --params N (N >= 1)");
  need(c.model == "synthetic" || c.params == 0, "--params applies to --model synthetic only");
  need(c.params < (std::uint64_t{1} << 32), "--params must be below 2^32, got " + std::to_string(c.params));
  need(c.norm == "gn" || c.norm == "bn" || c.norm == "groupnorm" || c.norm == "batchnorm",
       "--norm: unknown normalisation '" + c.norm + "' (valid: gn, bn)");
  need(c.dirichlet_alpha > 0 && finite(c.dirichlet_alpha),
       "--dirichlet-alpha must be > 0, got " + num(c.dirichlet_alpha));
  need(c.dirichlet_group >= 0, "--dirichlet-group must be >= 0");
  need(c.dropit >= 0 && c.dropit < 1, "--dropit must be in [0, 1), got " + num(c.dropit));
  need(c.dropit_layers == "hidden" || c.dropit_layers == "all",
       "--dropit-layers: unknown layer set '" + c.dropit_layers + "' (valid: hidden, all)");
  need(contains(compress::compressor_names(), c.compressor),
       "--compressor: unknown compressor '" + c.compressor +
           "' (valid: " + join(compress::compressor_names()) + ")");
  need(c.density > 0 && c.density <= 1, "--density must be in (0, 1], got " + num(c.density));
  need(c.alpha < 0 || c.alpha <= 1, "--alpha must be in [0, 1], got " + num(c.alpha));
  need(c.momentum >= 0 && c.momentum < 1, "--momentum must be in [0, 1), got " + num(c.momentum));
  need(c.weight_decay >= 0 && finite(c.weight_decay),
       "--weight-decay must be >= 0, got " + num(c.weight_decay));
  need(c.nan_policy == "skip" || c.nan_policy == "stop",
       "--nan-policy: unknown policy '" + c.nan_policy + "' (valid: skip, stop)");
  need(c.clip_norm >= 0 && finite(c.clip_norm), "--clip-norm must be >= 0");
  need(c.warmup_epochs >= 0, "--warmup-epochs must be >= 0");
  need(c.cser_period >= 1, "--cser-period must be >= 1");
  need(c.cser_density1 <= 0 || c.cser_density1 <= 1, "--cser-density1 must be in (0, 1]");
  need(c.cser_density2 <= 0 || c.cser_density2 <= 1, "--cser-density2 must be in (0, 1]");
  need(c.marsit_compensation == "local" || c.marsit_compensation == "global",
       "--marsit-compensation: unknown compensation '" + c.marsit_compensation + "' (valid: local, global)");
  need(c.low_rank >= 1 || (c.low_rank == 0 && (!given || !given("--low-rank"))),
       "--low-rank must be >= 1, got " + std::to_string(c.low_rank));
  need(c.powersgd_error_form == "paper" || c.powersgd_error_form == "library",
       "--powersgd-error-form: unknown form '" + c.powersgd_error_form + "' (valid: paper, library)");
  need(c.down_compressor == "none" || c.down_compressor == "topk" || c.down_compressor == "randk",
       "--down-compressor: unknown compressor '" + c.down_compressor + "' (valid: none, topk, randk)");
  need(c.down_density < 0 || (c.down_density > 0 && c.down_density <= 1),
       "--down-density must be in (0, 1], got " + num(c.down_density));
  need(!given || !given("--down-density") || c.down_compressor != "none",
       "--down-density needs --down-compressor topk or randk (the download is dense with 'none')");
  need(c.optimizer != "liec" || c.compressor == "none" || c.compressor == "topk" ||
           c.compressor == "topk-sampled" || c.compressor == "randk" || c.compressor == "sidco",
       "--compressor " + c.compressor +
           " with --optimizer liec: its upload is (index, value) pairs or dense (valid: none, topk, "
           "topk-sampled, "
           "randk, sidco)");
  need(c.period >= 1, "--period must be >= 1, got " + std::to_string(c.period));
  need(c.stl_stages >= 1 && c.stl_stages <= 30,
       "--stl-stages must be in [1, 30], got " + std::to_string(c.stl_stages));
  need(c.stl_data == "iid" || c.stl_data == "noniid",
       "--stl-data: unknown choice '" + c.stl_data + "' (valid: iid, noniid)");
  need(contains(compress::compressor_names(), c.avg_compressor),
       "--avg-compressor: unknown compressor '" + c.avg_compressor +
           "' (valid: " + join(compress::compressor_names()) + ")");
  need(c.avg_density > 0 && c.avg_density <= 1, "--avg-density must be in (0, 1], got " + num(c.avg_density));
  need(!given || !given("--avg-density") || c.avg_compressor != "none",
       "--avg-density needs --avg-compressor (the averaging is exact with 'none')");
  need(c.power_iters >= 1, "--power-iters must be >= 1, got " + std::to_string(c.power_iters));
  need(c.diffusion_rate > 0 && finite(c.diffusion_rate),
       "--diffusion-rate must be > 0, got " + num(c.diffusion_rate));
  need(c.relay_variant == "model" || c.relay_variant == "update",
       "--relay-variant: unknown variant '" + c.relay_variant + "' (valid: model, update)");
  if (!c.topology.empty() || optim::method_is_decentralized(c.optimizer)) {
    const auto& names = topo::topology_names();
    const std::string t = c.topology.empty() ? optim::default_topology(c.optimizer) : c.topology;
    need(contains(names, t), "--topology: unknown topology '" + t + "' (valid: " + join(names) + ")");
    if (optim::method_is_decentralized(c.optimizer)) {
      (void)topo::make_topology(t, world_size, rank);  // a graph that does not fit the rank count
      need(c.optimizer != "relaysgd" || t == "chain" || t == "binary-tree" || t == "double-binary-tree",
           "--optimizer relaysgd relays over a spanning tree: --topology chain, binary-tree or "
           "double-binary-tree, got " +
               t);
      // A2CiD2's constants need a regular, connected, non-complete graph of >= 3 ranks (acid.hpp).
      if (c.optimizer == "a2cid2" && c.comm_rate > 0 && finite(c.comm_rate))
        (void)topo::acid_constants(topo::make_topology(t, world_size, rank), c.comm_rate, rank);
      need(c.optimizer != "async-gossip" || world_size >= 2,
           "--optimizer async-gossip needs at least 2 ranks");
    }
  }
  need(c.comm_rate > 0 && c.comm_rate <= 1000 && finite(c.comm_rate),
       "--comm-rate must be in (0, 1000], got " + num(c.comm_rate));
  need(c.comm_schedule == "exact" || c.comm_schedule == "poisson",
       "--comm-schedule: unknown schedule '" + c.comm_schedule + "' (valid: exact, poisson)");
  need(c.acid_order == "mix-first" || c.acid_order == "exchange-first",
       "--acid-order: unknown order '" + c.acid_order + "' (valid: mix-first, exchange-first)");
  need(
      !optim::method_is_async(c.optimizer) ||
          (c.checkpoint_dir.empty() && !c.resume && c.resume_from.empty()),
      "--checkpoint / --resume: --optimizer " + c.optimizer +
          " is asynchronous (its models depend on when the pairs of ranks happened to meet), so a checkpoint "
          "could not be resumed consistently; it has none");
  need(c.lr > 0 && finite(c.lr), "--lr must be > 0, got " + num(c.lr));
  need(c.schedule != "step" || !c.milestones.empty(), "--schedule step needs --milestones (epochs)");
  for (double m : c.milestones)
    need(m > 0 && finite(m), "--milestones must be positive epochs, got " + num(m));
  need(c.gamma > 0 && finite(c.gamma), "--gamma must be > 0");
  need(c.epochs > 0 && c.epochs <= 1e6, "--epochs must be in (0, 1e6], got " + num(c.epochs));
  need(c.batch >= 1 && c.batch <= (1u << 20), "--batch must be in [1, 2^20], got " + std::to_string(c.batch));
  need(c.eval_every >= -1, "--eval-every must be >= 0 (or -1 for once per epoch)");
  need(c.eval_batch >= 1, "--eval-batch must be >= 1");
  need(!c.eval_virtual || c.optimizer == "def-a", "--eval-virtual applies to --optimizer def-a only");
  need(c.keep_checkpoints >= 1, "--keep-checkpoints must be >= 1");
  need(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(), "--checkpoint-every needs --checkpoint DIR");
  need(!c.resume || !c.checkpoint_dir.empty() || !c.resume_from.empty(),
       "--resume needs a checkpoint: --resume DIR, or --checkpoint DIR to resume from its latest");
  need(c.step_delay_ms >= 0 && c.step_delay_ms <= 1e6, "--step-delay must be in [0, 1e6] ms");
  if (given) check_options_read(c, given, rank);
  need(!c.wd_outside || c.weight_decay > 0, "--wd-outside needs a non-zero --weight-decay");
  need(!given || !given("--dropit-layers") || c.dropit > 0, "--dropit-layers needs --dropit GAMMA > 0");
}

// ---------------------------------------------------------------------------------------------
// The canonical text
// ---------------------------------------------------------------------------------------------
std::string canonical_config(const TrainConfig& c, int world_size, std::uint32_t crc) {
  std::ostringstream o;
  o << "world_size=" << world_size << '\n' << "data_crc=" << crc << '\n';
  for (const auto& opt : train_options()) {
    if (opt.key.empty() || !reads(opt, c)) continue;
    const std::string value = opt.value(c);
    if (!value.empty()) o << opt.key << '=' << value << '\n';  // empty: a feature that is off
  }
  return o.str();
}

}  // namespace sparcol::train
