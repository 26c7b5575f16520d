// sparcol._sparcol: the compiled half of the Python package (python/sparcol wraps it).
//
// This file holds what every binding shares: the buffer checks, the exceptions, MPI's lifetime and
// the Communicator. The library's own pieces are bound in bind_compress.cpp (compressors),
// bind_coll.cpp (collectives) and bind_optim.cpp (optimizers and the bucket exchange of the DDP
// hooks).
//
// MPI: the first Communicator("mpi") (or sparcol.init_mpi()) initialises MPI with
// MPI_THREAD_MULTIPLE when nobody has yet (DDP may call a communication hook on its autograd thread,
// not the one that imported sparcol); when MPI is already initialised (mpi4py, another module) it is
// left alone and its thread level is checked: below MPI_THREAD_MULTIPLE is a RuntimeWarning. MPI is
// finalised at interpreter exit, and only when this module initialised it.
#include <pybind11/stl.h>

#include <cstring>
#include <string>

#include "common.hpp"
#include "sparcol/comm/make_backend.hpp"
#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::python {

// ------------------------------------------------------------------------------------------------
// Buffers
// ------------------------------------------------------------------------------------------------

namespace {

// The element type a buffer format names, without byte-order prefixes: "f" for float32, "I" (or
// "L" where long is 32 bits) for uint32.
char format_char(const std::string& format) {
  std::size_t i = 0;
  while (i < format.size() && std::strchr("@=<>!", format[i]) != nullptr) ++i;
  return i + 1 == format.size() ? format[i] : '\0';
}

template <class T>
bool format_matches(const py::buffer_info& info) {
  if (info.itemsize != static_cast<py::ssize_t>(sizeof(T))) return false;
  const char c = format_char(info.format);
  if constexpr (std::is_same_v<T, float>) return c == 'f';
  return c == 'I' || (c == 'L' && sizeof(unsigned long) == 4);
}

template <class T>
const char* type_name() {
  return std::is_same_v<T, float> ? "float32" : "uint32";
}

bool c_contiguous(const py::buffer_info& info) {
  py::ssize_t expected = info.itemsize;
  for (py::ssize_t d = info.ndim; d-- > 0;) {
    if (info.shape[static_cast<std::size_t>(d)] != 1 && info.strides[static_cast<std::size_t>(d)] != expected)
      return false;
    expected *= info.shape[static_cast<std::size_t>(d)];
  }
  return true;
}

std::string describe(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__"));
}

}  // namespace

template <class T>
ArrayArg<T>::ArrayArg(const py::handle& obj, const char* name, bool writable) {
  if (!PyObject_CheckBuffer(obj.ptr())) {
    std::string hint;
    if (py::hasattr(obj, "numpy") && py::hasattr(obj, "is_cuda")) {
      hint = py::cast<bool>(obj.attr("is_cuda")) ? " (a GPU tensor: sparcol's Python module takes CPU memory)"
                                                 : " (pass tensor.numpy(), or use sparcol.torch)";
    }
    type_error(std::string(name) + ": expected a " + type_name<T>() + " buffer (numpy array), got " +
               describe(obj) + hint);
  }
  try {
    info_ = py::reinterpret_borrow<py::buffer>(obj).request(writable);
  } catch (py::error_already_set&) {
    // numpy refuses a writable view of a read-only array (ValueError, BufferError elsewhere).
    if (!writable) throw;
    py::reinterpret_borrow<py::buffer>(obj).request(false);  // rethrows what else is wrong
    type_error(std::string(name) + ": the buffer is read-only");
  }
  if (!format_matches<T>(info_))
    type_error(std::string(name) + ": expected " + type_name<T>() + " elements, got buffer format '" +
               info_.format + "' (itemsize " + std::to_string(info_.itemsize) + ")");
  if (!c_contiguous(info_)) type_error(std::string(name) + ": the array is not contiguous");
}

template class ArrayArg<float>;
template class ArrayArg<std::uint32_t>;

void value_error(const std::string& message) {
  throw py::value_error(message);
}
void type_error(const std::string& message) {
  throw py::type_error(message);
}

void check_density(double density, const char* name) {
  if (!(density > 0.0 && density <= 1.0))
    value_error(std::string(name) + ": must lie in (0, 1], got " +
                py::str(py::float_(density)).cast<std::string>());
}

// ------------------------------------------------------------------------------------------------
// Errors: sparcol.Error (RuntimeError) with code, exit_code, rank and message; a library
// kInvalidArgument is sparcol.ArgumentError, which is also a ValueError.
// ------------------------------------------------------------------------------------------------

namespace {

PyObject* g_error = nullptr;           // sparcol.Error (a strong reference kept for the process)
PyObject* g_argument_error = nullptr;  // sparcol.ArgumentError

const char* code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kBackend:
      return "backend";
    case ErrorCode::kCuda:
      return "cuda";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kMismatch:
      return "mismatch";
    case ErrorCode::kNumerical:
      return "numerical";
    case ErrorCode::kInternal:
      break;
  }
  return "internal";
}

