// sparcol-toy: the GMC paper's toy experiment (ALGORITHMS.md 11), with every optimizer.
//
// K workers (two in the paper) minimise F(w) = (1/K) sum_k F_k(w) with F_k(w) = 1/2 ||w - c_k||^2,
// c_k = +a for even k and -a for odd k, so the global optimum w* = mean_k c_k (0 for even K) differs
// from every local optimum. Each worker takes exact gradients (plus optional Gaussian noise) and
// the optimizer compresses what it sends (top-k by default for every method).
//
// Workers are MPI ranks (mpirun -np 2 sparcol-toy) or threads of one process (--simulate K); both
// run the same optimizer code over a different Backend, so their iterates are bitwise identical.
// Rank 0 prints the summary table and writes one HDF5 trace per run (docs/toy.md).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "common/app_support.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/io/h5.hpp"
#include "sparcol/optim/optimizer.hpp"

namespace {

using sparcol::Error;
using sparcol::ErrorCode;
using sparcol::comm::Backend;

struct ToyConfig {
  int setting = 1;
  std::vector<std::string> methods{"dmsgd", "dgc-mfm", "dgc", "gmc"};
  std::string compressor = "topk";
  int d = 0;            // 0: the setting's value
  std::vector<int> ks;  // empty: the setting's values
  double beta = 0.9;
  std::string topology;    // the decentralized methods' graph ("": the method's default)
  double comm_rate = 1.0;  // a2cid2, async-gossip: pairwise averagings per step
  double lr = 0.005;
  double alpha = -1.0;  // < 0: the method's default
  std::string marsit_compensation = "local";
  std::string down_compressor = "topk";  // liec: C_down (none, topk, randk)
  double down_density = -1.0;            // liec: C_down's density; < 0: k / d, the upload's
  long long iterations = 20000;
  std::uint64_t seed = 1;
  double noise = 0.0;
  int simulate = 0;  // 0: one worker per MPI rank
  std::string h5;    // trace path; may contain {method} and {k}
  std::string csv;   // summary table as CSV
  bool quiet = false;
  // The local-SGD family (local-sgd, vrl-sgd, stl-sgd)
  int period = 8;
  int stl_stages = 3;
  std::string stl_data = "iid";
  std::string avg_compressor = "none";
  double avg_density = 0.5;
};

// The method options and the methods that read them. Each drives --help, and a flag given when none of
// the chosen methods reads it is an error naming the flag and the methods (exit 2), as in
// sparcol-train (docs/train.md, "Who reads which option").
struct MethodOption {
  const char* flag;
  std::vector<std::string> readers;
};
const std::vector<MethodOption>& method_options() {
  static const std::vector<std::string> compressing{"ef-sgd",   "ef-sgdm", "dgc",  "dgc-mfm", "gmc",
                                                    "gmc-plus", "def-a",   "cser", "liec"};
  static const std::vector<MethodOption> table{
      {"--compressor", compressing},
      {"--k", compressing},
      {"--alpha", {"gmc-plus", "def-a"}},
      {"--marsit-compensation", {"marsit"}},
      {"--down-compressor", {"liec"}},
      {"--down-density", {"liec"}},
      {"--beta",
       {"dmsgd",     "dmsgd-local", "ef-sgdm",  "dgc",         "dgc-mfm",   "gmc",         "gmc-plus",
        "def-a",     "cser",        "powersgd", "liec",        "local-sgd", "vrl-sgd",     "stl-sgd",
        "cocod-sgd", "dpsgd",       "relaysgd", "powergossip", "a2cid2",    "async-gossip"}},
      {"--period", {"local-sgd", "vrl-sgd", "stl-sgd", "cocod-sgd"}},
      {"--stl-stages", {"stl-sgd"}},
      {"--stl-data", {"stl-sgd"}},
      {"--avg-compressor", {"local-sgd", "vrl-sgd", "stl-sgd"}},
      {"--avg-density", {"local-sgd", "vrl-sgd", "stl-sgd"}},
      {"--topology", {"dpsgd", "relaysgd", "powergossip", "a2cid2", "async-gossip"}},
      {"--comm-rate", {"a2cid2", "async-gossip"}},
  };
  return table;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

struct Problem {
  int d;
  std::vector<float> a, w0;
};

Problem make_problem(const ToyConfig& c) {
  Problem p;
  if (c.setting == 1) {
    p.d = c.d > 0 ? c.d : 2;
    SPARCOL_CHECK_ARG(
        p.d == 2, -1,
        "setting 1 is two-dimensional (a = (2, 1)); use --setting 2 for --d " + std::to_string(p.d));
    p.a = {2.0f, 1.0f};
    p.w0 = {3.0f, -3.0f};
  } else {
    p.d = c.d > 0 ? c.d : 10;
    p.a.resize(static_cast<std::size_t>(p.d));
    p.w0.resize(static_cast<std::size_t>(p.d));
    for (int i = 0; i < p.d; ++i) {
      // a = linspace(2, 1, d); w0 = 3 * (1, -1, 1, ...)
      p.a[static_cast<std::size_t>(i)] =
          p.d == 1 ? 2.0f : static_cast<float>(2.0 - static_cast<double>(i) / (p.d - 1));
      p.w0[static_cast<std::size_t>(i)] = (i % 2 == 0) ? 3.0f : -3.0f;
    }
  }
  return p;
}

struct Trace {
  std::vector<std::int64_t> step;
  std::vector<double> x;  // rows of d
  std::vector<double> distance, loss, elements_up, elements_down;
  double up_all = 0, down = 0, dense = 0;  // totals for the RCC
  std::uint64_t skipped = 0;
  double alpha = 0;  // as the optimizer resolved it (the method's default unless --alpha)
};

struct RunSpec {
  std::string method;
  int k;
};

// One run of one method on this rank's backend; fills `trace` on rank 0.
void run_one(Backend& b, const ToyConfig& c, const Problem& p, const RunSpec& spec, Trace& trace) {
  const int K = b.size();
  const auto d = static_cast<std::uint64_t>(p.d);
  sparcol::optim::OptimConfig oc;
  oc.method = spec.method;
  oc.momentum = c.beta;
  oc.alpha = c.alpha;
  // marsit and sign-cascade always send scaled signs (they do not read --compressor or --k).
  const bool sign_ring = spec.method == "marsit" || spec.method == "sign-cascade";
  oc.exchange.compressor.name = sign_ring ? "sign" : c.compressor;
  oc.marsit_compensation = c.marsit_compensation;
  oc.exchange.compressor.density = static_cast<double>(spec.k) / static_cast<double>(p.d);
  oc.exchange.seed = c.seed;
  oc.liec_down = {c.down_compressor, c.down_compressor == "none" ? 1.0
                                     : c.down_density > 0        ? c.down_density
                                                                 : oc.exchange.compressor.density};
  oc.topology = sparcol::optim::method_is_decentralized(spec.method) ? c.topology : std::string();
  if (sparcol::optim::method_is_async(spec.method)) {
    oc.comm_rate = c.comm_rate;
    oc.total_steps = static_cast<std::uint64_t>(c.iterations);  // the protocol ends in the last iteration
  }
  oc.cser_c1 = {c.compressor, oc.exchange.compressor.density};
  oc.cser_c2 = {c.compressor, oc.exchange.compressor.density};
  if (sparcol::optim::method_is_local(spec.method)) {
    // The averaging's compressor (none: exact averaging); rank 0's own model is what is recorded.
    oc.exchange.compressor.name = c.avg_compressor;
    oc.exchange.compressor.density = c.avg_compressor == "none" ? 1.0 : c.avg_density;
    oc.period = c.period;
    oc.stl_stages = c.stl_stages;
    oc.stl_iid = c.stl_data == "iid";
    oc.total_steps = static_cast<std::uint64_t>(c.iterations);
  }
  auto opt = sparcol::optim::make_optimizer(b, sparcol::optim::Layout::flat(d), oc);

  // Worker centres and the global optimum.
  std::vector<float> center(d), wstar(d, 0.0f);
  for (std::uint64_t i = 0; i < d; ++i) {
    center[i] = (b.rank() % 2 == 0 ? 1.0f : -1.0f) * p.a[i];
    double s = 0;
    for (int r = 0; r < K; ++r) s += (r % 2 == 0 ? 1.0 : -1.0) * p.a[i];
    wstar[i] = static_cast<float>(s / K);
  }
  // The decentralized methods keep a model per rank: the trace follows their average (an all-reduce
  // of the toy's bookkeeping, not counted as the method's communication). It is sparcol's ring
  // all-reduce, not MPI_Allreduce: its waits have the backend's timeout, so a stopped peer is a named
  // timeout here too instead of a hang in a call that cannot give up (docs/reliability.md).
  const bool per_worker = opt->per_worker_models();
  std::vector<float> mean(d);
  std::unique_ptr<sparcol::coll::RingAllreduce> averaging;
  if (per_worker) averaging = std::make_unique<sparcol::coll::RingAllreduce>(b, d);
  auto record = [&](std::int64_t step, const std::vector<float>& xk, const sparcol::optim::CommStats* st) {
    const std::vector<float>* xp = &xk;
    if (per_worker) {
      std::copy(xk.begin(), xk.end(), mean.begin());
      averaging->run(mean.data(), static_cast<std::uint64_t>(step));
      for (auto& v : mean) v /= static_cast<float>(K);
      xp = &mean;
    }
    const std::vector<float>& x = *xp;
    if (b.rank() != 0) return;
    double dist2 = 0, loss = 0;
    for (std::uint64_t i = 0; i < d; ++i) {
      const double e = static_cast<double>(x[i]) - wstar[i];
      dist2 += e * e;
      trace.x.push_back(x[i]);
    }
    for (int r = 0; r < K; ++r) {
      for (std::uint64_t i = 0; i < d; ++i) {
        const double e = static_cast<double>(x[i]) - (r % 2 == 0 ? 1.0 : -1.0) * p.a[i];
        loss += 0.5 * e * e / K;
      }
    }
    trace.step.push_back(step);
    trace.distance.push_back(std::sqrt(dist2));
    trace.loss.push_back(loss);
    trace.elements_up.push_back(st ? (per_worker ? st->elements_up : st->elements_up_all / K) : 0.0);
    trace.elements_down.push_back(st ? st->elements_down : 0.0);
    if (st) {
      trace.up_all += st->elements_up_all;
      trace.down += st->elements_down;
      trace.dense += st->dense_elements;
    }
  };

  std::vector<float> x = p.w0, g(d);
  record(0, x, nullptr);
  for (long long t = 0; t < c.iterations; ++t) {
    const auto tt = static_cast<std::uint64_t>(t);
    const auto z = opt->gradient_point(x, c.lr);
    sparcol::CounterRng noise(c.seed, sparcol::kStreamNoise, static_cast<std::uint32_t>(b.rank()));
    noise.set_counter(tt * d);
    for (std::uint64_t i = 0; i < d; ++i) {
      g[i] = z[i] - center[i];
      if (c.noise > 0) g[i] += static_cast<float>(c.noise * noise.normal());
    }
    const auto st = opt->step(x, g, tt, c.lr);
    record(t + 1, x, &st.comm);
  }
  trace.skipped = opt->skipped_steps();
  trace.alpha = opt->alpha();
}

std::string trace_path(const std::string& pattern, const RunSpec& spec, bool many) {
  if (pattern.empty()) return {};
  std::string p = pattern;
  bool placeholder = false;
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"{method}", spec.method},
                                   std::pair<std::string, std::string>{"{k}", std::to_string(spec.k)}}) {
    for (auto pos = p.find(key); pos != std::string::npos; pos = p.find(key)) {
      p.replace(pos, key.size(), value);
      placeholder = true;
    }
  }
  if (many && !placeholder) {
    // file.h5 -> file-<method>-k<k>.h5 when several runs share one --h5 without placeholders.
    const auto dot = p.rfind('.');
    const std::string stem = dot == std::string::npos ? p : p.substr(0, dot);
    const std::string ext = dot == std::string::npos ? "" : p.substr(dot);
    p = stem + "-" + spec.method + "-k" + std::to_string(spec.k) + ext;
  }
  return p;
}

