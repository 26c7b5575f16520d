// The installed sparcol-bench has no test hooks: SPARCOL_BENCH_CORRUPT is not read.
#include "options.hpp"

namespace sparcol::bench {

bool test_hook_corrupt_requested() {
  return false;
}

}  // namespace sparcol::bench
