// Random-k: Floyd's algorithm over a bitmap (see random_k.hpp).
#include "sparcol/compress/random_k.hpp"

#include <bit>

#include "common.hpp"
#include "sparcol/core/rng.hpp"

namespace sparcol::compress {

void DistinctSampler::draw(std::uint64_t n, std::uint64_t k, std::uint64_t key, std::uint32_t sub,
                           std::uint32_t stream, std::vector<Index>& out) {
  out.resize(k);
  if (k == 0) return;
  const std::uint64_t words = (n + 63) / 64;
  if (bitmap_.size() < words) bitmap_.resize(words, 0);  // invariant: all words are zero here
  std::uint64_t* bm = bitmap_.data();
  // Floyd: for j = n-k .. n-1 draw t uniform in [0, j]; take t unless taken already, else j (which
  // no earlier round could take). Each k-subset comes out with probability 1 / C(n, k).
  for (std::uint64_t i = 0; i < k; ++i) {
    const std::uint64_t j = n - k + i;
    std::uint64_t t = uniform_below(counter_u64(key, i, sub, stream), j + 1);
    if ((bm[t >> 6] >> (t & 63)) & 1) t = j;
    bm[t >> 6] |= std::uint64_t{1} << (t & 63);
  }
  // Read back in index order and restore the all-zero invariant.
  std::uint64_t c = 0;
  for (std::uint64_t w = 0; w < words; ++w) {
    std::uint64_t bits = bm[w];
    if (bits == 0) continue;
    bm[w] = 0;
    while (bits != 0) {
      out[c++] = static_cast<Index>(w * 64 + static_cast<std::uint64_t>(std::countr_zero(bits)));
      bits &= bits - 1;
    }
  }
}

void RandkCompressor::compress(std::span<const float> v, const Context& ctx, Message& out) {
  const std::uint64_t n = v.size();
  const std::string who = name();
  detail::check_length(n, who);
  const std::uint64_t k = detail::resolve_k(ctx.k, target_k(n), n, who);
  out.reset(aggregation(), n);
  const std::uint32_t stream = shared_ ? kStreamRandkShared : kStreamRandkLocal;
  const std::uint64_t key = counter_u64(ctx.seed, ctx.step, ctx.tensor, stream);
  sampler_.draw(n, k, key, shared_ ? 0u : ctx.rank, stream, out.indices);
  out.values.resize(k);
  const float s =
      scale_ && k > 0 ? static_cast<float>(static_cast<double>(n) / static_cast<double>(k)) : 1.0f;
  out.value_scale = s;
  for (std::uint64_t i = 0; i < k; ++i) out.values[i] = s * v[out.indices[i]];
}

}  // namespace sparcol::compress