void write_trace(const std::string& path, const ToyConfig& c, const Problem& p, const RunSpec& spec, int K,
                 const Trace& t) {
  sparcol::io::File f(path, sparcol::io::File::Mode::kCreate);
  f.write<std::int64_t>("step", t.step);
  auto x = f.create_extendable<double>("x", {static_cast<std::uint64_t>(p.d), 0, 0});
  x.append<double>(t.x);
  f.write<double>("distance", t.distance);
  f.write<double>("loss", t.loss);
  f.write<double>("elements_up", t.elements_up);
  f.write<double>("elements_down", t.elements_down);
  f.write<double>("a", std::vector<double>(p.a.begin(), p.a.end()));
  f.set_attr("program", "sparcol-toy");
  f.set_attr("version", SPARCOL_VERSION_STRING);
  f.set_attr("method", spec.method);
  f.set_attr("compressor", sparcol::optim::method_compressor(spec.method, c.compressor));
  f.set_attr("setting", static_cast<std::int64_t>(c.setting));
  f.set_attr("d", static_cast<std::int64_t>(p.d));
  f.set_attr("k", static_cast<std::int64_t>(spec.k));
  f.set_attr("workers", static_cast<std::int64_t>(K));
  f.set_attr("beta", c.beta);
  f.set_attr("lr", c.lr);
  f.set_attr("alpha", t.alpha);
  f.set_attr("iterations", static_cast<std::int64_t>(c.iterations));
  f.set_attr("seed", static_cast<std::int64_t>(c.seed));
  f.set_attr("noise", c.noise);
  f.set_attr("rcc", t.dense > 0 ? (t.up_all + t.down) / t.dense : 0.0);
  f.set_attr("skipped_steps", static_cast<std::int64_t>(t.skipped));
  f.close();
}

