// Links sparcol::sparcol from an installed package and runs a ring all-reduce on 3 loopback ranks.
#include <atomic>
#include <cstdio>
#include <vector>

#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/config.hpp"

int main() {
  std::atomic<int> wrong{0};
  sparcol::comm::LoopbackWorld::spawn(3, [&](sparcol::comm::Backend& b) {
    std::vector<float> v(1000, static_cast<float>(b.rank() + 1));
    sparcol::coll::ring_allreduce_sum(b, v.data(), v.size());
    for (float x : v) wrong += x != 6.0f;
  });
  std::printf("sparcol %s consumer: %d wrong\n", SPARCOL_VERSION_STRING, wrong.load());
  return wrong == 0 ? 0 : 1;
}
