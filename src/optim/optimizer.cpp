#include "sparcol/optim/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "methods.hpp"
#include "sparcol/compress/compressor.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::optim {

namespace ops = device::dispatch;

namespace detail {
ExchangeConfig dense_exchange(const ExchangeConfig& base) {
  ExchangeConfig e = base;
  e.compressor = compress::CompressorConfig{};
  e.compressor.name = "none";
  e.compressor.density = 1.0;
  e.layerwise = false;
  return e;
}
}  // namespace detail

Optimizer::Optimizer(comm::Backend& backend, const Layout& layout, OptimConfig config,
                     ExchangeConfig exchange, device::Exec& exec)
    : backend_(backend),
      config_(std::move(config)),
      n_(layout.total()),
      exec_(exec),
      ex_(backend, layout, std::move(exchange), exec),
      agg_(exec, n_) {}

Optimizer::~Optimizer() = default;

std::span<const float> Optimizer::gradient_point(std::span<const float> x, double /*lr*/) {
  return x;
}

void Optimizer::evaluation_model(std::span<const float> x, std::span<float> out, bool /*virtual_model*/) {
  SPARCOL_CHECK_ARG(x.size() == n_ && out.size() == n_, backend_.rank(),
                    config_.method + ": evaluation_model with vectors of " + std::to_string(x.size()) +
                        " and " + std::to_string(out.size()) + " elements, expected " + std::to_string(n_));
  exec_.copy(out.data(), x.data(), n_ * sizeof(float));
  exec_.synchronize();
}

device::GradientInput Optimizer::gradient(std::span<const float> g, std::span<const float> x, double lr) {
  device::GradientInput gi{g.data(), x.data(), 0.0f, 1.0f};
  if (config_.weight_decay != 0.0 && !config_.wd_outside) {
    // Coupled L2 at the point the gradient was taken (ALGORITHMS.md 0.1).
    gi.z = gradient_point(x, lr).data();
    gi.wd = static_cast<float>(config_.weight_decay);
  }
  return gi;
}

StepStats Optimizer::step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr,
                          double epoch) {
  const int me = backend_.rank();
  SPARCOL_CHECK_ARG(x.size() == n_ && g.size() == n_, me,
                    config_.method + ": step with " + std::to_string(x.size()) + " parameters and " +
                        std::to_string(g.size()) + " gradient entries, expected " + std::to_string(n_));
  SPARCOL_CHECK_ARG(std::isfinite(lr) && lr >= 0, me,
                    config_.method + ": learning rate must be finite and >= 0, got " + std::to_string(lr));
  before_step(epoch);
  bool finite = true;
  if (!fused_message(x, g, lr, finite)) finite = ops::all_finite(exec_, g.data(), n_);
  Verdict verdict;
  if (global_verdict()) {
    verdict = ex_.begin(t, !finite);
  } else if (!finite) {
    verdict.skip = true;
    verdict.bad_ranks = {me};
  }
  StepStats stats;
  if (verdict.skip) {
    drop_message();
    std::string ranks;
    for (int r : verdict.bad_ranks) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (config_.nan_policy == NanPolicy::kStop) {
      throw Error(ErrorCode::kNumerical, me,
                  config_.method + ": non-finite gradient (NaN or Inf) at step " + std::to_string(t) +
                      " on rank(s) " + ranks + "; stopping (nan policy 'stop')");
    }
    ++skipped_;
    stats.skipped = true;
    stats.bad_ranks = verdict.bad_ranks;
    return stats;
  }
  stats.comm = do_step(x, g, t, lr);
  exec_.synchronize();
  return stats;
}

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names{
      "dmsgd",   "dmsgd-local", "ef-sgd", "ef-sgdm",      "dgc",         "dgc-mfm", "gmc",         "gmc-plus",
      "def-a",   "cser",        "marsit", "sign-cascade", "powersgd",    "liec",    "local-sgd",   "vrl-sgd",
      "stl-sgd", "cocod-sgd",   "dpsgd",  "relaysgd",     "powergossip", "a2cid2",  "async-gossip"};
  return names;
}

bool method_is_dense(const std::string& method) {
  return method == "dmsgd" || method == "dmsgd-local";
}

std::string method_compressor(const std::string& method, const std::string& configured) {
  if (method_is_dense(method)) return "none";
  if (method == "powersgd") return "low-rank";
  if ((method == "marsit" || method == "sign-cascade") && configured != "none") return "sign";
  return configured;
}

bool method_accepts_compressor(const std::string& method, const std::string& compressor) {
  if (method != "liec" || compressor == "none") return true;
  compress::CompressorConfig cc;
  cc.name = compressor;
  cc.density = 0.5;
  try {
    return compress::make_compressor(cc)->aggregation() == compress::Aggregation::kSparse;
  } catch (const Error&) {
    return false;
  }
}

bool method_is_decentralized(const std::string& method) {
  return method == "dpsgd" || method == "relaysgd" || method == "powergossip" || method_is_async(method);
}

