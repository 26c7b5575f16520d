// sparcol.Optimizer (every method of docs/optimizers.md over one flat float32 vector) and
// sparcol.BucketExchange (error feedback around one Exchange: what the DDP hooks run per bucket).
//
//   opt = sparcol.Optimizer(comm, n, method="gmc", compressor="topk", density=0.01)
//   for t in range(steps):
//       z = opt.gradient_point(x, lr)     # read-only view: x itself, or the optimizer's buffer
//       g = gradient at z
//       stats = opt.step(x, g, t, lr)     # x updated in place, identically on every rank
//   opt.state()                           # {name: writable float32 view}, for checkpoints
//
// Every argument is checked here, before the library is called (and so before any message):
// unknown names and values out of range are ValueError naming the argument, wrong buffers TypeError.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "common.hpp"
#include "sparcol/optim/exchange.hpp"
#include "sparcol/optim/optimizer.hpp"

namespace sparcol::python {

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

void check_name(const std::string& name, const std::vector<std::string>& names, const char* arg,
                const char* what) {
  if (std::find(names.begin(), names.end(), name) == names.end())
    value_error(std::string(arg) + ": unknown " + what + " '" + name + "' (one of " + join(names) + ")");
}

void check_finite_range(double v, double lo, double hi, bool hi_open, const char* arg, const char* range) {
  if (!(std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi)))
    value_error(std::string(arg) + ": must lie in " + range + ", got " +
                py::str(py::float_(v)).cast<std::string>());
}

// A layout from Python: an int n (one tensor), or a sequence of (name, size[, dims]).
optim::Layout to_layout(const py::handle& obj) {
  if (py::isinstance<py::int_>(obj)) {
    const long long n = obj.cast<long long>();
    if (n < 0) value_error("layout: a negative size " + std::to_string(n));
    return optim::Layout::flat(static_cast<std::uint64_t>(n));
  }
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    type_error("layout: expected an int or a sequence of (name, size[, dims]) tuples");
  optim::Layout layout;
  std::uint64_t offset = 0;
  for (const auto& item : obj.cast<py::sequence>()) {
    auto t = item.cast<py::sequence>();
    if (t.size() < 2 || t.size() > 3) type_error("layout: each tensor is (name, size[, dims])");
    optim::TensorSpec spec;
    spec.name = t[0].cast<std::string>();
    const long long size = t[1].cast<long long>();
    if (size < 0) value_error("layout: tensor '" + spec.name + "' has a negative size");
    spec.size = static_cast<std::uint64_t>(size);
    spec.dims = t.size() == 3 ? t[2].cast<int>() : 1;
    spec.offset = offset;
    offset += spec.size;
    layout.tensors.push_back(spec);
  }
  return layout;
}

py::dict stats_dict(const optim::CommStats& c) {
  py::dict d;
  d["bytes_sent"] = c.bytes_sent;
  d["bytes_recv"] = c.bytes_recv;
  d["bytes_up"] = c.bytes_up;
  d["bytes_down"] = c.bytes_down;
  d["bytes_sent_down"] = c.bytes_sent_down;
  d["elements_up"] = c.elements_up;
  d["elements_up_all"] = c.elements_up_all;
  d["elements_down"] = c.elements_down;
  d["dense_elements"] = c.dense_elements;
  d["rcc"] = c.rcc();
  d["time_compress_s"] = c.time_compress_s;
  d["time_comm_s"] = c.time_comm_s;
  return d;
}

// A read-only or writable numpy view of n floats at p, keeping `base` alive.
py::array view(float* p, std::size_t n, const py::handle& base, bool writable) {
  py::array a(py::dtype::of<float>(), {static_cast<py::ssize_t>(n)}, {}, p, base);
  if (!writable) a.attr("setflags")(py::arg("write") = false);
  return a;
}

class PyOptimizer {
 public:
  PyOptimizer(Communicator& comm, const optim::Layout& layout, const optim::OptimConfig& config)
      : impl_(optim::make_optimizer(comm.backend(), layout, config)) {}
  optim::Optimizer& impl() const { return *impl_; }

 private:
  std::unique_ptr<optim::Optimizer> impl_;
};

void check_vector(const char* name, std::size_t got, std::uint64_t n) {
  if (got != n)
    value_error(std::string(name) + ": length " + std::to_string(got) + " != the optimizer's size " +
                std::to_string(n));
}

