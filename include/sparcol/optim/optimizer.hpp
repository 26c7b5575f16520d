// Distributed optimizers with compression, error feedback and momentum (ALGORITHMS.md 2-8).
//
// An Optimizer owns its state (momentum, residual, error) and one or two Exchanges; it never calls
// MPI. Every rank holds a replica of the model x and calls, per iteration t:
//
//   auto z = opt.gradient_point(x, lr);     // where to evaluate the local gradient (x for most)
//   g = local stochastic gradient at z
//   opt.step(x, g, t, lr, epoch);           // updates x in place, identically on every rank
//
// Methods (names used by every program and document):
//   dmsgd        dense momentum SGD, global momentum (2)      dmsgd-local  local momentum (2)
//   ef-sgd       error feedback, no momentum (3)              ef-sgdm      with local momentum (3)
//   dgc          DGC without momentum factor masking (4)      dgc-mfm      with masking (4)
//   gmc          global momentum compression (5)              gmc-plus     GMC+ with detach alpha (6)
//   def-a        detached error feedback, local momentum (7)  cser         error reset (8)
//   marsit       EF-signSGD over Marsit's sign ring (10.1)    sign-cascade over the cascading ring (10.1)
//   powersgd     rank-r power iteration, EF, warm start (10.3)
//   liec         LIEC-SGD: compressed up and down, the server sharded over the ranks (10.2); x is the
//                replicated global model xh, the gradient point is the local model x_i = xh - eta*delta_i
// A model per rank, averaged every `period` steps (ALGORITHMS.md 10.7-10.9; per_worker_models()):
//   local-sgd    Local SGD (10.8 with D = 0)                  vrl-sgd      variance-reduced local SGD (10.8)
//   stl-sgd      stagewise local SGD (10.7)                   cocod-sgd    CoCoD-SGD, averaging behind
//                                                                          computation (10.9)
// The exchange's compressor of local-sgd, vrl-sgd and stl-sgd compresses the model difference sent at
// an averaging ("none": exact averaging, the default of the programs); cocod-sgd averages exactly.
//   dpsgd        gossip averaging on a graph (10.4's D-PSGD)   relaysgd     RelaySum over a tree (10.5)
//   powergossip  low-rank gossip of model differences (10.4)
//   a2cid2       asynchronous pairwise gossip with A2CiD2's continuous momentum (10.6)
//   async-gossip the same protocol without the momentum (eta = alpha = 0)
//
// The decentralized methods (dpsgd, relaysgd, powergossip, a2cid2, async-gossip;
// method_is_decentralized) keep one model per rank: x differs between ranks after the first step, and
// each rank talks only to its neighbours on config.topology (topo/graph.hpp), through a
// NeighborExchange (the synchronous ones) or a topo::PairGossip thread (a2cid2, async-gossip:
// method_is_async, docs/async_gossip.md). The one global message of a synchronous method's step is
// step()'s NaN verdict with the call fingerprint (K-1 records of 72 bytes, as for every method); the
// asynchronous ones have none.
//
// Common rules (ALGORITHMS.md 0.1): state starts at zero; heavy-ball momentum without dampening;
// weight decay is coupled L2 added to the local gradient first, g <- g + wd * z with z the point the
// gradient was taken at (or, with wd_outside, applied to the update outside compression; see below).
//
// Executors: every method is written once, against the device dispatch layer (device/dispatch.hpp):
// its state lives in an executor's memory and each step is made of the fused updates of
// device/ops.hpp and the Exchange. make_optimizer without an executor uses host memory (the CPU
// twins); with Exec::device() the same code runs the kernels on the GPU, and x, g and the spans of
// gradient_point, state and evaluation_model are device memory. What a device executor cannot run
// (unsupported_reason) is refused when the optimizer is built. Steady-state steps allocate nothing.
//
// Weight decay outside compression (wd_outside, the DGC code's form): the update becomes
// x <- x - eta*(a + wd*x) for the methods whose update is x - eta*a (dmsgd, dmsgd-local, dgc,
// dgc-mfm) and x <- x - (a + eta*wd*x) for the error-feedback family whose aggregate is already in
// parameter units (ef-sgd, ef-sgdm, def-a). GMC and GMC+ (their global momentum is the model's
// displacement, m = (x_{t-1} - x_t)/eta) and CSER (its model is split into xh + r) do not define it:
// make_optimizer refuses it there.
//
// Non-finite gradients: step() checks g; the verdict travels with the step's fingerprint exchange,
// so every rank learns in the same step whether any rank's gradient was NaN/Inf. Policy kSkip: all
// ranks skip the step, no state changes, the skip is counted; kStop: every rank throws
// Error(kNumerical) naming the step and the ranks. Either way no NaN enters the residuals.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/compress/compressor.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/optim/exchange.hpp"
#include "sparcol/optim/layout.hpp"

