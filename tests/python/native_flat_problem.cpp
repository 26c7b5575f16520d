// The reference run of tests/python/test_torch_optimizer.py: sparcol's optimizers from C++ on a
// flat problem that the Python test repeats through sparcol.torch.DistributedOptimizer; the test
// requires both trajectories to be bitwise equal.
//
// Problem (per rank k, elementwise, float32): g_i = (z_i - c_ki) * w_i at the gradient point z, with
//   c_ki = ((7 i + 13 k) mod 17 - 8) / 4,  w_i = 1 + (i mod 5) / 4,  x_0,i = ((3 i) mod 11 - 5) / 8.
// The layout is two tensors of sizes `a` (dims 2) and `b` (dims 1), as the test's two parameters.
// Usage: mpirun -np K native_flat_problem OUT a b steps lr weight_decay density
// For each case of cases() (method, compressor) rank 0 appends the final x (a + b floats) to OUT.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/optim/optimizer.hpp"

namespace {

// Every method with top-k, and GMC with the other compressors; the Python test lists the same.
std::vector<std::pair<std::string, std::string>> cases() {
  std::vector<std::pair<std::string, std::string>> c;
  // Methods with a replicated model only (the local-SGD family keeps one per rank).
  // The asynchronous methods (a2cid2, async-gossip) depend on timing: tests/topo/test_pair_gossip.cpp.
  for (const auto& m : sparcol::optim::method_names())
    if (!sparcol::optim::method_is_local(m) && !sparcol::optim::method_is_async(m)) c.emplace_back(m, "topk");
  for (const char* comp : {"rbgs", "sign", "randk", "topk-sampled"}) c.emplace_back("gmc", comp);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  sparcol::comm::MpiEnvironment env(&argc, &argv);
  if (argc != 8) {
    std::fprintf(stderr, "usage: native_flat_problem OUT a b steps lr weight_decay density\n");
    return 2;
  }
  try {
    const std::string out_path = argv[1];
    const std::uint64_t a = std::strtoull(argv[2], nullptr, 10), b = std::strtoull(argv[3], nullptr, 10);
    const std::uint64_t steps = std::strtoull(argv[4], nullptr, 10);
    const double lr = std::strtod(argv[5], nullptr), wd = std::strtod(argv[6], nullptr);
    const double density = std::strtod(argv[7], nullptr);
    auto backend = sparcol::comm::MpiBackend::world();
    const int k = backend->rank();
    const std::uint64_t n = a + b;
    sparcol::optim::Layout layout{{{"param0", 0, a, 2}, {"param1", a, b, 1}}};
    std::vector<float> c(n), w(n), g(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      c[i] =
          static_cast<float>(static_cast<int>((7 * i + 13 * static_cast<std::uint64_t>(k)) % 17) - 8) / 4.0f;
      w[i] = 1.0f + static_cast<float>(i % 5) / 4.0f;
    }
    std::FILE* out = k == 0 ? std::fopen(out_path.c_str(), "wb") : nullptr;
    if (k == 0 && out == nullptr)
      throw sparcol::Error(sparcol::ErrorCode::kIo, k, "cannot write " + out_path);
    for (const auto& [method, compressor] : cases()) {
      sparcol::optim::OptimConfig cfg;
      cfg.method = method;
      cfg.weight_decay = wd;
      cfg.exchange.compressor.name = compressor;
      cfg.exchange.compressor.density = density;
      cfg.liec_down = {"topk",
                       density};  // as sparcol.Optimizer's default: the down density is the up density
      auto opt = sparcol::optim::make_optimizer(*backend, layout, cfg);
      std::vector<float> x(n);
      for (std::uint64_t i = 0; i < n; ++i)
        x[i] = static_cast<float>(static_cast<int>((3 * i) % 11) - 5) / 8.0f;
      for (std::uint64_t t = 0; t < steps; ++t) {
        auto z = opt->gradient_point(x, lr);
        for (std::uint64_t i = 0; i < n; ++i) g[i] = (z[i] - c[i]) * w[i];
        opt->step(x, g, t, lr);
      }
      if (out != nullptr) std::fwrite(x.data(), sizeof(float), n, out);
    }
    if (out != nullptr) std::fclose(out);
  } catch (const sparcol::Error& e) {
    std::fprintf(stderr, "sparcol: rank %d: error: %s\n", sparcol::comm::MpiEnvironment::world_rank(),
                 e.what());
    sparcol::comm::MpiEnvironment::abort(sparcol::exit_code(e.code()));
  }
  return 0;
}
