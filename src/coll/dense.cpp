#include "sparcol/coll/dense.hpp"

#include "sparcol/coll/agree.hpp"

namespace sparcol::coll {

void dense_allreduce_sum(comm::Backend& backend, float* data, std::size_t count, std::uint64_t step) {
  agree(backend, CallSignature{CollOp::kDenseAllreduce, count, 0, 0, step, 0, 0});
  backend.allreduce_sum(data, count);
}

}  // namespace sparcol::coll