namespace sparcol::optim {

enum class NanPolicy { kSkip, kStop };

struct OptimConfig {
  std::string method = "gmc";
  double momentum = 0.9;  // beta, in [0, 1)
  double weight_decay = 0.0;
  double alpha = -1.0;      // detach coefficient in [0, 1]; < 0: the method's default
                            // (gmc-plus 0.5, def-a 0.3; ALGORITHMS.md 6, 7)
  ExchangeConfig exchange;  // compressor, density, layer-wise, exclusions, shared seed

  // DGC (ALGORITHMS.md 4)
  double clip_norm = 0.0;   // global L2 threshold G; each worker clips g to G / sqrt(K); 0 = off
  bool nesterov = false;    // DGC code's Nesterov momentum-correction variant
  int warmup_epochs = 0;    // exponential density warm-up over this many epochs; 0 = off
  bool wd_outside = false;  // weight decay on the update, outside compression (see above)

  // CSER (ALGORITHMS.md 8); c1 may be named "zero" (nothing sent, step 2 purely local)
  compress::CompressorConfig cser_c1{"topk", 0.001};
  compress::CompressorConfig cser_c2{"topk", 0.005};
  int cser_period = 4;  // H

  // Marsit (ALGORITHMS.md 10.1): "local" (e_k <- p_k - lambda_k b_k, the default) or "global"
  // (e_k <- p_k - lambda B; an ablation). marsit and sign-cascade always send scaled signs (any
  // compressor but "none", which is compression off, DSGD, runs as "sign"; see method_compressor).
  std::string marsit_compensation = "local";

  // PowerSGD (ALGORITHMS.md 10.3): rank r (r' = min(r, n, m) per matrix), error feedback, warm start,
  // and the error form: paper (E_k <- M_k - P Q^T) or library (E_k <- M_k - P Q_k^T). momentum is
  // its lambda; weight decay is added to the aggregate, never compressed.
  int low_rank = 2;  // powersgd: rank r (10.3); powergossip: rank of its projections (the trainer gives it 1)
  bool powersgd_error_feedback = true;
  bool powersgd_warm_start = true;
  bool powersgd_error_form_paper = true;

  // LIEC-SGD (ALGORITHMS.md 10.2): the downward compressor C_down the owners apply to their chunk of
  // w = mean_i c_i + e_s (none, topk or randk); the upward C_up is exchange.compressor (none or one
  // that sends pairs: topk, topk-sampled, randk, sidco). momentum is heavy ball on the replicated c.
  compress::CompressorConfig liec_down{"topk", 0.01};

  NanPolicy nan_policy = NanPolicy::kSkip;

  // The local-SGD family (ALGORITHMS.md 10.7-10.9)
  int period = 8;                 // H: local steps between averagings (stl-sgd: the first stage's)
  int stl_stages = 3;             // stl-sgd: S stages, each twice as long as the one before
  bool stl_iid = true;            // stl-sgd: the period doubles per stage (iid) or grows by sqrt(2)
  std::uint64_t total_steps = 0;  // stl-sgd: the run's length, which the stages divide
  // Decentralized methods (ALGORITHMS.md 10.4, 10.5). topology: a name of topo::topology_names(), or
  // "" for the method's default (default_topology). The local optimizer is heavy ball with local
  // momentum (momentum, weight_decay as above).
  std::string topology;
  int power_iters = 1;                  // powergossip: power iterations per step (>= 1)
  double diffusion_rate = 1.0;          // powergossip: gamma (> 0)
  std::string relay_variant = "model";  // relaysgd: "model" (relay models, fill x_0) or "update"
  // a2cid2, async-gossip (ALGORITHMS.md 10.6): pairwise averagings per gradient step (> 0). Their
  // protocol ends (every rank says it is done) in the step t with t + 1 == total_steps, or when the
  // optimizer is destroyed (total_steps 0).
  double comm_rate = 1.0;
  // "exact" (every step grants comm_rate averagings) or "poisson" (a Poisson(comm_rate) number).
  std::string comm_schedule = "exact";
  // a2cid2: the order of a pairwise averaging (ALGORITHMS.md 10.6 [P]). "mix-first" (the default,
  // the continuous-time model): both ends apply their mixing, then exchange x. "exchange-first" (the
  // authors' code): the ends exchange x as it stood at their last event, then each mixes its own
  // (x, xt), so the x_j it averages with is the neighbour's value before its mixing.
  std::string acid_order = "mix-first";
};

// Where the local-SGD family stands after step t (0-based): whether the models are averaged after
// it, the steps since the previous averaging (length, for vrl-sgd's correction), the current period,
// and stl-sgd's stage (1-based) and learning-rate factor 2^(1 - stage). stl-sgd (10.7 [P]):
// T_1 = max(1, floor(T / (2^S - 1))), stage s starts at T_1 (2^(s-1) - 1) (the last stage runs to
// the end), its period is H 2^(s-1) (iid) or round(H sqrt(2)^(s-1)) (non-iid), counted from the
// stage's start, and the models are also averaged at the end of every stage but the last.
struct LocalPeriod {
  bool average = false;
  std::uint64_t length = 0;
  std::uint64_t period = 0;
  int stage = 1;
  double lr_factor = 1.0;
};
LocalPeriod local_period(const OptimConfig& config, std::uint64_t t);

struct StepStats {
  bool skipped = false;
  std::vector<int> bad_ranks;  // ranks whose gradient was not finite (when skipped)
  CommStats comm;
};

// A named piece of optimizer state, for checkpoints (contents differ per rank).
struct StateBuffer {
  std::string name;
  std::span<float> data;
};

class Optimizer;
std::unique_ptr<Optimizer> make_optimizer(comm::Backend& backend, const Layout& layout,
                                          const OptimConfig& config);

class Optimizer {
  // Declared first, destroyed last: the host executor of an optimizer built without one.
  std::unique_ptr<device::Exec> owned_exec_;
  friend std::unique_ptr<Optimizer> make_optimizer(comm::Backend&, const Layout&, const OptimConfig&);

