// Shared pieces of the Python module: buffer checks, the communicator wrapper, errors.
//
// Every array argument arrives through the buffer protocol (numpy arrays; torch CPU tensors through
// .numpy(), which shares their memory), never through libtorch, so the module does not depend on
// torch's C++ ABI. A buffer is accepted when it has the expected element type and is C-contiguous;
// anything else is a TypeError naming the argument, raised before any communication. Lengths that
// must agree are checked by the callers (ValueError naming the argument).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "sparcol/comm/backend.hpp"

namespace sparcol::python {

namespace py = pybind11;

// A checked view of one buffer argument. Holds the Py_buffer until destroyed, so destroy it with
// the GIL held (declare it before any gil_scoped_release).
template <class T>
class ArrayArg {
 public:
  ArrayArg(const py::handle& obj, const char* name, bool writable);
  T* data() const { return static_cast<T*>(info_.ptr); }
  std::size_t size() const { return static_cast<std::size_t>(info_.size); }
  std::span<T> span() const { return {data(), size()}; }

 private:
  py::buffer_info info_;
};

using FloatArg = ArrayArg<float>;
using U32Arg = ArrayArg<std::uint32_t>;

// The Python-side communicator: owns a backend (and keeps MPI alive while it exists).
class Communicator {
 public:
  explicit Communicator(const std::string& backend);
  comm::Backend& backend() const { return *backend_; }
  int rank() const { return backend_->rank(); }
  int size() const { return backend_->size(); }
  std::string name() const { return backend_->name(); }

 private:
  std::unique_ptr<comm::Backend> backend_;
};

// Initialises MPI at MPI_THREAD_MULTIPLE unless it is already initialised (then checks the level it
// has); idempotent. Finalisation happens at interpreter exit, only when this module initialised it.
void ensure_mpi();

// Raises ValueError("<what>: ...") / TypeError: thin wrappers so that every message names the
// argument the same way.
[[noreturn]] void value_error(const std::string& message);
[[noreturn]] void type_error(const std::string& message);

// A float argument that must lie in (0, 1] (densities).
void check_density(double density, const char* name);

void bind_errors(py::module_& m);
void bind_compress(py::module_& m);
void bind_coll(py::module_& m);
void bind_optim(py::module_& m);

}  // namespace sparcol::python