void raise_error(const Error& e) {
  PyObject* type = e.code() == ErrorCode::kInvalidArgument ? g_argument_error : g_error;
  py::object inst = py::reinterpret_borrow<py::object>(type)(py::str(e.what()));
  inst.attr("code") = code_name(e.code());
  inst.attr("exit_code") = exit_code(e.code());
  inst.attr("rank") = e.rank();
  inst.attr("message") = e.message();
  PyErr_SetObject(type, inst.ptr());
}

}  // namespace

void bind_errors(py::module_& m) {
  py::dict doc_error;
  doc_error["__doc__"] =
      "A sparcol library error. Attributes: code (invalid_argument, backend, cuda, io, timeout, mismatch, "
      "numerical, internal), exit_code (docs/errors.md), rank (-1 when none), message.";
  g_error = PyErr_NewException("sparcol.Error", PyExc_RuntimeError, doc_error.ptr());
  if (g_error == nullptr) throw py::error_already_set();
  py::tuple bases = py::make_tuple(py::handle(g_error), py::handle(PyExc_ValueError));
  g_argument_error = PyErr_NewException("sparcol.ArgumentError", bases.ptr(), nullptr);
  if (g_argument_error == nullptr) throw py::error_already_set();
  m.add_object("Error", py::handle(g_error));
  m.add_object("ArgumentError", py::handle(g_argument_error));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      raise_error(e);
    }
  });
}

// ------------------------------------------------------------------------------------------------
// MPI and the communicator
// ------------------------------------------------------------------------------------------------

namespace {
comm::MpiEnvironment* g_mpi = nullptr;  // what this module initialised (nullptr: nothing)
bool g_mpi_checked = false;

void finalize_mpi() {
  delete g_mpi;  // finalises MPI only when it initialised it
  g_mpi = nullptr;
}
}  // namespace

void ensure_mpi() {
  if (g_mpi_checked && comm::MpiEnvironment::active()) return;
  if (!comm::MpiEnvironment::active()) {
    g_mpi = new comm::MpiEnvironment(nullptr, nullptr, comm::ThreadLevel::kMultiple);
    py::module_::import("atexit").attr("register")(py::cpp_function(&finalize_mpi));
  }
  g_mpi_checked = true;
  const comm::ThreadLevel level = comm::MpiEnvironment::thread_level();
  if (level != comm::ThreadLevel::kMultiple) {
    const std::string msg = std::string("sparcol: MPI provides ") + comm::to_string(level) +
                            ", not MPI_THREAD_MULTIPLE: DDP communication hooks that run off the main "
                            "thread are not safe";
    if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
  }
}

Communicator::Communicator(const std::string& backend) {
  if (!comm::backend_compiled(backend)) {
    std::string names;
    for (const auto& n : comm::backend_names())
      if (comm::backend_compiled(n)) names += (names.empty() ? "" : ", ") + n;
    value_error("backend: unknown or not compiled in: '" + backend + "' (this build has " + names + ")");
  }
  if (backend != "loopback") ensure_mpi();
  backend_ = comm::make_backend(backend);
}

}  // namespace sparcol::python

namespace py = pybind11;
using sparcol::python::Communicator;

PYBIND11_MODULE(_sparcol, m) {
  m.doc() = "sparcol: communication-compressed collectives and optimizers (compiled module)";
  sparcol::python::bind_errors(m);

  m.def("init_mpi", &sparcol::python::ensure_mpi,
        "Initialise MPI (MPI_THREAD_MULTIPLE) unless it already is; check the thread level otherwise.");
  m.def(
      "mpi_thread_level",
      [] { return std::string(sparcol::comm::to_string(sparcol::comm::MpiEnvironment::thread_level())); },
      "The thread level MPI provides (MPI_THREAD_SINGLE when MPI is not initialised).");
  m.def(
      "mpi_initialized_here", [] { return sparcol::python::g_mpi != nullptr; },
      "Whether this module initialised MPI (and will finalise it at exit).");

  py::class_<Communicator>(m, "Communicator",
                           "A sparcol backend: 'mpi' (MPI_COMM_WORLD, duplicated) or 'loopback' (one rank).")
      .def(py::init<const std::string&>(), py::arg("backend") = "mpi")
      .def_property_readonly("rank", &Communicator::rank)
      .def_property_readonly("size", &Communicator::size)
      .def_property_readonly("backend", &Communicator::name)
      .def(
          "barrier",
          [](Communicator& c) {
            py::gil_scoped_release release;
            c.backend().barrier();
          },
          "Blocks until every rank has called it.")
      .def(
          "broadcast",
          [](Communicator& c, const py::handle& data, int root) {
            sparcol::python::FloatArg d(data, "data", true);
            if (root < 0 || root >= c.size())
              sparcol::python::value_error("root: " + std::to_string(root) + " outside [0, " +
                                           std::to_string(c.size()) + ")");
            py::gil_scoped_release release;
            c.backend().broadcast(d.data(), d.size() * sizeof(float), root);
          },
          py::arg("data"), py::arg("root") = 0,
          "data <- root's data (float32, the same length on every rank).")
      .def("__repr__", [](const Communicator& c) {
        return "<sparcol.Communicator backend=" + c.name() + " rank=" + std::to_string(c.rank()) +
               " size=" + std::to_string(c.size()) + ">";
      });

  sparcol::python::bind_compress(m);
  sparcol::python::bind_coll(m);
  sparcol::python::bind_optim(m);
}