 public:
  virtual ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  const std::string& method() const { return config_.method; }
  // Where x, g, the state and the buffers this optimizer returns live.
  device::Exec& exec() const { return exec_; }
  MemKind mem_kind() const { return exec_.kind(); }
  const OptimConfig& config() const { return config_; }
  double alpha() const { return alpha_; }
  std::uint64_t size() const { return n_; }

  // Where this rank evaluates its gradient for the coming step with learning rate lr: x itself, or
  // an internal buffer (gmc-plus: x - alpha*lr*u; def-a: x - alpha*e; cser: x + r). Valid until the
  // next call of gradient_point or step.
  virtual std::span<const float> gradient_point(std::span<const float> x, double lr);

  // One iteration. g is this rank's gradient at gradient_point(x, lr); epoch drives DGC warm-up.
  StepStats step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr,
                 double epoch = 0.0);

  // The model to report: x, or for def-a with virtual_model the DEF code's x - mean_k e_k (a
  // collective: every rank must call it). out.size() == x.size().
  virtual void evaluation_model(std::span<const float> x, std::span<float> out, bool virtual_model);

  // Named state buffers (momentum, residuals, errors) for checkpoints, in the executor's memory. The
  // caller may write them (a restore) until the next step.
  virtual std::vector<StateBuffer> state() = 0;

  // True when every rank keeps a model of its own between synchronisations (the local-SGD family,
  // the decentralized methods): x differs between ranks. The trainer then evaluates the rank-averaged
  // model, the worst rank's own model and the consensus distance, and checkpoints every rank's x and
  // state (docs/traces.md, "Methods with a model per rank"). False: x is replicated.
  virtual bool per_worker_models() const { return false; }
  // Whether a checkpoint may be written after the step just taken (local SGD: only at an averaging
  // boundary; a checkpoint asked for in the middle of a period is written at the next boundary).
  // The answer depends only on the steps taken, so every rank gives the same.
  virtual bool at_checkpoint_boundary() const { return true; }

  // A line for the run's header ("" for most methods; a2cid2: its constants).
  virtual std::string startup_text() const { return {}; }
  // This rank's event counts (a2cid2, async-gossip: gradient steps, averagings, requests, refusals),
  // name and value; empty for the synchronous methods.
  virtual std::vector<std::pair<std::string, double>> event_counts() { return {}; }

  std::uint64_t skipped_steps() const { return skipped_; }
  void set_skipped_steps(std::uint64_t n) { skipped_ = n; }
  // The density the compressor currently uses (changes during DGC warm-up).
  double current_density() const { return ex_.density(); }

