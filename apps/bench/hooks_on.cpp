// The test hooks of sparcol-bench-test-hooks (never installed): SPARCOL_BENCH_CORRUPT=1 makes the
// last rank spoil one result element, so that the tests can see the -c check count it.
#include <cstdlib>
#include <string>

#include "options.hpp"

namespace sparcol::bench {

bool test_hook_corrupt_requested() {
  const char* env = std::getenv("SPARCOL_BENCH_CORRUPT");
  return env != nullptr && std::string(env) == "1";
}

}  // namespace sparcol::bench