void check_lr(double lr) {
  if (!(std::isfinite(lr) && lr >= 0.0))
    value_error("lr: must be finite and >= 0, got " + py::str(py::float_(lr)).cast<std::string>());
}

// Error feedback around one Exchange, for one DDP bucket: residual r (starts at 0), per call
//   (1) the NaN verdict of the local gradient, shared by all ranks (Exchange::begin);
//   (2) v = r + g; the Exchange compresses v, leaves v - C(v) in r and returns mean_k C(v_k);
//   (3) out <- that mean. On a skip verdict (some rank's gradient not finite) r is unchanged and
//       out is all NaN on every rank, so every replica sees the same non-finite gradient.
// grad and out may be the same buffer (DDP's bucket).
class PyBucketExchange {
 public:
  PyBucketExchange(Communicator& comm, std::uint64_t n, const optim::ExchangeConfig& config)
      : exec_(device::Exec::host()),
        ex_(comm.backend(), optim::Layout::flat(n), config, exec_),
        agg_(exec_, n, "bucket aggregate"),
        residual_(exec_, n, "bucket residual") {}

  py::dict run(const py::handle& grad, const py::handle& out, std::uint64_t step) {
    FloatArg g(grad, "grad", false);
    FloatArg o(out, "out", true);
    check_vector("grad", g.size(), size());
    check_vector("out", o.size(), size());
    optim::Verdict verdict;
    optim::CommStats stats;
    {
      py::gil_scoped_release release;
      bool finite = true;
      const float* gp = g.data();
      for (std::size_t i = 0; i < g.size(); ++i) finite &= std::isfinite(gp[i]);
      verdict = ex_.begin(step, !finite);
      if (verdict.skip) {
        std::fill(o.data(), o.data() + o.size(), std::numeric_limits<float>::quiet_NaN());
      } else {
        float* r = residual_.data();
        for (std::size_t i = 0; i < g.size(); ++i) r[i] = r[i] + gp[i];
        stats = ex_.finish(residual_.span(), agg_);
        std::copy(agg_.data(), agg_.data() + o.size(), o.data());
      }
    }
    py::dict d = stats_dict(stats);
    d["skipped"] = verdict.skip;
    d["bad_ranks"] = verdict.bad_ranks;
    return d;
  }
  std::uint64_t size() const { return ex_.size(); }
  float* residual() const { return residual_.data(); }
  const optim::Exchange& exchange() const { return ex_; }

 private:
  device::Exec exec_;  // declared first: the exchange and the buffers live in it
  optim::Exchange ex_;
  optim::Aggregate agg_;
  device::Buffer<float> residual_;
};

}  // namespace