struct Summary {
  RunSpec spec;
  double final_dist, mean_tail, max_tail, rcc;
  long long first_below;  // -1: never
};

Summary summarize(const RunSpec& spec, const Trace& t) {
  Summary s{spec, t.distance.back(), 0, 0, t.dense > 0 ? (t.up_all + t.down) / t.dense : 0.0, -1};
  const std::size_t n = t.distance.size();
  const std::size_t tail = std::max<std::size_t>(1, (n - 1) / 10);
  for (std::size_t i = n - tail; i < n; ++i) {
    s.mean_tail += t.distance[i] / static_cast<double>(tail);
    s.max_tail = std::max(s.max_tail, t.distance[i]);
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (t.distance[i] < 0.1) {
      s.first_below = t.step[i];
      break;
    }
  }
  return s;
}

void print_table(const std::vector<Summary>& rows, const ToyConfig& c, int K, const Problem& p,
                 std::ostream& os) {
  os << "# sparcol-toy: setting " << c.setting << ", workers " << K << ", d " << p.d << ", compressor "
     << c.compressor << ", beta " << c.beta << ", lr " << c.lr << ", iterations " << c.iterations
     << ", noise " << c.noise << ", seed " << c.seed << "\n";
  os << std::left << std::setw(12) << "method" << std::right << std::setw(4) << "k" << std::setw(14)
     << "final_dist" << std::setw(14) << "mean_last10%" << std::setw(14) << "max_last10%" << std::setw(12)
     << "first<0.1" << std::setw(10) << "RCC"
     << "\n";
  for (const auto& r : rows) {
    os << std::left << std::setw(12) << r.spec.method << std::right << std::setw(4) << r.spec.k
       << std::scientific << std::setprecision(4) << std::setw(14) << r.final_dist << std::setw(14)
       << r.mean_tail << std::setw(14) << r.max_tail << std::defaultfloat << std::setw(12)
       << (r.first_below < 0 ? std::string("never") : std::to_string(r.first_below)) << std::fixed
       << std::setprecision(4) << std::setw(10) << r.rcc << std::defaultfloat << "\n";
  }
}

