// Links sparcol::sparcol from an installed package, runs a ring all-reduce on 3 loopback ranks and
// writes and reads back an HDF5 attribute (so the final link needs the HDF5 libraries the package
// brings without FindHDF5).
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/config.hpp"
#include "sparcol/io/h5.hpp"

int main() {
  std::atomic<int> wrong{0};
  sparcol::comm::LoopbackWorld::spawn(3, [&](sparcol::comm::Backend& b) {
    std::vector<float> v(1000, static_cast<float>(b.rank() + 1));
    sparcol::coll::ring_allreduce_sum(b, v.data(), v.size());
    for (float x : v) wrong += x != 6.0f;
  });
  {
    sparcol::io::File f("sparcol_consumer.h5", sparcol::io::File::Mode::kCreate);
    f.set_attr("wrong", static_cast<std::int64_t>(wrong.load()));
  }
  const sparcol::io::File f("sparcol_consumer.h5", sparcol::io::File::Mode::kReadOnly);
  wrong += f.attr_int64("wrong") != wrong.load();
  std::printf("sparcol %s consumer: %d wrong\n", SPARCOL_VERSION_STRING, wrong.load());
  return wrong == 0 ? 0 : 1;
}
