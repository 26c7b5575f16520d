// RBGS block gather/scatter with wrap-around (ALGORITHMS.md 1.3).
//
// The block is {start, ..., start + length - 1} mod n (sparcol::Block in core/payload.hpp;
// sparcol::rbgs_block draws start from the shared counter RNG). Packed position p holds element
// element(p): the first first_len() positions are start.., the rest wrap to 0... Each launch is one
// elementwise pass over the packed positions (pack, extract, unpack) or over all n elements (unpack
// with zero fill).
// Bytes: pack 8 per block element; extract 12; unpack 8 (with fill: 4 per element plus 4 per block
// element). Preconditions: b.length <= b.n, b.start < b.n unless length is 0.
#include "launch.cuh"
#include "sparcol/device/ops.hpp"

namespace sparcol::device {

void rbgs_pack(const Stream& s, const float* d_v, const Block& b, float* d_packed) {
  detail::check_block(b, b.n, "rbgs_pack");
  if (b.length == 0) return;
  detail::dev(d_v, "rbgs_pack: v");
  detail::dev(d_packed, "rbgs_pack: packed");
  detail::launch_elementwise(s, b.length, detail::RbgsPackOp{d_v, b, d_packed});
}

void rbgs_extract(const Stream& s, float* d_v, const Block& b, float* d_packed) {
  detail::check_block(b, b.n, "rbgs_extract");
  if (b.length == 0) return;
  detail::dev(d_v, "rbgs_extract: v");
  detail::dev(d_packed, "rbgs_extract: packed");
  detail::launch_elementwise(s, b.length, detail::RbgsExtractOp{d_v, b, d_packed});
}

void rbgs_unpack(const Stream& s, const float* d_packed, const Block& b, float divisor, float* d_out,
                 bool zero_outside) {
  detail::check_block(b, b.n, "rbgs_unpack");
  const std::uint64_t count = zero_outside ? b.n : b.length;
  if (count == 0) return;
  detail::dev(d_out, "rbgs_unpack: out");
  if (b.length != 0) detail::dev(d_packed, "rbgs_unpack: packed");
  if (zero_outside) {
    detail::launch_elementwise(s, b.n, detail::RbgsUnpackFillOp{d_packed, b, divisor, d_out});
  } else {
    detail::launch_elementwise(s, b.length, detail::RbgsUnpackOp{d_packed, b, divisor, d_out});
  }
}

}  // namespace sparcol::device
