#include "sparcol/compress/random_block.hpp"

#include "common.hpp"

namespace sparcol::compress {

void RbgsCompressor::compress(std::span<const float> v, const Context& ctx, Message& out) {
  const std::uint64_t n = v.size();
  detail::check_length(n, "rbgs");
  const std::uint64_t k = detail::resolve_k(ctx.k, target_k(n), n, "rbgs");
  out.reset(Aggregation::kShared, n);
  out.is_block = true;
  out.block = rbgs_block(n, k, ctx.seed, ctx.step, ctx.tensor);
  out.values.resize(k);
  rbgs_pack(v.data(), out.block, out.values.data());
}

}  // namespace sparcol::compress
