// The collectives of coll/ over numpy buffers: sparcol.RingAllreduce, RbgsAllreduce, SparseAllgather,
// SignAllgather and dense_allreduce_sum. Each object is built once for a size (it sizes its scratch
// then, as in C++) and run many times; it keeps its Communicator alive. Every rank must call the same
// collectives in the same order with the same sizes (the call fingerprint turns a disagreement into
// sparcol.Error with code 'mismatch'). Arguments are checked before anything is sent (TypeError for
// a wrong buffer, ValueError for a wrong length). The GIL is released while the collective runs.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>

#include "common.hpp"
#include "sparcol/coll/dense.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sign_allgather.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/core/payload.hpp"

namespace sparcol::python {

namespace {

void check_length(const char* name, std::size_t got, std::uint64_t want) {
  if (got != want)
    value_error(std::string(name) + ": length " + std::to_string(got) + ", expected " + std::to_string(want));
}

coll::RingAllreduce::Algorithm ring_algorithm(const std::string& name) {
  using A = coll::RingAllreduce::Algorithm;
  if (name == "auto") return A::kAuto;
  if (name == "ring") return A::kRing;
  if (name == "direct") return A::kDirect;
  if (name == "native") return A::kNative;
  value_error("algorithm: unknown '" + name + "' (one of auto, ring, direct, native)");
}

const char* ring_algorithm_name(coll::RingAllreduce::Algorithm a) {
  using A = coll::RingAllreduce::Algorithm;
  return a == A::kRing ? "ring" : a == A::kDirect ? "direct" : a == A::kNative ? "native" : "auto";
}

// ------------------------------------------------------------------------------------------------
// Sparse and sign all-gathers: thin wrappers that build the core payload views (SparseChunk,
// SignBits) from the Python buffers, kept together so that a change of those types stays here.
// ------------------------------------------------------------------------------------------------

class PySparseAllgather {
 public:
  PySparseAllgather(Communicator& c, std::uint64_t n, std::size_t expected_k)
      : impl_(c.backend(), n, expected_k), size_(c.size()) {}

  void run(const py::handle& indices, const py::handle& values, std::uint64_t step) {
    U32Arg idx(indices, "indices", false);
    FloatArg val(values, "values", false);
    check_length("values", val.size(), idx.size());
    for (std::size_t i = 0; i < idx.size(); ++i)
      if (idx.data()[i] >= impl_.n())
        value_error("indices: index " + std::to_string(idx.data()[i]) + " at position " + std::to_string(i) +
                    " is not below n = " + std::to_string(impl_.n()));
    py::gil_scoped_release release;
    impl_.run(SparseChunk{std::span<const Index>(idx.data(), idx.size()),
                          std::span<const float>(val.data(), val.size())},
              step);
  }
  void sum_into(const py::handle& out, float divisor) const {
    FloatArg o(out, "out", true);
    check_length("out", o.size(), impl_.n());
    py::gil_scoped_release release;
    impl_.sum_into(o.data(), divisor);
  }
  py::array_t<std::uint32_t> indices(int r) const {
    check_rank(r);
    auto s = impl_.chunk(r).indices;
    return py::array_t<std::uint32_t>(static_cast<py::ssize_t>(s.size()), s.data());
  }
  py::array_t<float> values(int r) const {
    check_rank(r);
    auto s = impl_.chunk(r).values;
    return py::array_t<float>(static_cast<py::ssize_t>(s.size()), s.data());
  }
  std::vector<std::size_t> counts() const {
    std::vector<std::size_t> c;
    for (int r = 0; r < impl_.ranks(); ++r) c.push_back(impl_.count(r));
    return c;
  }
  const coll::SparseAllgather& impl() const { return impl_; }

 private:
  void check_rank(int r) const {
    if (r < 0 || r >= impl_.ranks())
      value_error("rank: " + std::to_string(r) + " outside [0, " + std::to_string(impl_.ranks()) + ")");
  }
  coll::SparseAllgather impl_;
  int size_;
};

class PySignAllgather {
 public:
  PySignAllgather(Communicator& c, std::uint64_t n) : impl_(c.backend(), n), n_(n), size_(c.size()) {}

  void run(const py::handle& bits, float scale, std::uint64_t step) {
    U32Arg b(bits, "bits", false);
    check_length("bits", b.size(), impl_.words());
    py::gil_scoped_release release;
    impl_.run(SignBits{n_, std::span<const std::uint32_t>(b.data(), b.size()), scale}, step);
  }
  void mean_into(const py::handle& out) const {
    FloatArg o(out, "out", true);
    check_length("out", o.size(), n_);
    py::gil_scoped_release release;
    impl_.mean_into(o.span());
  }
  void majority_into(const py::handle& out) const {
    FloatArg o(out, "out", true);
    check_length("out", o.size(), n_);
    py::gil_scoped_release release;
    impl_.majority_into(o.span());
  }
  py::array_t<std::uint32_t> bits(int r) const {
    check_rank(r);
    auto s = impl_.bits(r).words;
    return py::array_t<std::uint32_t>(static_cast<py::ssize_t>(s.size()), s.data());
  }
  float scale(int r) const {
    check_rank(r);
    return impl_.bits(r).scale;
  }
  const coll::SignAllgather& impl() const { return impl_; }

