// Helpers shared by the compressor implementations (private to src/compress).
#pragma once

#include <cstdint>
#include <string>

#include "sparcol/core/error.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol::compress::detail {

// Rejects vectors whose indices would not fit the uint32 wire format.
inline void check_length(std::uint64_t n, const std::string& who) {
  SPARCOL_CHECK_ARG(
      n <= kMaxElements, -1,
      who + ": vectors longer than 2^32-1 elements are not supported (n = " + std::to_string(n) + ")");
}

// The k a call uses: the context's k when it is set (it must not exceed n), else the compressor's.
inline std::uint64_t resolve_k(std::uint64_t ctx_k, std::uint64_t own_k, std::uint64_t n,
                               const std::string& who) {
  if (ctx_k == 0) return own_k;
  SPARCOL_CHECK_ARG(
      ctx_k <= n, -1,
      who + ": k = " + std::to_string(ctx_k) + " exceeds the vector length n = " + std::to_string(n));
  return ctx_k;
}

}  // namespace sparcol::compress::detail
