// Small vocabulary types shared by every layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define SPARCOL_HD __host__ __device__
#else
#define SPARCOL_HD
#endif

namespace sparcol {

// Where a buffer lives. Collectives on a host-memory backend stage device buffers through host memory.
enum class MemKind { kHost, kDevice };

// Indices on the wire and in sparse payloads are uint32 (ALGORITHMS.md 0.1): a vector may hold at
// most kMaxElements elements; longer vectors are rejected with ErrorCode::kInvalidArgument.
using Index = std::uint32_t;
inline constexpr std::uint64_t kMaxElements = std::numeric_limits<Index>::max();  // 2^32 - 1

// Bytes of one (index, value) pair on the wire, and of one RBGS value.
inline constexpr std::size_t kPairBytes = sizeof(Index) + sizeof(float);
inline constexpr std::size_t kValueBytes = sizeof(float);

}  // namespace sparcol
