#include "sign_ring_checks.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "sparcol/coll/sign_ring_allreduce.hpp"
#include "sparcol/device/ops.hpp"

namespace sparcol::test {

namespace {

std::vector<std::uint32_t> formula_bits(std::uint64_t seed, int r, std::uint64_t n) {
  std::vector<std::uint32_t> w(SignLayout::words_for(n), 0u);
  for (std::uint64_t j = 0; j < n; ++j) w[j / 32] |= SignLayout::placed(input_value(seed, r, j), j);
  return w;
}

float formula_scale(std::uint64_t seed, int r) {
  return 0.25f * static_cast<float>(1 + (seed + 5 * static_cast<std::uint64_t>(r)) % 16);
}

// Every rank holds the same words (64-bit fingerprint compared through allgatherv).
template <class T>
void same_everywhere(comm::Backend& b, const std::vector<T>& v, const char* what, CheckResult& res) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t i = 0; i < v.size() * sizeof(T); ++i) h = (h ^ p[i]) * 1099511628211ull;
  std::vector<std::uint64_t> all(static_cast<std::size_t>(b.size()));
  std::vector<std::size_t> bytes(static_cast<std::size_t>(b.size()), sizeof h);
  b.allgatherv(&h, all.data(), bytes);
  for (int r = 0; r < b.size(); ++r)
    if (all[static_cast<std::size_t>(r)] != h)
      res.fail(std::string(what) + ": rank " + std::to_string(b.rank()) + " differs bitwise from rank " +
               std::to_string(r));
}

}  // namespace

CheckResult check_marsit(comm::Backend& b, std::uint64_t n, std::uint64_t seed, std::uint64_t step) {
  CheckResult res;
  const int K = b.size(), me = b.rank();
  std::vector<std::vector<std::uint32_t>> bits;
  for (int r = 0; r < K; ++r) bits.push_back(formula_bits(seed, r, n));
  coll::SignRingAllreduce ring(b, n);
  const std::uint32_t tensor = 3;
  ring.run(SignBits{n, bits[static_cast<std::size_t>(me)], formula_scale(seed, me)}, seed, step, tensor);
  const auto want = coll::marsit_reference(bits, n, seed, step, tensor);
  const auto got = ring.merged();
  if (got.size() != want.size()) {
    res.fail("marsit: " + std::to_string(got.size()) + " words, expected " + std::to_string(want.size()));
    return res;
  }
  for (std::size_t w = 0; w < want.size(); ++w)
    if (got[w] != want[w])
      res.fail("marsit: rank " + std::to_string(me) + " word " + std::to_string(w) +
               " differs from the host recomputation");
  // Each bit is some rank's bit (where all ranks agree it is theirs); padding bits are 0.
  const std::vector<coll::SignWord> merged(got.begin(), got.end());
  for (std::uint64_t j = 0; j < n; ++j) {
    const bool bit = coll::SignLayout64::is_set(merged.data(), j);
    bool any = false;
    for (int r = 0; r < K && !any; ++r)
      any = SignLayout::is_set(bits[static_cast<std::size_t>(r)].data(), j) == bit;
    if (!any) res.fail("marsit: bit " + std::to_string(j) + " is no rank's bit");
  }
  if (n % 64 != 0 && !merged.empty() && (merged.back() >> (n % 64)) != 0)
    res.fail("marsit: padding bits set");
  float sum = 0.0f;
  for (int r = 0; r < K; ++r) sum += formula_scale(seed, r);
  const float lambda = sum / static_cast<float>(K);
  if (ring.scale() != lambda)
    res.fail("marsit: lambda " + std::to_string(ring.scale()) + ", expected " + std::to_string(lambda));
  std::vector<float> out(n);
  ring.decode_into(out);
  for (std::uint64_t j = 0; j < n; ++j) {
    const float e = coll::SignLayout64::is_set(merged.data(), j) ? lambda : -lambda;
    if (out[j] != e) res.fail("marsit: decoded element " + std::to_string(j) + " is not +-lambda");
  }
  same_everywhere(b, merged, "marsit bits", res);
  same_everywhere(b, out, "marsit decoded", res);
  return res;
}

CheckResult check_sign_cascade(comm::Backend& b, std::uint64_t n, std::uint64_t seed) {
  CheckResult res;
  const int K = b.size(), me = b.rank();
  auto p_of = [&](int r) {
    std::vector<float> p(n);
    for (std::uint64_t j = 0; j < n; ++j) p[j] = input_value(seed, r, j) / 4.0f;
    return p;
  };
  const std::vector<float> mine = p_of(me);
  coll::SignCascadeAllreduce cas(b, n);
  cas.run(mine, 7);
  // Host replay: chunk c starts at rank c, hop h adds rank c + h's chunk to the decoded message.
  std::vector<std::vector<float>> p;
  for (int r = 0; r < K; ++r) p.push_back(p_of(r));
  std::vector<float> want_out(n);
  for (int c = 0; c < K; ++c) {
    const std::uint64_t b0 = cas.chunk_begin(c), len = cas.chunk_size(c);
    std::vector<std::uint32_t> words(SignLayout::words_for(len));
    float scale = 0.0f;
    sparcol::sign_pack({p[static_cast<std::size_t>(c)].data() + b0, len}, words.data());
    scale = sparcol::sign_scale({p[static_cast<std::size_t>(c)].data() + b0, len});
    std::vector<float> sum(len);
    for (int h = 1; h < K; ++h) {
      const auto& pr = p[static_cast<std::size_t>((c + h) % K)];
      for (std::uint64_t j = 0; j < len; ++j)
        sum[j] = (SignLayout::is_set(words.data(), j) ? scale : -scale) + pr[b0 + j];
      sparcol::sign_pack({sum.data(), len}, words.data());
      scale = sparcol::sign_scale({sum.data(), len});
    }
    const SignBits got = cas.chunk(c);
    if (got.n != len || got.scale != scale ||
        (len > 0 && std::memcmp(got.words.data(), words.data(), words.size() * sizeof(std::uint32_t)) != 0))
      res.fail("sign_cascade: rank " + std::to_string(me) + " chunk " + std::to_string(c) +
               " differs from the host replay");
    for (std::uint64_t j = 0; j < len; ++j)
      want_out[b0 + j] = (SignLayout::is_set(words.data(), j) ? scale : -scale) / static_cast<float>(K);
  }
  std::vector<float> out(n);
  cas.decode_into(out);
  for (std::uint64_t j = 0; j < n; ++j)
    if (out[j] != want_out[j])
      res.fail("sign_cascade: rank " + std::to_string(me) + " decoded element " + std::to_string(j) +
               ": got " + std::to_string(out[j]) + ", expected " + std::to_string(want_out[j]));
  same_everywhere(b, out, "sign_cascade decoded", res);
  return res;
}

}  // namespace sparcol::test