bool method_is_async(const std::string& method) {
  return method == "a2cid2" || method == "async-gossip";
}

std::string default_topology(const std::string& method) {
  if (method == "relaysgd") return "chain";
  return method_is_decentralized(method) ? "ring" : "";
}

bool method_is_local(const std::string& method) {
  return method == "local-sgd" || method == "vrl-sgd" || method == "stl-sgd" || method == "cocod-sgd";
}

namespace {
// The configuration the method runs: marsit and sign-cascade send scaled signs whatever compressor
// is configured (except "none": compression off).
OptimConfig effective(const OptimConfig& c) {
  OptimConfig e = c;
  if ((c.method == "marsit" || c.method == "sign-cascade") && c.exchange.compressor.name != "none")
    e.exchange.compressor.name = "sign";
  return e;
}
}  // namespace

bool method_has_wd_outside(const std::string& method) {
  return method != "gmc" && method != "gmc-plus" && method != "cser" && method != "powersgd" &&
         method != "liec" && !method_is_local(method) && !method_is_async(method);
}

std::string unsupported_reason(const Layout& layout, const OptimConfig& given, MemKind kind) {
  if (kind != MemKind::kDevice) return {};
  const OptimConfig config = effective(given);
  if (config.method == "cocod-sgd") {
    return "cocod-sgd runs on the host executor only (its progress thread's all-reduce is written for host "
           "memory)";
  }
  if (method_is_dense(config.method)) return {};  // the dense methods ignore the compressor and the groups
  if (config.method == "powersgd") return {};     // its own all-reduces and lowrank.cu's kernels
  if (config.method == "liec")
    return "liec runs on the host executor only (its sharded server routes the sparse uploads to their "
           "owners on "
           "the host)";
  if (config.method == "powergossip")
    return "powergossip's power iterations (small matrix products per edge) have no GPU kernel";

  if (method_is_async(config.method))
    return config.method + "'s communication thread works on host memory (no GPU executor)";
  if (method_is_decentralized(config.method)) return {};  // dense neighbour exchanges and fused updates
  if (config.method == "cser") {
    if (config.cser_c1.name != "zero") {
      ExchangeConfig c1 = config.exchange;
      c1.compressor = config.cser_c1;
      const std::string why = unsupported_on_device(layout, c1);
      if (!why.empty()) return "CSER's C1: " + why;
    }
    ExchangeConfig c2 = config.exchange;
    c2.compressor = config.cser_c2;
    const std::string why = unsupported_on_device(layout, c2);
    return why.empty() ? why : "CSER's C2: " + why;
  }
  return unsupported_on_device(layout, config.exchange);
}

std::unique_ptr<Optimizer> make_optimizer(comm::Backend& backend, const Layout& layout,
                                          const OptimConfig& config) {
  auto exec = std::make_unique<device::Exec>(device::Exec::host());
  auto opt = make_optimizer(backend, layout, config, *exec);
  opt->owned_exec_ = std::move(exec);
  return opt;
}

