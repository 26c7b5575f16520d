// sparcol-bench's results to its writer (output.hpp).
#include "output.hpp"

#include <string>

namespace sparcol::bench {

using comm::Backend;

io::BenchSetup table_setup(const Config& c, const Setup& s) {
  io::BenchSetup t;
  t.build = s.build;
  t.backend = s.backend;
  t.mpi_library = s.mpi_library;
  t.device = s.device;
  t.nccl_library = s.nccl_library;
  t.ranks = s.ranks;
  t.seed = s.seed;
  for (Op op : c.ops) t.ops.push_back(op_name(op));
  t.iters = c.iters;
  t.warmup = c.warmup;
  t.check = c.check;
  t.density = c.density;
  t.k = c.k;
  t.min_bytes = c.min_bytes;
  t.max_bytes = c.max_bytes;
  t.step_factor = c.factor;
  t.collective_check = c.check_collectives;
  t.nan_injected = c.nan;
  t.csv = c.csv;
  t.json = c.json;
  t.h5 = c.h5;
  return t;
}

io::BenchRow table_row(const Row& r) {
  io::BenchRow t;
  t.op = op_name(r.op);
  t.has_baseline = r.op != Op::kMpiAllreduce && r.op != Op::kMpiAllgatherv;
  t.bytes = r.bytes;
  t.count = r.count;
  t.k = r.k;
  t.density = r.density;
  t.ranks = r.ranks;
  t.time = {r.time.p50, r.time.min, r.time.p99};
  t.base = {r.base.p50, r.base.min, r.base.p99};
  t.allreduce_us = r.allreduce_us;
  t.sum_us = r.sum_us;
  t.algbw_gbs = r.algbw_gbs();
  t.busbw_gbs = r.busbw_gbs();
  t.sent_bytes = r.sent_bytes;
  t.wrong = r.wrong;
  return t;
}

std::unique_ptr<io::BenchTable> open_outputs(Backend& b, const Config& c, const Setup& s) {
  std::unique_ptr<io::BenchTable> out;
  std::string error;
  if (b.rank() == 0) {
    try {
      out = std::make_unique<io::BenchTable>(table_setup(c, s));
    } catch (const Error& e) {
      error = e.message();
    }
  }
  std::uint64_t len = error.size();
  b.control().broadcast(&len, sizeof len, 0);
  error.resize(len);
  if (len > 0) {
    b.control().broadcast(error.data(), len, 0);
    throw Error(ErrorCode::kIo, b.rank(), b.rank() == 0 ? error : "rank 0 cannot write its output: " + error);
  }
  return out;
}

}  // namespace sparcol::bench
