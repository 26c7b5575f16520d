// sparcol-train: trains a model on Fashion-MNIST (or the synthetic task) with one worker per MPI rank,
// any optimizer and compressor, and records an HDF5 trace and checkpoints (docs/train.md).
//
// The program is flags -> TrainConfig -> sparcol::train::Trainer. Every rank parses the same flags,
// loads the data, builds its trainer and (with --resume) reads its checkpoint file on its own; the
// ranks then agree on the outcome (a file missing on one node stops every rank with that rank's
// message) before the first collective of training.
#include <CLI/CLI.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/app_support.hpp"
#include "sparcol/comm/make_backend.hpp"
#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/compress/compressor.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/optim/optimizer.hpp"
#include "sparcol/train/checkpoint.hpp"
#include "sparcol/train/model.hpp"
#include "sparcol/train/options.hpp"
#include "sparcol/train/trainer.hpp"

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  sparcol::comm::MpiEnvironment env(&argc, &argv, sparcol::app::mpi_thread_level(argc, argv));
  const int rank = sparcol::comm::MpiEnvironment::world_rank();
  const int world = sparcol::comm::MpiEnvironment::world_size();
  sparcol::app::install_termination_report(rank);
  sparcol::app::install_async_failure_report(rank, sparcol::comm::MpiEnvironment::world_size() > 1);

  sparcol::train::TrainConfig c;
  std::string preset;
  std::vector<std::string> resume;
  double timeout_s = 0.0;
  std::string device = "cpu";
  int gpus_per_node = 0;

  CLI::App app{
      "sparcol-train: data-parallel training with compressed communication, one worker per MPI rank.\n"
      "Trains a model on Fashion-MNIST (or a synthetic task) with any optimizer and compressor, evaluates\n"
      "on the test set, and writes an HDF5 trace (--trace) and checkpoints (--checkpoint). Example:\n"
      "  mpirun -np 4 sparcol-train --model cnn --optimizer gmc --density 0.01 --epochs 3 --trace t.h5\n"
      "See docs/train.md (flags, checkpoints, exit codes) and docs/traces.md (the trace)."};
  app.set_version_flag("--version", std::string("sparcol ") + SPARCOL_VERSION_STRING);
  app.get_formatter()->column_width(34);

  // Model and data
  app.add_option("--model", c.model, "model: " + join(sparcol::train::model_names()))->capture_default_str();
  app.add_option("--params", c.params, "number of parameters of --model synthetic (required there)")
      ->check(sparcol::app::non_negative());
  app.add_option("--norm", c.norm, "normalisation layers of resnet20: gn (GroupNorm) or bn (BatchNorm)")
      ->capture_default_str();
  app.add_option("--data", c.data_dir, "directory of the Fashion-MNIST IDX files (.gz or plain)")
      ->capture_default_str();
  app.add_option("--train-samples", c.train_samples,
                 "use the first N training samples (default: all; synthetic 16384)")
      ->check(sparcol::app::non_negative());
  app.add_option("--test-samples", c.test_samples,
                 "use the first N test samples (default: all; synthetic 4096)")
      ->check(sparcol::app::non_negative());
  app.add_option("--partition", c.partition, "split of the training set over ranks: iid, dirichlet, shards")
      ->capture_default_str();
  app.add_option("--dirichlet-alpha", c.dirichlet_alpha, "Dirichlet concentration (non-IID: 0.1)")
      ->capture_default_str();
  app.add_option(
         "--dirichlet-group", c.dirichlet_group,
         "partition Dirichlet workers in groups of this size (10: the reference code); 0 = all at once")
      ->capture_default_str();
  app.add_flag("--augment", c.augment, "random crop (padding 2) and horizontal flip of training images");
  app.add_option("--dropit", c.dropit,
                 "DropIT gamma in [0, 1): linear and conv layers keep only the largest (1 - gamma) of their "
                 "input for the weight gradient; 0 = off")
      ->capture_default_str();
  app.add_option("--dropit-layers", c.dropit_layers,
                 "layers DropIT applies to: hidden (all but the first and the last) or all")
      ->capture_default_str();

  // Optimizer
  app.add_option("--optimizer", c.optimizer, "method: " + join(sparcol::optim::method_names()))
      ->capture_default_str();
  app.add_option("--compressor", c.compressor, "compressor: " + join(sparcol::compress::compressor_names()))
      ->capture_default_str();
  app.add_option("--density", c.density, "fraction of the gradient each rank sends, in (0, 1]")
      ->capture_default_str();
  app.add_option("--alpha", c.alpha, "detach coefficient, in [0, 1] (default: gmc-plus 0.5, def-a 0.3)");
  app.add_option("--momentum", c.momentum, "momentum beta, in [0, 1)")->capture_default_str();
  app.add_option("--weight-decay", c.weight_decay, "coupled L2 weight decay")->capture_default_str();
  app.add_flag("--layerwise", c.layerwise, "compress each tensor separately (k_l = ceil(density * n_l))");
  app.add_option("--min-compress-size", c.min_compress_size,
                 "tensors with fewer elements are all-reduced densely")
      ->capture_default_str()
      ->check(sparcol::app::non_negative());
  app.add_option("--nan-policy", c.nan_policy, "non-finite gradient: skip the step on every rank, or stop")
      ->capture_default_str();
  app.add_option("--clip-norm", c.clip_norm, "clip local gradients to this global norm / sqrt(K); 0 = off")
      ->capture_default_str();
  app.add_option("--warmup-epochs", c.warmup_epochs, "exponential density warm-up over this many epochs")
      ->capture_default_str();
  app.add_flag("--nesterov", c.nesterov, "Nesterov momentum correction");
  app.add_flag("--wd-outside", c.wd_outside, "apply --weight-decay to the update, outside compression");
  app.add_option("--cser-period", c.cser_period, "error reset period H")->capture_default_str();
  app.add_option("--cser-density1", c.cser_density1, "density of C1 (default: density / 2)");
  app.add_option("--cser-density2", c.cser_density2, "density of C2 (default: 2 * density)");
  app.add_option("--marsit-compensation", c.marsit_compensation,
                 "marsit's error: local (p - lambda_k b_k) or global (p - lambda B, an ablation)")
      ->capture_default_str();
  app.add_option(
         "--low-rank", c.low_rank,
         "powersgd: rank r of the factorisation; powergossip: rank of the projections (>= 1; default: "
         "powersgd 2, powergossip 1)")
      ->capture_default_str();
  app.add_flag("--powersgd-no-ef", c.powersgd_no_ef, "powersgd: no error feedback (ablation)");
  app.add_flag("--powersgd-no-warm-start", c.powersgd_no_warm_start,
               "powersgd: a fresh Q every step (ablation)");
  app.add_option("--powersgd-error-form", c.powersgd_error_form,
                 "powersgd: error E_k = M_k - P Q^T (paper) or M_k - P Q_k^T (library)")
      ->capture_default_str();
  app.add_option(
         "--down-compressor", c.down_compressor,
         "liec: the owners' downward compressor of their chunk of w = mean_i c_i + e_s: none, topk, randk")
      ->capture_default_str();
  app.add_option("--down-density", c.down_density,
                 "liec: density of --down-compressor, in (0, 1] (default: --density)");
  app.add_option("--period", c.period,
                 "local-sgd, vrl-sgd, stl-sgd: local steps between model averagings H (stl-sgd: the first "
                 "stage's)")
      ->capture_default_str();
  app.add_option("--stl-stages", c.stl_stages,
                 "stl-sgd: number of stages S (each twice as long, half the lr)")
      ->capture_default_str();
  app.add_option("--stl-data", c.stl_data, "stl-sgd: period growth per stage: iid (x2) or noniid (x sqrt 2)")
      ->capture_default_str();
  app.add_option("--avg-compressor", c.avg_compressor,
                 "local-sgd family: compress the model difference at an averaging with error feedback "
                 "(none: exact averaging)")
      ->capture_default_str();
  app.add_option("--avg-density", c.avg_density, "density of --avg-compressor, in (0, 1]")
      ->capture_default_str();
  app.add_option("--topology", c.topology,
                 "decentralized methods' graph: ring, torus, exponential, complete, chain, binary-tree, "
                 "double-binary-tree (default: ring; relaysgd: chain; a2cid2: regular, not complete)");
  app.add_option("--power-iters", c.power_iters, "powergossip: power iterations per step")
      ->capture_default_str();
  app.add_option("--diffusion-rate", c.diffusion_rate, "powergossip: diffusion rate gamma")
      ->capture_default_str();
  app.add_option("--relay-variant", c.relay_variant, "relaysgd: relay models (model) or updates (update)")
      ->capture_default_str();
  app.add_option(
         "--comm-rate", c.comm_rate,
         "a2cid2, async-gossip: pairwise averagings per gradient step and rank, in (0, 1000] (the runs "
         "are asynchronous: they depend on timing; no checkpoints)")
      ->capture_default_str();
  app.add_option("--comm-schedule", c.comm_schedule,
                 "a2cid2, async-gossip: exact (each step grants --comm-rate averagings) or poisson (a "
                 "Poisson(--comm-rate) number per step)")
      ->capture_default_str();
  app.add_option("--acid-order", c.acid_order,
                 "a2cid2: at a pairwise averaging, mix-first (both ends apply their continuous momentum, "
                 "then exchange; the continuous-time model) or exchange-first (exchange the values of "
                 "the last event, then mix: the authors' code)")
      ->capture_default_str();

  // Schedule
  app.add_option("--lr", c.lr, "initial learning rate")->capture_default_str();
  app.add_option("--schedule", c.schedule, "learning-rate schedule: constant, step, cosine (to 0 at the end)")
      ->capture_default_str();
  app.add_option("--milestones", c.milestones, "step schedule: epochs at which lr is multiplied by --gamma")
      ->delimiter(',');
  app.add_option("--gamma", c.gamma, "step schedule factor")->capture_default_str();
  app.add_option("--epochs", c.epochs, "passes over the training set (fractions allowed)")
      ->capture_default_str();
  app.add_option("--max-steps", c.max_steps, "stop after this many steps (the schedule still spans --epochs)")
      ->check(sparcol::app::non_negative());
  app.add_option("--batch", c.batch, "minibatch per rank")
      ->capture_default_str()
      ->check(sparcol::app::non_negative());
  app.add_option(
      "--preset", preset,
      "protocol preset: gmc-paper (momentum 0.9, weight decay 1e-4, cosine, batch 16, density 0.0025, "
      "lr 0.1); flags given explicitly win");

  // Evaluation and outputs
  app.add_option("--eval-every", c.eval_every,
                 "evaluate on the test set every N steps (default: once per epoch; 0 = only at the end)");
  app.add_option("--eval-batch", c.eval_batch, "evaluation batch size")
      ->capture_default_str()
      ->check(sparcol::app::non_negative());
  app.add_flag("--eval-virtual", c.eval_virtual, "evaluate the virtual model x - mean_k e_k");
  app.add_option("--seed", c.seed, "seed of initialisation, partition, batches and shared random choices")
      ->capture_default_str()
      ->check(sparcol::app::non_negative());
  app.add_option("--trace", c.trace, "HDF5 trace written by rank 0 (docs/traces.md)");
  app.add_flag("--overwrite", c.overwrite, "replace an existing --trace (without --resume)");
  app.add_option("--checkpoint", c.checkpoint_dir,
                 "checkpoint directory (shared by all ranks); a checkpoint is always written at the end");
  app.add_option("--checkpoint-every", c.checkpoint_every, "also checkpoint every N steps")
      ->check(sparcol::app::non_negative());
  app.add_option("--keep-checkpoints", c.keep_checkpoints, "checkpoints to keep")->capture_default_str();
  auto* resume_opt =
      app.add_option("--resume", resume,
                     "continue from the latest checkpoint of --checkpoint, or from DIR (a checkpoint "
                     "directory or one ckpt-<step> in it)")
          ->expected(0, 1);
  app.add_option("--save-params", c.save_params, "write the final parameters (raw float32) to this file");
  app.add_option("--progress-every", c.progress_every, "progress line every N steps (0 = none)")
      ->capture_default_str()
      ->check(sparcol::app::non_negative());
  app.add_flag("--quiet", c.quiet, "print nothing but errors and warnings");
  app.add_option(
      "--timeout", timeout_s,
      "seconds a blocking wait may take before the run fails (default: 300 or SPARCOL_TIMEOUT_S; 0 = none)");
  app.add_option("--step-delay", c.step_delay_ms,
                 "sleep this many milliseconds after every step (throttling)");
  // Where the model runs (docs/gpu.md, "The trainer on the GPU"). Without a GPU --device cuda is
  // exit 9 naming what is missing: never a silent fall-back to the CPU.
  app.add_option("--device", device,
                 "cpu, or cuda: the model's forward and backward on the rank's GPU (--model mlp so far); "
                 "no GPU: exit 9")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--gpus-per-node", gpus_per_node,
                 "with --device cuda: rank r uses GPU (local rank mod N); 0 = every GPU the node shows")
      ->check(sparcol::app::non_negative());
  // --help says who reads each option, from the same table that validation uses.
  for (const auto& o : sparcol::train::train_options()) {
    if (o.read_by == sparcol::train::ReadBy::kAll) continue;
    auto* opt = app.get_option(o.flag);
    opt->description(opt->get_description() + " [only " + sparcol::train::readers_text(o) + "]");
  }
  if (auto st = sparcol::app::parse(app, argc, argv, rank)) return *st;

  auto backend = sparcol::comm::MpiBackend::world();
  std::unique_ptr<sparcol::train::Trainer> trainer;

  // Validation: flags, data, checkpoint and outputs, each rank on its own; then agreement.
  const int status = sparcol::app::guarded(rank, false, [&]() -> int {
    const auto given = [&](const std::string& flag) { return app.count(flag) > 0; };
    if (!preset.empty()) sparcol::train::apply_preset(c, preset, given);
    if (app.count("--timeout") > 0) {
      SPARCOL_CHECK_ARG(timeout_s >= 0 && timeout_s <= 1e7, rank, "--timeout must be in [0, 1e7] seconds");
      backend->set_timeout(std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000.0)));
    }
    SPARCOL_CHECK_ARG(device == "cuda" || !given("--gpus-per-node"), rank,
                      "--gpus-per-node needs --device cuda");
    if (device == "cuda") {
      if (!sparcol::device::has_gpu()) {
        throw sparcol::Error(sparcol::ErrorCode::kCuda, rank,
                             "--device cuda: no CUDA device (" + sparcol::device::no_gpu_reason() + ")");
      }
      const int gpus = sparcol::device::device_count();
      SPARCOL_CHECK_ARG(gpus_per_node <= gpus, rank,
                        "--gpus-per-node " + std::to_string(gpus_per_node) + ": this node shows only " +
                            std::to_string(gpus) + " CUDA device(s)");
      SPARCOL_CHECK_ARG(c.model == "mlp", rank,
                        "--device cuda: only --model mlp has a GPU path so far, not '" + c.model +
                            "' (docs/gpu.md, \"The trainer on the GPU\")");
      SPARCOL_CHECK_ARG(c.dropit == 0.0, rank, "--device cuda: --dropit has no GPU path yet (docs/gpu.md)");
      sparcol::device::set_device(sparcol::comm::local_rank() % (gpus_per_node > 0 ? gpus_per_node : gpus));
    }
    c.device = device;
    c.resume = resume_opt->count() > 0;
    if (!resume.empty()) c.resume_from = resume.front();
    sparcol::train::validate_config(c, world, rank, given);
    std::string checkpoint;
    if (c.resume) {
      checkpoint =
          sparcol::train::resolve_checkpoint(c.resume_from.empty() ? c.checkpoint_dir : c.resume_from, rank);
    }
    {
      const auto data = sparcol::train::load_training_data(c, rank);
      trainer = std::make_unique<sparcol::train::Trainer>(*backend, c, data);
    }  // the full data set is freed here: the trainer keeps this rank's part
    if (c.resume) trainer->load_checkpoint(checkpoint);
    trainer->check_outputs();
    return 0;
  });
  if (const int agreed = sparcol::app::agree_on_status(*backend, status); agreed != 0) return agreed;

  // Training: an error now (a dead peer, a timeout, a full disk) aborts the other ranks.
  return sparcol::app::guarded(rank, world > 1, [&]() -> int {
    trainer->run();
    return 0;
  });
}
