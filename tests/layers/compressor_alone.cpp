// The control for compressor_uses_comm.cpp: the same compressor-side code without the comm header
// compiles with sparcol_compress's include directories (so that the other one fails for its include).
#include "sparcol/compress/compressor.hpp"
#include "sparcol/core/payload.hpp"
#include "sparcol/device/dispatch.hpp"

namespace sparcol::compress {

std::uint64_t probe_block_length(const Message& m) {
  return m.block.length;
}

}  // namespace sparcol::compress
