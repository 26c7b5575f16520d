// make_backend (see make_backend.hpp): the one place that tests what was compiled in.
#include "sparcol/comm/make_backend.hpp"

#include <cstdlib>
#include <string>

#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"

#if SPARCOL_HAVE_NCCL
#include "sparcol/comm/nccl_backend.hpp"
#endif

namespace sparcol::comm {

namespace {

std::string compiled_list() {
  std::string s;
  for (const auto& n : backend_names())
    if (backend_compiled(n)) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// A launcher's local-rank variable: -1 when unset, its value when it is a non-negative integer.
int env_rank(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  const long r = std::strtol(v, &end, 10);
  SPARCOL_CHECK_ARG(
      end != v && *end == '\0' && r >= 0 && r < (1L << 20), -1,
      std::string("the environment variable ") + name + " must be a non-negative integer, got '" + v + "'");
  return static_cast<int>(r);
}

}  // namespace

const std::vector<std::string>& backend_names() {
  static const std::vector<std::string> names{"mpi", "nccl", "loopback"};
  return names;
}

bool backend_compiled(const std::string& name) {
  if (name == "mpi" || name == "loopback") return true;
  if (name == "nccl") return SPARCOL_HAVE_NCCL != 0;
  return false;
}

std::string backend_library_version(const std::string& name) {
  if (name == "mpi") return MpiEnvironment::library_version();
  if (name == "loopback") return std::string("sparcol ") + SPARCOL_VERSION_STRING;
#if SPARCOL_HAVE_NCCL
  if (name == "nccl") return NcclBackend::library_version();
#endif
  return {};
}

int local_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"}) {
    const int r = env_rank(var);
    if (r >= 0) return r;
  }
  return MpiEnvironment::node_local_rank();
}

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& options) {
  if (name == "mpi") return MpiBackend::world();
  if (name == "loopback") {
    auto world = options.loopback_world ? options.loopback_world : LoopbackWorld::create(1);
    SPARCOL_CHECK_ARG(options.loopback_rank >= 0 && options.loopback_rank < world->size(), -1,
                      "loopback rank " + std::to_string(options.loopback_rank) + " outside a world of " +
                          std::to_string(world->size()));
    return std::make_unique<LoopbackBackend>(world, options.loopback_rank);
  }
  if (name == "nccl") {
#if SPARCOL_HAVE_NCCL
    const int device = options.device >= 0 ? options.device : local_rank();
    return NcclBackend::create(MpiBackend::world(), device);
#else
    throw Error(ErrorCode::kInvalidArgument, -1,
                "backend 'nccl' is not compiled in: this build of sparcol found no NCCL (or no CUDA); "
                "available: " +
                    compiled_list());
#endif
  }
  throw Error(ErrorCode::kInvalidArgument, -1,
              "unknown backend '" + name + "' (available in this build: " + compiled_list() + ")");
}

}  // namespace sparcol::comm