void write_csv(const std::string& path, const std::vector<Summary>& rows) {
  std::ofstream os(path);
  if (!os) throw Error(ErrorCode::kIo, 0, "cannot write '" + path + "'");
  os << "method,k,final_distance,mean_last10pct,max_last10pct,first_step_below_0.1,rcc\n";
  for (const auto& r : rows)
    os << r.spec.method << "," << r.spec.k << "," << r.final_dist << "," << r.mean_tail << "," << r.max_tail
       << "," << r.first_below << "," << r.rcc << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  sparcol::comm::MpiEnvironment env(&argc, &argv, sparcol::app::mpi_thread_level(argc, argv));
  const int rank = sparcol::comm::MpiEnvironment::world_rank();
  const int world = sparcol::comm::MpiEnvironment::world_size();
  sparcol::app::install_termination_report(rank);
  sparcol::app::install_async_failure_report(rank, sparcol::comm::MpiEnvironment::world_size() > 1);

  ToyConfig c;
  std::string methods = "paper";
  std::string ks;
  CLI::App app{
      "sparcol-toy: the GMC paper's toy experiment (ALGORITHMS.md section 11) with every optimizer.\n"
      "K workers minimise F(w) = mean_k 1/2 ||w - c_k||^2 with c_k = +a (even k) or -a (odd k). Run one\n"
      "worker per MPI rank (mpirun -np 2 sparcol-toy) or all in one process (--simulate 2). Prints a\n"
      "summary per run: final distance to the optimum, mean and max over the last 10% of iterations,\n"
      "first iteration below 0.1, and the relative communication cost RCC. See docs/toy.md."};
  app.set_version_flag("--version", std::string("sparcol ") + SPARCOL_VERSION_STRING);
  app.add_option("--setting", c.setting,
                 "1: d = 2, a = (2, 1), w0 = (3, -3), k = 1; 2: d = 10, a = linspace(2, 1, 10), "
                 "w0 = 3(1, -1, ...), k in {1, 2, 5}")
      ->check(CLI::IsMember({1, 2}))
      ->capture_default_str();
  app.add_option("--method", methods,
                 "comma-separated methods, 'paper' (dmsgd, dgc-mfm, dgc, gmc) or 'all'; names: dmsgd, "
                 "dmsgd-local, ef-sgd, ef-sgdm, dgc, dgc-mfm, gmc, gmc-plus, def-a, cser, marsit, "
                 "sign-cascade, powersgd, liec, local-sgd, vrl-sgd, stl-sgd, cocod-sgd, dpsgd, relaysgd, "
                 "powergossip, a2cid2, "
                 "async-gossip ('all' leaves out the asynchronous a2cid2 and async-gossip, whose iterates "
                 "depend on timing)")
      ->capture_default_str();
  app.add_option(
         "--compressor", c.compressor,
         "compressor for every method: topk, topk-sampled, randk, randk-shared, rbgs, sign, sidco, none")
      ->capture_default_str();
  app.add_option("--d", c.d, "dimension (default: the setting's)")->check(CLI::Range(1, 1 << 24));
  app.add_option("--k", ks, "elements sent per worker, comma-separated for a sweep (default: the setting's)");
  app.add_option("--beta", c.beta, "momentum coefficient, in [0, 1)")->capture_default_str();
  app.add_option(
      "--topology", c.topology,
      "graph of dpsgd, relaysgd, powergossip: ring, torus, exponential, complete, chain, binary-tree, "
      "double-binary-tree (default ring; relaysgd: chain); the trace follows the workers' mean");
  app.add_option(
         "--comm-rate", c.comm_rate,
         "a2cid2, async-gossip: pairwise averagings per iteration and rank, in (0, 1000] (asynchronous: "
         "the iterates depend on timing)")
      ->capture_default_str();
  app.add_option("--lr", c.lr, "learning rate, > 0")->capture_default_str();
  app.add_option("--alpha", c.alpha, "detach coefficient, in [0, 1] (default: gmc-plus 0.5, def-a 0.3)");
  app.add_option("--marsit-compensation", c.marsit_compensation,
                 "marsit's error: local (p - lambda_k b_k) or global (p - lambda B, an ablation)")
      ->check(CLI::IsMember({"local", "global"}))
      ->capture_default_str();
  app.add_option("--down-compressor", c.down_compressor,
                 "liec: the owners' downward compressor of their chunk (chunk r of d / K elements per rank)")
      ->check(CLI::IsMember({"none", "topk", "randk"}))
      ->capture_default_str();
  app.add_option("--down-density", c.down_density, "liec: density of --down-compressor (default: k / d)")
      ->check(CLI::Range(1e-9, 1.0));
  app.add_option("--iterations", c.iterations, "iterations per run")
      ->check(CLI::Range(1LL, 100000000LL))
      ->capture_default_str();
  app.add_option("--seed", c.seed, "seed for noise and shared random choices")
      ->check(sparcol::app::non_negative())
      ->capture_default_str();
  app.add_option("--noise", c.noise, "standard deviation of Gaussian gradient noise (0: exact gradients)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--simulate", c.simulate, "run K workers as threads of this process instead of MPI ranks")
      ->check(CLI::Range(1, 1024));
  app.add_option("--h5", c.h5,
                 "HDF5 trace per run; {method} and {k} in the name are replaced (otherwise "
                 "'-<method>-k<k>' is inserted when there are several runs)");
  app.add_option("--csv", c.csv, "also write the summary table as CSV");
  app.add_option("--period", c.period, "local steps between model averagings H (stl-sgd: the first stage's)")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  app.add_option("--stl-stages", c.stl_stages, "stl-sgd: number of stages")
      ->check(CLI::Range(1, 30))
      ->capture_default_str();
  app.add_option("--stl-data", c.stl_data, "stl-sgd: period growth per stage, iid (x2) or noniid (x sqrt 2)")
      ->check(CLI::IsMember({"iid", "noniid"}))
      ->capture_default_str();
  app.add_option("--avg-compressor", c.avg_compressor,
                 "compress the model difference at an averaging (error feedback); none: exact")
      ->capture_default_str();
  app.add_option("--avg-density", c.avg_density, "density of --avg-compressor, in (0, 1]")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  app.add_flag("--quiet", c.quiet, "print nothing but errors");
  for (const auto& o : method_options()) {
    auto* opt = app.get_option(o.flag);
    opt->description(opt->get_description() + " [only --method " + join(o.readers) + "]");
  }
  if (auto st = sparcol::app::parse(app, argc, argv, rank)) return *st;

  // Validation: every rank sees the same flags, so every rank reaches the same verdict.
  Problem p;
  std::vector<RunSpec> runs;
  int K = 0;
  const int invalid = sparcol::app::guarded(rank, false, [&]() -> int {
    c.methods.clear();
    std::stringstream method_list(methods);
    auto add = [&](const std::string& m) {
      if (std::find(c.methods.begin(), c.methods.end(), m) == c.methods.end()) c.methods.push_back(m);
    };
    for (std::string m; std::getline(method_list, m, ',');) {
      const auto& names = sparcol::optim::method_names();
      if (m == "paper") {
        for (const char* pm : {"dmsgd", "dgc-mfm", "dgc", "gmc"}) add(pm);
      } else if (m == "all") {
        for (const auto& am : names)
          if (!sparcol::optim::method_is_async(am)) add(am);
      } else {
        SPARCOL_CHECK_ARG(
            std::find(names.begin(), names.end(), m) != names.end(), rank,
            "--method: unknown method '" + m +
                "' (valid: paper, all, or a list of dmsgd, dmsgd-local, "
                "ef-sgd, ef-sgdm, dgc, dgc-mfm, gmc, gmc-plus, def-a, cser, marsit, sign-cascade, "
                "powersgd, liec, local-sgd, vrl-sgd, stl-sgd, cocod-sgd, dpsgd, relaysgd, powergossip, "
                "a2cid2, "
                "async-gossip)");
        add(m);
      }
    }
    const auto& names = sparcol::compress::compressor_names();
    SPARCOL_CHECK_ARG(std::find(names.begin(), names.end(), c.compressor) != names.end(), rank,
                      "--compressor: unknown compressor '" + c.compressor +
                          "' (valid: topk, topk-sampled, randk, randk-shared, rbgs, sign, sidco, none)");
    SPARCOL_CHECK_ARG(std::find(names.begin(), names.end(), c.avg_compressor) != names.end(), rank,
                      "--avg-compressor: unknown compressor '" + c.avg_compressor + "'");
    SPARCOL_CHECK_ARG(app.count("--avg-density") == 0 || c.avg_compressor != "none", rank,
                      "--avg-density needs --avg-compressor (the averaging is exact with 'none')");
    p = make_problem(c);
    if (ks.empty()) {
      c.ks = c.setting == 1 ? std::vector<int>{1} : std::vector<int>{1, 2, 5};
    } else {
      std::stringstream ss(ks);
      for (std::string k; std::getline(ss, k, ',');) {
        int v = 0;
        try {
          std::size_t used = 0;
          v = std::stoi(k, &used);
          if (used != k.size()) throw std::invalid_argument(k);
        } catch (const std::exception&) {
          throw Error(ErrorCode::kInvalidArgument, rank, "--k: '" + k + "' is not an integer");
        }
        c.ks.push_back(v);
      }
    }
    for (int k : c.ks) {
      SPARCOL_CHECK_ARG(k >= 1 && k <= p.d, rank,
                        "--k " + std::to_string(k) + " must be in [1, d = " + std::to_string(p.d) + "]");
    }
    SPARCOL_CHECK_ARG(c.beta >= 0 && c.beta < 1, rank,
                      "--beta must be in [0, 1), got " + std::to_string(c.beta));
    SPARCOL_CHECK_ARG(c.lr > 0 && std::isfinite(c.lr), rank, "--lr must be > 0, got " + std::to_string(c.lr));
    SPARCOL_CHECK_ARG(c.comm_rate > 0 && c.comm_rate <= 1000 && std::isfinite(c.comm_rate), rank,
                      "--comm-rate must be in (0, 1000], got " + std::to_string(c.comm_rate));
    SPARCOL_CHECK_ARG(c.alpha < 0 || c.alpha <= 1, rank,
                      "--alpha must be in [0, 1], got " + std::to_string(c.alpha));
    SPARCOL_CHECK_ARG(c.simulate == 0 || world == 1, rank,
                      "--simulate runs all workers in one process: start it without mpirun (or with -np 1)");
    // Values first, then whether the chosen methods read the flags given.
    for (const auto& o : method_options()) {
      const bool read = std::any_of(c.methods.begin(), c.methods.end(), [&](const std::string& m) {
        return std::find(o.readers.begin(), o.readers.end(), m) != o.readers.end();
      });
      SPARCOL_CHECK_ARG(read || app.count(o.flag) == 0, rank,
                        std::string(o.flag) + " applies to --method " + join(o.readers) +
                            " only (this run: --method " + join(c.methods) + ")");
    }
    K = c.simulate > 0 ? c.simulate : world;
    // Methods without a density run once, recorded with k = d, whatever --k says: the dense ones
    // (dmsgd, dmsgd-local), marsit and sign-cascade (signs), powersgd (its own factorisation) and the
    // local-SGD family (its compression is --avg-compressor's, not --k's), and the decentralized
    // methods (they send models or their low-rank differences to neighbours, never a top-k).
    auto has_k = [](const std::string& m) {
      return !sparcol::optim::method_is_local(m) && !sparcol::optim::method_is_decentralized(m) &&
             sparcol::optim::method_compressor(m, "topk") == "topk";
    };
    for (const auto& m : c.methods)
      if (!has_k(m)) runs.push_back({m, p.d});
    for (int k : c.ks)
      for (const auto& m : c.methods)
        if (has_k(m)) runs.push_back({m, k});
    if (!c.h5.empty()) {
      for (const auto& r : runs) {
        const auto why = sparcol::app::check_writable(trace_path(c.h5, r, runs.size() > 1));
        SPARCOL_CHECK(why.empty(), ErrorCode::kIo, rank, "--h5: " + why);
      }
    }
    if (!c.csv.empty()) {
      const auto why = sparcol::app::check_writable(c.csv);
      SPARCOL_CHECK(why.empty(), ErrorCode::kIo, rank, "--csv: " + why);
    }
    return 0;
  });
  if (invalid != 0) return invalid;

  // The runs: an error now (a dead peer, a timeout) aborts the other ranks instead of stranding them.
  return sparcol::app::guarded(rank, world > 1, [&]() -> int {
    std::vector<Summary> rows;
    for (const auto& spec : runs) {
      Trace trace;
      if (c.simulate > 0) {
        sparcol::comm::LoopbackWorld::spawn(K, [&](Backend& b) { run_one(b, c, p, spec, trace); });
      } else {
        auto mpi = sparcol::comm::MpiBackend::world();
        run_one(*mpi, c, p, spec, trace);
      }
      if (rank == 0) {
        rows.push_back(summarize(spec, trace));
        if (!c.h5.empty()) write_trace(trace_path(c.h5, spec, runs.size() > 1), c, p, spec, K, trace);
      }
    }
    if (rank == 0) {
      if (!c.quiet) print_table(rows, c, K, p, std::cout);
      if (!c.csv.empty()) write_csv(c.csv, rows);
    }
    return 0;
  });
}