std::unique_ptr<Optimizer> make_optimizer(comm::Backend& backend, const Layout& layout,
                                          const OptimConfig& given, device::Exec& exec) {
  const int me = backend.rank();
  const OptimConfig config = effective(given);
  const auto& names = method_names();
  if (std::find(names.begin(), names.end(), config.method) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw Error(ErrorCode::kInvalidArgument, me,
                "unknown method '" + config.method + "' (valid: " + list + ")");
  }
  SPARCOL_CHECK_ARG(config.momentum >= 0 && config.momentum < 1, me,
                    "momentum must be in [0, 1), got " + std::to_string(config.momentum));
  SPARCOL_CHECK_ARG(config.weight_decay >= 0 && std::isfinite(config.weight_decay), me,
                    "weight decay must be finite and >= 0, got " + std::to_string(config.weight_decay));
  SPARCOL_CHECK_ARG(config.alpha < 0 || config.alpha <= 1, me,
                    "alpha must be in [0, 1], got " + std::to_string(config.alpha));
  SPARCOL_CHECK_ARG(config.clip_norm >= 0, me,
                    "clip norm must be >= 0, got " + std::to_string(config.clip_norm));
  SPARCOL_CHECK_ARG(config.warmup_epochs >= 0, me, "warm-up epochs must be >= 0");
  SPARCOL_CHECK_ARG(config.cser_period >= 1, me,
                    "CSER period H must be >= 1, got " + std::to_string(config.cser_period));
  if (config.wd_outside) {
    SPARCOL_CHECK_ARG(method_has_wd_outside(config.method), me,
                      config.method +
                          " does not define weight decay outside compression (wd_outside): its update is not "
                          "x - eta * aggregate (gmc, gmc-plus: global momentum; cser: split model)");
    SPARCOL_CHECK_ARG(config.weight_decay > 0, me, "wd_outside needs a weight decay > 0");
  }
  const bool sign_ring = config.method == "marsit" || config.method == "sign-cascade";
  SPARCOL_CHECK_ARG(
      config.marsit_compensation == "local" || config.marsit_compensation == "global", me,
      "marsit compensation must be 'local' or 'global', got '" + config.marsit_compensation + "'");
  SPARCOL_CHECK_ARG(config.marsit_compensation == "local" || config.method == "marsit", me,
                    "the global compensation is Marsit's (method marsit), not " + config.method + "'s");
  SPARCOL_CHECK_ARG(config.low_rank >= 1, me,
                    "low rank must be >= 1, got " + std::to_string(config.low_rank));
  if (method_is_local(config.method)) {
    SPARCOL_CHECK_ARG(config.period >= 1, me,
                      config.method + ": the period H must be >= 1, got " + std::to_string(config.period));
    if (config.method == "stl-sgd") {
      SPARCOL_CHECK_ARG(
          config.stl_stages >= 1 && config.stl_stages <= 30, me,
          "stl-sgd: the number of stages must be in [1, 30], got " + std::to_string(config.stl_stages));
      SPARCOL_CHECK_ARG(config.stl_stages == 1 || config.total_steps > 0, me,
                        "stl-sgd: the stages divide the run, so it needs the total number of steps (> 0)");
    }
  }
  if (method_is_async(config.method)) {
    SPARCOL_CHECK_ARG(config.comm_rate > 0 && config.comm_rate <= 1000 && std::isfinite(config.comm_rate), me,
                      config.method + ": the communication rate must be in (0, 1000], got " +
                          std::to_string(config.comm_rate));
    SPARCOL_CHECK_ARG(config.comm_schedule == "exact" || config.comm_schedule == "poisson", me,
                      config.method + ": unknown communication schedule '" + config.comm_schedule +
                          "' (valid: exact, poisson)");
    SPARCOL_CHECK_ARG(config.acid_order == "mix-first" || config.acid_order == "exchange-first", me,
                      config.method + ": unknown averaging order '" + config.acid_order +
                          "' (valid: mix-first, exchange-first)");
  }
  if (method_is_decentralized(config.method)) {
    SPARCOL_CHECK_ARG(config.low_rank >= 1, me,
                      "powergossip: --low-rank must be >= 1, got " + std::to_string(config.low_rank));
    SPARCOL_CHECK_ARG(config.power_iters >= 1, me,
                      "powergossip: --power-iters must be >= 1, got " + std::to_string(config.power_iters));
    SPARCOL_CHECK_ARG(
        config.diffusion_rate > 0 && std::isfinite(config.diffusion_rate), me,
        "powergossip: the diffusion rate must be > 0, got " + std::to_string(config.diffusion_rate));
  } else {
    SPARCOL_CHECK_ARG(
        config.topology.empty(), me,
        config.method +
            " does not use a topology (only dpsgd, relaysgd, powergossip, a2cid2, async-gossip do)");
  }
  layout.validate();
  SPARCOL_CHECK_ARG(layout.rows.empty() || layout.rows.size() == layout.tensors.size(), me,
                    "layout: " + std::to_string(layout.rows.size()) + " first dimensions for " +
                        std::to_string(layout.tensors.size()) + " tensors");
  const std::string why = unsupported_reason(layout, config, exec.kind());
  SPARCOL_CHECK_ARG(why.empty(), me, config.method + " on a device executor: " + why);
  const auto& m = config.method;
  if (m == "dmsgd" || m == "dmsgd-local")
    return detail::make_dmsgd(backend, layout, config, exec, m == "dmsgd-local");
  if (m == "ef-sgd" || m == "ef-sgdm")
    return detail::make_ef_sgd(backend, layout, config, exec, m == "ef-sgdm");
  if (m == "dgc" || m == "dgc-mfm") return detail::make_dgc(backend, layout, config, exec, m == "dgc-mfm");
  if (m == "gmc" || m == "gmc-plus") return detail::make_gmc(backend, layout, config, exec, m == "gmc-plus");
  if (m == "def-a") return detail::make_def_a(backend, layout, config, exec);
  if (m == "powersgd") return detail::make_powersgd(backend, layout, config, exec);
  if (m == "liec") return detail::make_liec(backend, layout, config, exec);
  if (sign_ring) return detail::make_sign_ring(backend, layout, config, exec, m == "sign-cascade");
  if (m == "cocod-sgd") return detail::make_cocod_sgd(backend, layout, config, exec);
  if (method_is_local(m)) return detail::make_local_sgd(backend, layout, config, exec);
  if (m == "dpsgd") return detail::make_dpsgd(backend, layout, config, exec);
  if (m == "relaysgd") return detail::make_relaysgd(backend, layout, config, exec);
  if (m == "powergossip") return detail::make_powergossip(backend, layout, config, exec);
  if (method_is_async(m)) return detail::make_async_gossip(backend, layout, config, exec);
  return detail::make_cser(backend, layout, config, exec);
}

}  // namespace sparcol::optim