 private:
  void check_rank(int r) const {
    if (r < 0 || r >= size_)
      value_error("rank: " + std::to_string(r) + " outside [0, " + std::to_string(size_) + ")");
  }
  coll::SignAllgather impl_;
  std::uint64_t n_;
  int size_;
};

void bind_sparse_and_sign(py::module_& m) {
  py::class_<PySparseAllgather>(m, "SparseAllgather",
                                "All-gather of (uint32 index, float32 value) pairs, k_r per rank (any k_r).")
      .def(py::init<Communicator&, std::uint64_t, std::size_t>(), py::arg("comm"), py::arg("n"),
           py::arg("expected_k") = 0, py::keep_alive<1, 2>())
      .def("run", &PySparseAllgather::run, py::arg("indices"), py::arg("values"), py::arg("step") = 0,
           "Gathers every rank's pairs (indices: uint32 < n; values: float32 of the same length).")
      .def("sum_into", &PySparseAllgather::sum_into, py::arg("out"), py::arg("divisor") = 1.0f,
           "out <- (sum of all gathered pairs, in rank order) / divisor; bitwise the same on every rank.")
      .def("indices", &PySparseAllgather::indices, py::arg("rank"), "Rank r's gathered indices (a copy).")
      .def("values", &PySparseAllgather::values, py::arg("rank"), "Rank r's gathered values (a copy).")
      .def_property_readonly("counts", &PySparseAllgather::counts)
      .def_property_readonly("n", [](const PySparseAllgather& s) { return s.impl().n(); })
      .def_property_readonly("last_bytes_sent",
                             [](const PySparseAllgather& s) { return s.impl().last_bytes_sent(); })
      .def_property_readonly("last_bytes_recv",
                             [](const PySparseAllgather& s) { return s.impl().last_bytes_recv(); });

  py::class_<PySignAllgather>(
      m, "SignAllgather",
      "All-gather of n sign bits (ceil(n/32) uint32 words) and one float32 scale per rank.")
      .def(py::init<Communicator&, std::uint64_t>(), py::arg("comm"), py::arg("n"), py::keep_alive<1, 2>())
      .def("run", &PySignAllgather::run, py::arg("bits"), py::arg("scale"), py::arg("step") = 0)
      .def("mean_into", &PySignAllgather::mean_into, py::arg("out"),
           "out_j <- (sum over ranks of scale_r * (+1 or -1)) / K, in rank order.")
      .def("majority_into", &PySignAllgather::majority_into, py::arg("out"),
           "out_j <- mean scale * sign(sum over ranks of the signs), sign(0) = +1.")
      .def("bits", &PySignAllgather::bits, py::arg("rank"))
      .def("scale", &PySignAllgather::scale, py::arg("rank"))
      .def_property_readonly("words", [](const PySignAllgather& s) { return s.impl().words(); })
      .def_property_readonly("last_bytes_sent",
                             [](const PySignAllgather& s) { return s.impl().last_bytes_sent(); })
      .def_property_readonly("last_bytes_recv",
                             [](const PySignAllgather& s) { return s.impl().last_bytes_recv(); });
}

}  // namespace

void bind_coll(py::module_& m) {
  py::class_<coll::RingAllreduce>(
      m, "RingAllreduce", "In-place sum over ranks of a float32 vector of a fixed length (ring or direct).")
      .def(py::init([](Communicator& c, std::size_t count, const std::string& algorithm) {
             return std::make_unique<coll::RingAllreduce>(
                 c.backend(), count, coll::RingAllreduce::kDefaultPieceBytes, ring_algorithm(algorithm));
           }),
           py::arg("comm"), py::arg("count"), py::arg("algorithm") = "auto", py::keep_alive<1, 2>())
      .def(
          "run",
          [](coll::RingAllreduce& r, const py::handle& data, std::uint64_t step) {
            FloatArg d(data, "data", true);
            check_length("data", d.size(), r.count());
            py::gil_scoped_release release;
            r.run(d.data(), step);
          },
          py::arg("data"), py::arg("step") = 0, "data <- sum over ranks of data, in place.")
      .def_property_readonly("count", &coll::RingAllreduce::count)
      .def_property_readonly("algorithm",
                             [](const coll::RingAllreduce& r) { return ring_algorithm_name(r.algorithm()); })
      .def_property_readonly("bytes_sent_per_run", &coll::RingAllreduce::bytes_sent_per_run);

  py::class_<coll::RbgsAllreduce>(m, "RbgsAllreduce",
                                  "Sum over ranks of one shared random block of k of the n elements (RBGS).")
      .def(py::init([](Communicator& c, std::size_t n, std::size_t k) {
             if (k > n) value_error("k: " + std::to_string(k) + " exceeds n = " + std::to_string(n));
             return std::make_unique<coll::RbgsAllreduce>(c.backend(), n, k);
           }),
           py::arg("comm"), py::arg("n"), py::arg("k"), py::keep_alive<1, 2>())
      .def(
          "run",
          [](coll::RbgsAllreduce& r, const py::handle& data, std::uint64_t seed, std::uint64_t step,
             std::uint32_t tensor) {
            FloatArg d(data, "data", true);
            check_length("data", d.size(), r.n());
            py::gil_scoped_release release;
            return r.run(d.data(), seed, step, tensor);
          },
          py::arg("data"), py::arg("seed"), py::arg("step"), py::arg("tensor") = 0,
          "data[block] <- sum over ranks of data[block]; returns the block (the same on every rank).")
      .def_property_readonly("n", &coll::RbgsAllreduce::n)
      .def_property_readonly("k", &coll::RbgsAllreduce::k)
      .def_property_readonly("bytes_sent_per_run", &coll::RbgsAllreduce::bytes_sent_per_run);

  m.def(
      "dense_allreduce_sum",
      [](Communicator& c, const py::handle& data, std::uint64_t step) {
        FloatArg d(data, "data", true);
        py::gil_scoped_release release;
        coll::dense_allreduce_sum(c.backend(), d.data(), d.size(), step);
      },
      py::arg("comm"), py::arg("data"), py::arg("step") = 0,
      "data <- sum over ranks (the backend's own all-reduce, MPI_Allreduce), in place.");

  bind_sparse_and_sign(m);
}

}  // namespace sparcol::python