void bind_optim(py::module_& m) {
  m.def("method_names", &optim::method_names,
        "The optimizer methods (docs/optimizers.md), in documentation order.");
  m.def("method_is_dense", &optim::method_is_dense, py::arg("method"));
  m.def("method_is_local", &optim::method_is_local, py::arg("method"));
  m.def("method_is_decentralized", &optim::method_is_decentralized, py::arg("method"),
        "Whether the method keeps a model per rank and talks to graph neighbours only (dpsgd, relaysgd, "
        "powergossip, a2cid2, async-gossip; docs/optimizers.md).");
  m.def("method_is_async", &optim::method_is_async, py::arg("method"),
        "Whether the method is asynchronous (a2cid2, async-gossip: a communication thread pairs neighbours "
        "while the caller computes, so its results depend on timing; docs/async_gossip.md).");

  py::class_<PyOptimizer>(m, "Optimizer", "A sparcol optimizer over one flat float32 vector.")
      .def(py::init([](Communicator& comm, const py::handle& layout, const std::string& method,
                       const std::string& compressor, double density, double momentum, double weight_decay,
                       double alpha, std::uint64_t seed, bool layerwise, std::uint64_t min_compress_size,
                       bool compress_only_matrices, double clip_norm, bool nesterov, int warmup_epochs,
                       bool wd_outside, const std::string& cser_c1, double cser_c1_density,
                       const std::string& cser_c2, double cser_c2_density, int cser_period,
                       const std::string& nan_policy, double sample_ratio, bool sign_majority,
                       bool track_support, const std::string& down_compressor, double down_density) {
             check_name(method, optim::method_names(), "method", "method");
             check_name(compressor, compress::compressor_names(), "compressor", "compressor");
             check_density(density, "density");
             check_finite_range(momentum, 0.0, 1.0, true, "momentum", "[0, 1)");
             if (!(std::isfinite(weight_decay) && weight_decay >= 0.0))
               value_error("weight_decay: must be >= 0");
             if (alpha >= 0.0)
               check_finite_range(alpha, 0.0, 1.0, false, "alpha", "[0, 1] (or < 0: the default)");
             if (!(std::isfinite(clip_norm) && clip_norm >= 0.0)) value_error("clip_norm: must be >= 0");
             if (warmup_epochs < 0) value_error("warmup_epochs: must be >= 0");
             if (cser_period < 1) value_error("cser_period: must be >= 1");
             if (nan_policy != "skip" && nan_policy != "stop")
               value_error("nan_policy: unknown '" + nan_policy + "' (one of skip, stop)");
             if (method == "cser") {
               if (cser_c1 != "zero")
                 check_name(cser_c1, compress::compressor_names(), "cser_c1", "compressor");
               check_name(cser_c2, compress::compressor_names(), "cser_c2", "compressor");
               check_density(cser_c1_density, "cser_c1_density");
               check_density(cser_c2_density, "cser_c2_density");
             }
             if (down_compressor != "none" && down_compressor != "topk" && down_compressor != "randk")
               value_error("down_compressor: unknown '" + down_compressor + "' (one of none, topk, randk)");
             if (down_density > 0.0) check_density(down_density, "down_density");
             if (wd_outside && !optim::method_has_wd_outside(method))
               value_error("wd_outside: method '" + method +
                           "' does not define weight decay outside compression");
             optim::OptimConfig c;
             c.method = method;
             c.momentum = momentum;
             c.weight_decay = weight_decay;
             c.alpha = alpha;
             c.exchange.compressor.name = compressor;
             c.exchange.compressor.density = density;
             c.exchange.compressor.sample_ratio = sample_ratio;
             c.exchange.compressor.sign_majority = sign_majority;
             c.exchange.layerwise = layerwise;
             c.exchange.min_compress_size = min_compress_size;
             c.exchange.compress_only_matrices = compress_only_matrices;
             c.exchange.seed = seed;
             c.exchange.track_support = track_support;
             c.clip_norm = clip_norm;
             c.nesterov = nesterov;
             c.warmup_epochs = warmup_epochs;
             c.wd_outside = wd_outside;
             c.cser_c1 = {cser_c1, cser_c1_density};
             c.cser_c2 = {cser_c2, cser_c2_density};
             c.cser_period = cser_period;
             c.nan_policy = nan_policy == "stop" ? optim::NanPolicy::kStop : optim::NanPolicy::kSkip;
             c.liec_down = {down_compressor,
                            down_compressor == "none" ? 1.0 : (down_density > 0.0 ? down_density : density)};
             optim::Layout l = to_layout(layout);
             return std::make_unique<PyOptimizer>(comm, l, c);
           }),
           py::arg("comm"), py::arg("layout"), py::kw_only(), py::arg("method") = "gmc",
           py::arg("compressor") = "topk", py::arg("density") = 0.01, py::arg("momentum") = 0.9,
           py::arg("weight_decay") = 0.0, py::arg("alpha") = -1.0, py::arg("seed") = 0,
           py::arg("layerwise") = false, py::arg("min_compress_size") = 0,
           py::arg("compress_only_matrices") = false, py::arg("clip_norm") = 0.0, py::arg("nesterov") = false,
           py::arg("warmup_epochs") = 0, py::arg("wd_outside") = false, py::arg("cser_c1") = "topk",
           py::arg("cser_c1_density") = 0.001, py::arg("cser_c2") = "topk",
           py::arg("cser_c2_density") = 0.005, py::arg("cser_period") = 4, py::arg("nan_policy") = "skip",
           py::arg("sample_ratio") = 0.01, py::arg("sign_majority") = false, py::arg("track_support") = true,
           py::arg("down_compressor") = "topk", py::arg("down_density") = -1.0, py::keep_alive<1, 2>())
      .def_property_readonly("method", [](const PyOptimizer& o) { return o.impl().method(); })
      .def_property_readonly("size", [](const PyOptimizer& o) { return o.impl().size(); })
      .def_property_readonly("alpha", [](const PyOptimizer& o) { return o.impl().alpha(); })
      .def_property_readonly("current_density",
                             [](const PyOptimizer& o) { return o.impl().current_density(); })
      .def_property(
          "skipped_steps", [](const PyOptimizer& o) { return o.impl().skipped_steps(); },
          [](PyOptimizer& o, std::uint64_t n) { o.impl().set_skipped_steps(n); })
      .def(
          "gradient_point",
          [](py::object self, const py::handle& x, double lr) {
            auto& o = self.cast<PyOptimizer&>();
            FloatArg xa(x, "x", false);
            check_vector("x", xa.size(), o.impl().size());
            check_lr(lr);
            auto z = o.impl().gradient_point(std::span<const float>(xa.data(), xa.size()), lr);
            float* p = const_cast<float*>(z.data());
            return view(p, z.size(), p == xa.data() ? x : self, false);
          },
          py::arg("x"), py::arg("lr"),
          "Where to evaluate this rank's gradient for the coming step: a read-only view of x itself or of "
          "the optimizer's buffer, valid until the next gradient_point or step.")
      .def(
          "step",
          [](PyOptimizer& o, const py::handle& x, const py::handle& g, std::uint64_t t, double lr,
             double epoch) {
            FloatArg xa(x, "x", true);
            FloatArg ga(g, "g", false);
            check_vector("x", xa.size(), o.impl().size());
            check_vector("g", ga.size(), o.impl().size());
            check_lr(lr);
            optim::StepStats st;
            {
              py::gil_scoped_release release;
              st = o.impl().step(xa.span(), std::span<const float>(ga.data(), ga.size()), t, lr, epoch);
            }
            py::dict d = stats_dict(st.comm);
            d["skipped"] = st.skipped;
            d["bad_ranks"] = st.bad_ranks;
            return d;
          },
          py::arg("x"), py::arg("g"), py::arg("t"), py::arg("lr"), py::arg("epoch") = 0.0,
          "One iteration: x (updated in place) and this rank's gradient g at gradient_point(x, lr).")
      .def(
          "evaluation_model",
          [](PyOptimizer& o, const py::handle& x, const py::handle& out, bool virtual_model) {
            FloatArg xa(x, "x", false);
            FloatArg oa(out, "out", true);
            check_vector("x", xa.size(), o.impl().size());
            check_vector("out", oa.size(), o.impl().size());
            py::gil_scoped_release release;
            o.impl().evaluation_model(std::span<const float>(xa.data(), xa.size()), oa.span(), virtual_model);
          },
          py::arg("x"), py::arg("out"), py::arg("virtual_model") = false)
      .def(
          "state",
          [](py::object self) {
            auto& o = self.cast<PyOptimizer&>();
            py::dict d;
            for (const auto& b : o.impl().state())
              d[py::str(b.name)] = view(b.data.data(), b.data.size(), self, true);
            return d;
          },
          "The named state buffers (momentum, residuals, errors) as writable float32 views, for "
          "checkpoints.");

  py::class_<PyBucketExchange>(
      m, "BucketExchange", "Error-feedback compression and aggregation of one gradient bucket (DDP hooks).")
      .def(py::init([](Communicator& comm, std::uint64_t n, const std::string& compressor, double density,
                       std::uint64_t seed, std::uint32_t stream, double sample_ratio, bool sign_majority) {
             check_name(compressor, compress::compressor_names(), "compressor", "compressor");
             check_density(density, "density");
             optim::ExchangeConfig c;
             c.compressor.name = compressor;
             c.compressor.density = density;
             c.compressor.sample_ratio = sample_ratio;
             c.compressor.sign_majority = sign_majority;
             c.seed = seed;
             c.stream = stream;
             return std::make_unique<PyBucketExchange>(comm, n, c);
           }),
           py::arg("comm"), py::arg("n"), py::kw_only(), py::arg("compressor") = "topk",
           py::arg("density") = 0.01, py::arg("seed") = 0, py::arg("stream") = 0,
           py::arg("sample_ratio") = 0.01, py::arg("sign_majority") = false, py::keep_alive<1, 2>())
      .def("run", &PyBucketExchange::run, py::arg("grad"), py::arg("out"), py::arg("step"),
           "out <- mean over ranks of C(r + grad); r <- r + grad - C(r + grad). Returns the step's "
           "statistics.")
      .def_property_readonly("size", &PyBucketExchange::size)
      .def_property_readonly("compressor",
                             [](const PyBucketExchange& b) { return b.exchange().compressor_name(); })
      .def_property_readonly("residual", [](py::object self) {
        auto& b = self.cast<PyBucketExchange&>();
        return view(b.residual(), b.size(), self, true);
      });
}

}  // namespace sparcol::python
