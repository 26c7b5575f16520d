// sparcol.Compressor and sparcol.Message: the compressors of compress/ over numpy float32 vectors.
//
//   c = sparcol.Compressor("topk", density=0.01)
//   msg = c.compress(v, seed=0, step=t)        # v: float32, contiguous; msg holds copies
//   sparcol.decompress(msg, out)               # out <- C(v)
//   sparcol.subtract_decompressed(msg, v)      # v <- v - C(v) (error feedback)
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "common.hpp"
#include "sparcol/compress/compressor.hpp"

namespace sparcol::python {

namespace {

const char* aggregation_name(compress::Aggregation a) {
  switch (a) {
    case compress::Aggregation::kDense:
      return "dense";
    case compress::Aggregation::kSparse:
      return "sparse";
    case compress::Aggregation::kShared:
      return "shared";
    case compress::Aggregation::kSign:
      break;
  }
  return "sign";
}

template <class T>
py::array_t<T> copy_out(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

void check_compressor_name(const std::string& name, const char* arg) {
  const auto& names = compress::compressor_names();
  if (std::find(names.begin(), names.end(), name) != names.end()) return;
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  value_error(std::string(arg) + ": unknown compressor '" + name + "' (one of " + list + ")");
}

class PyCompressor {
 public:
  explicit PyCompressor(const compress::CompressorConfig& config) : config_(config) {
    check_compressor_name(config.name, "name");
    check_density(config.density, "density");
    impl_ = compress::make_compressor(config);
  }
  compress::Message compress(const py::handle& v, std::uint64_t seed, std::uint64_t step,
                             std::uint32_t tensor, std::uint32_t rank, std::uint64_t k) {
    FloatArg in(v, "v", false);
    if (k > in.size())
      value_error("k: " + std::to_string(k) + " exceeds the vector's " + std::to_string(in.size()));
    compress::Context ctx;
    ctx.seed = seed;
    ctx.step = step;
    ctx.tensor = tensor;
    ctx.rank = rank;
    ctx.k = k;
    compress::Message msg;
    {
      py::gil_scoped_release release;
      impl_->compress(in.span(), ctx, msg);
    }
    return msg;
  }
  compress::Compressor& impl() const { return *impl_; }
  const compress::CompressorConfig& config() const { return config_; }

 private:
  compress::CompressorConfig config_;
  std::unique_ptr<compress::Compressor> impl_;
};

}  // namespace

void bind_compress(py::module_& m) {
  m.def("compressor_names", &compress::compressor_names, "The compressor names (docs/compressors.md).");
  m.def("k_round", &compress::k_round, py::arg("density"), py::arg("n"),
        "k of top-k / random-k for density rho and n elements: max(1, round(rho n)).");
  m.def("k_floor", &compress::k_floor, py::arg("density"), py::arg("n"), "k of RBGS: max(1, floor(rho n)).");

  py::class_<Block>(m, "Block", "An RBGS block: positions start, start+1, ..., start+length-1 (mod n).")
      .def_readonly("n", &Block::n)
      .def_readonly("start", &Block::start)
      .def_readonly("length", &Block::length)
      .def("indices",
           [](const Block& b) {
             py::array_t<std::uint32_t> a(static_cast<py::ssize_t>(b.length));
             for (std::uint64_t p = 0; p < b.length; ++p)
               a.mutable_data()[p] = static_cast<std::uint32_t>(b.element(p));
             return a;
           })
      .def("__repr__", [](const Block& b) {
        return "<sparcol.Block n=" + std::to_string(b.n) + " start=" + std::to_string(b.start) +
               " length=" + std::to_string(b.length) + ">";
      });
  m.def("rbgs_block", &rbgs_block, py::arg("n"), py::arg("k"), py::arg("seed"), py::arg("step"),
        py::arg("tensor") = 0, "The RBGS block every rank draws for (seed, step, tensor).");

  py::class_<compress::Message>(m, "Message", "A compressor's output (copies of its arrays).")
      .def_property_readonly("kind", [](const compress::Message& msg) { return aggregation_name(msg.kind); })
      .def_readonly("n", &compress::Message::n)
      .def_property_readonly("indices", [](const compress::Message& msg) { return copy_out(msg.indices); })
      .def_property_readonly("values", [](const compress::Message& msg) { return copy_out(msg.values); })
      .def_property_readonly("bits", [](const compress::Message& msg) { return copy_out(msg.bits); })
      .def_readonly("scale", &compress::Message::scale)
      .def_readonly("is_block", &compress::Message::is_block)
      .def_readonly("block", &compress::Message::block)
      .def_readonly("value_scale", &compress::Message::value_scale)
      .def_property_readonly("nnz", &compress::Message::nnz)
      .def_property_readonly("wire_elements", &compress::Message::wire_elements)
      .def_property_readonly("wire_bytes", &compress::Message::wire_bytes);

  py::class_<PyCompressor>(m, "Compressor", "A compressor by name (sparcol.compressor_names()).")
      .def(py::init([](const std::string& name, double density, double sample_ratio, bool randk_scale,
                       int sidco_stages, double sidco_first_ratio, bool sign_majority) {
             compress::CompressorConfig c;
             c.name = name;
             c.density = density;
             c.sample_ratio = sample_ratio;
             c.randk_scale = randk_scale;
             c.sidco_stages = sidco_stages;
             c.sidco_first_ratio = sidco_first_ratio;
             c.sign_majority = sign_majority;
             return std::make_unique<PyCompressor>(c);
           }),
           py::arg("name") = "topk", py::arg("density") = 0.01, py::arg("sample_ratio") = 0.01,
           py::arg("randk_scale") = false, py::arg("sidco_stages") = 3, py::arg("sidco_first_ratio") = 0.75,
           py::arg("sign_majority") = false)
      .def_property_readonly("name", [](const PyCompressor& c) { return c.impl().name(); })
      .def_property_readonly("density", [](const PyCompressor& c) { return c.config().density; })
      .def_property_readonly("aggregation",
                             [](const PyCompressor& c) { return aggregation_name(c.impl().aggregation()); })
      .def(
          "target_k", [](const PyCompressor& c, std::uint64_t n) { return c.impl().target_k(n); },
          py::arg("n"))
      .def("compress", &PyCompressor::compress, py::arg("v"), py::arg("seed") = 0, py::arg("step") = 0,
           py::arg("tensor") = 0, py::arg("rank") = 0, py::arg("k") = 0,
           "The message for v (k = 0: the compressor's own k for its density).");

  m.def(
      "decompress",
      [](const compress::Message& msg, const py::handle& out) {
        FloatArg o(out, "out", true);
        if (o.size() != msg.n)
          value_error("out: length " + std::to_string(o.size()) + " != the message's n " +
                      std::to_string(msg.n));
        compress::decompress(msg, o.span());
      },
      py::arg("message"), py::arg("out"), "out <- C(v): the message as a dense vector.");
  m.def(
      "subtract_decompressed",
      [](const compress::Message& msg, const py::handle& v) {
        FloatArg o(v, "v", true);
        if (o.size() != msg.n)
          value_error("v: length " + std::to_string(o.size()) + " != the message's n " +
                      std::to_string(msg.n));
        compress::subtract_decompressed(msg, o.span());
      },
      py::arg("message"), py::arg("v"),
      "v <- v - C(v), in place (error feedback); msg must come from this v.");
}

}  // namespace sparcol::python