 protected:
  Optimizer(comm::Backend& backend, const Layout& layout, OptimConfig config, ExchangeConfig exchange,
            device::Exec& exec);
  // The update proper, after the NaN verdict. g is the raw gradient; gradient(g, x, lr) adds the
  // coupled weight decay at the gradient point (the fused updates apply it element by element).
  virtual CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) = 0;
  // Hook before the verdict (DGC warm-up changes the density here).
  virtual void before_step(double /*epoch*/) {}
  // A method that computes its message and checks g in one pass (GMC on the host executor) does so
  // here, before the verdict, without changing its state: it returns true and sets `finite` (every
  // g_i finite); what it prepared is used by the next do_step, or dropped by drop_message() when the
  // step is skipped. The default returns false: step() checks g with a pass of its own.
  virtual bool fused_message(std::span<const float> /*x*/, std::span<const float> /*g*/, double /*lr*/,
                             bool& /*finite*/) {
    return false;
  }
  virtual void drop_message() {}
  // Whether step() agrees on the NaN verdict with every rank (a global message per step). The
  // asynchronous methods (a2cid2, async-gossip) return false: a non-finite gradient skips this rank's
  // step only (kSkip) or throws on this rank (kStop), and no step waits for another rank.
  virtual bool global_verdict() const { return true; }

  // The gradient a fused update consumes: g plus coupled weight decay wd * z at the gradient point
  // (unless wd_outside), z = gradient_point(x, lr).
  device::GradientInput gradient(std::span<const float> g, std::span<const float> x, double lr);
  // A state or scratch vector of n floats in the executor's memory, zero-filled.
  device::Buffer<float> make_buffer(const char* what) { return device::Buffer<float>(exec_, n_, what); }
  // The weight decay applied outside compression this step (0 unless wd_outside).
  float wd_outside() const { return config_.wd_outside ? static_cast<float>(config_.weight_decay) : 0.0f; }

  comm::Backend& backend_;
  OptimConfig config_;
  std::uint64_t n_;
  double alpha_ = 0.0;
  device::Exec& exec_;
  Exchange ex_;
  Aggregate agg_;            // the aggregate of the step (mean of the compressed messages)
  device::Buffer<float> z_;  // gradient point buffer (methods that detach)

 private:
  std::uint64_t skipped_ = 0;
};

// Builds the optimizer named by config.method; throws Error(kInvalidArgument) for unknown names or
// parameters out of range (momentum outside [0, 1), alpha outside [0, 1], negative weight decay,
// density outside (0, 1], unknown compressor, wd_outside where the method does not define it or
// without weight decay), and for what the executor cannot run (unsupported_reason). Without an
// executor: host memory (an executor the optimizer owns). exec must outlive the optimizer.
std::unique_ptr<Optimizer> make_optimizer(comm::Backend& backend, const Layout& layout,
                                          const OptimConfig& config);
std::unique_ptr<Optimizer> make_optimizer(comm::Backend& backend, const Layout& layout,
                                          const OptimConfig& config, device::Exec& exec);

// Empty when an executor of memory `kind` runs (layout, config); otherwise why not, e.g.
// "compressor 'sign' has no GPU kernel (...)". The host runs everything.
std::string unsupported_reason(const Layout& layout, const OptimConfig& config, MemKind kind);

// Whether the method defines weight decay outside compression (wd_outside).
bool method_has_wd_outside(const std::string& method);

// The method names make_optimizer accepts, in documentation order.
const std::vector<std::string>& method_names();

// Whether a method always communicates densely (dmsgd, dmsgd-local ignore the compressor).
bool method_is_dense(const std::string& method);

// The compressor a method actually runs with `configured` as its configuration: "none" for the
// dense methods, "sign" for marsit and sign-cascade (unless "none": compression off, DSGD),
// "low-rank" for powersgd (its own factorisation), otherwise `configured`. Traces record it.
std::string method_compressor(const std::string& method, const std::string& configured);
// Whether make_optimizer accepts `compressor` for `method`: liec uploads (index, value) pairs or the
// dense vector, so it refuses the compressors that aggregate otherwise (rbgs, sign); every other
// method accepts every compressor name make_compressor knows (the dense and self-compressing
// methods ignore it). For tests and programs that iterate over methods and compressors.
bool method_accepts_compressor(const std::string& method, const std::string& compressor);
// Whether a method keeps a model per rank averaged periodically (local-sgd, vrl-sgd, stl-sgd,
// cocod-sgd): it reads period (stl-sgd the stage options; cocod-sgd: tau = period), and but for
// cocod-sgd its compressor compresses the averaging.
bool method_is_local(const std::string& method);
// Whether a method is decentralized (keeps a model per rank, talks to graph neighbours only).
bool method_is_decentralized(const std::string& method);
// Whether a method is asynchronous (a2cid2, async-gossip: a communication thread pairs neighbours
// while the caller computes; its runs depend on timing). Such methods are also decentralized.
bool method_is_async(const std::string& method);
// The topology a decentralized method uses when OptimConfig::topology is "": ring for dpsgd and
// powergossip, chain for relaysgd; "" for the others.
std::string default_topology(const std::string& method);

}  // namespace sparcol::optim
