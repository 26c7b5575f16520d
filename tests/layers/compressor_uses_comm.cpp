// Must NOT compile with sparcol_compress's include directories (tests/layers/CMakeLists.txt): a
// compressor that reaches for the communication layer. Compressors depend on core and device only
// (STYLE.md 1), so sparcol/comm/ is not on their include path.
#include "sparcol/comm/backend.hpp"
#include "sparcol/compress/compressor.hpp"

namespace sparcol::compress {

int probe_world_size(comm::Backend& backend) {
  return backend.size();
}

}  // namespace sparcol::compress
