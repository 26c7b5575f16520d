#include "liec_checks.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "sparcol/coll/liec_allreduce.hpp"
#include "sparcol/coll/sign_ring_allreduce.hpp"

namespace sparcol::test {

namespace {

bool selected(std::uint64_t seed, int r, std::uint64_t j, int pct) {
  if (pct <= 0) return false;
  if (pct >= 100) return true;
  const std::uint64_t h = coll::splitmix_mix(seed ^ (static_cast<std::uint64_t>(r) << 40) ^ (j * 0x9E37u));
  return static_cast<int>(h % 100) < pct;
}

std::vector<Index> upload_indices(std::uint64_t seed, int r, std::uint64_t n, int pct) {
  std::vector<Index> idx;
  for (std::uint64_t j = 0; j < n; ++j)
    if (selected(seed, r, j, pct)) idx.push_back(static_cast<Index>(j));
  if (r % 2 == 1) std::reverse(idx.begin(), idx.end());  // any order is allowed
  return idx;
}

std::uint64_t same_hash(const std::vector<float>& v) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace

CheckResult check_liec(comm::Backend& b, std::uint64_t n, bool sparse_up, bool sparse_down, int pct_up,
                       int pct_down, std::uint64_t seed) {
  using P = coll::LiecAllreduce::Payload;
  CheckResult res;
  const int K = b.size(), me = b.rank();
  coll::LiecAllreduce lr(b, n, sparse_up ? P::kSparse : P::kDense, sparse_down ? P::kSparse : P::kDense);
  // Expected sum of every element over the ranks, and every rank's upload.
  std::vector<float> want_sum(n, 0.0f);
  std::vector<std::vector<Index>> idx(static_cast<std::size_t>(K));
  std::vector<std::vector<float>> val(static_cast<std::size_t>(K));
  std::uint64_t pairs_all = 0;
  for (int r = 0; r < K; ++r) {
    auto& I = idx[static_cast<std::size_t>(r)];
    auto& V = val[static_cast<std::size_t>(r)];
    if (sparse_up) {
      I = upload_indices(seed, r, n, pct_up);
    } else {
      for (std::uint64_t j = 0; j < n; ++j) I.push_back(static_cast<Index>(j));
    }
    for (const Index j : I) V.push_back(input_value(seed, r, j));
    for (std::size_t p = 0; p < I.size(); ++p) want_sum[I[p]] += V[p];
    pairs_all += I.size();
  }
  const auto mi = static_cast<std::size_t>(me);
  if (sparse_up) {
    lr.reduce(SparseChunk{idx[mi], val[mi]}, 7);
  } else {
    lr.reduce(std::span<const float>(val[mi]), 7);
  }
  const std::uint64_t lo = lr.chunk_begin(me), len = lr.chunk_size(me);
  std::vector<SparseChunk> ups;
  for (int r = 0; r < K; ++r)
    ups.push_back(SparseChunk{idx[static_cast<std::size_t>(r)], val[static_cast<std::size_t>(r)]});
  const auto ref = coll::liec_reference_sum(ups, n);
  const auto sum = lr.owner_sum();
  if (sum.size() != len)
    res.fail("liec: owner sum of " + std::to_string(sum.size()) + " for a chunk of " + std::to_string(len));
  for (std::uint64_t e = 0; e < std::min<std::uint64_t>(len, sum.size()); ++e) {
    if (sum[e] != want_sum[lo + e] || sum[e] != ref[lo + e])
      res.fail("liec reduce: rank " + std::to_string(me) + " element " + std::to_string(lo + e) + ": got " +
               std::to_string(sum[e]) + ", expected " + std::to_string(want_sum[lo + e]));
  }
  // Owners' chunks and the byte counts of phase 1.
  std::uint64_t chunk_check = 0;
  for (int r = 0; r < K; ++r) chunk_check += lr.chunk_size(r);
  if (chunk_check != n)
    res.fail("liec: chunks cover " + std::to_string(chunk_check) + " of " + std::to_string(n));
  for (std::uint64_t j = 0; j < n; ++j) {
    const int o = lr.owner(j);
    if (j < lr.chunk_begin(o) || j >= lr.chunk_begin(o + 1)) {
      res.fail("liec: owner(" + std::to_string(j) + ") = " + std::to_string(o) + " does not hold it");
      break;
    }
  }
  const auto uK = static_cast<std::uint64_t>(K);
  if (sparse_up) {
    std::uint64_t other = 0;
    for (const Index j : idx[mi]) other += lr.owner(j) != me;
    const std::uint64_t want = 8 * other + 8 * (uK - 1) * uK;
    if (lr.last_up_bytes_sent() != want)
      res.fail("liec: upload sent " + std::to_string(lr.last_up_bytes_sent()) + " bytes, expected " +
               std::to_string(want));
    if (lr.last_up_pairs_all() != pairs_all)
      res.fail("liec: pairs_all " + std::to_string(lr.last_up_pairs_all()));
  } else if (lr.last_up_bytes_sent() != 4 * (n - len)) {
    res.fail("liec: dense upload sent " + std::to_string(lr.last_up_bytes_sent()) + " bytes");
  }
  // Phase 2: owner r sends its sum at its selected indices (or its whole chunk).
  std::vector<float> want_c(n, 0.0f);
  for (std::uint64_t j = 0; j < n; ++j)
    if (!sparse_down || selected(seed + 1, lr.owner(j), j, pct_down)) want_c[j] = want_sum[j];
  std::vector<float> out(n, -1.0f);
  std::vector<Index> di;
  std::vector<float> dv;
  for (std::uint64_t e = 0; e < len; ++e)
    if (selected(seed + 1, me, lo + e, pct_down)) {
      di.push_back(static_cast<Index>(lo + e));
      dv.push_back(sum[e]);
    }
  if (sparse_down) {
    lr.gather(SparseChunk{di, dv}, out, 7);
  } else {
    lr.gather(std::span<const float>(sum.data(), sum.size()), out, 7);
  }
  for (std::uint64_t j = 0; j < n; ++j)
    if (out[j] != want_c[j]) {
      res.fail("liec gather: rank " + std::to_string(me) + " element " + std::to_string(j) + ": got " +
               std::to_string(out[j]) + ", expected " + std::to_string(want_c[j]));
    }
  if (sparse_down) {
    const std::uint64_t want = 8 * (uK - 1) * di.size() + 8 * (uK - 1);
    if (lr.last_down_bytes_sent() != want)
      res.fail("liec: download sent " + std::to_string(lr.last_down_bytes_sent()) + " bytes, expected " +
               std::to_string(want));
  } else if (lr.last_down_bytes_sent() != 4 * (uK - 1) * len) {
    res.fail("liec: dense download sent " + std::to_string(lr.last_down_bytes_sent()) + " bytes");
  }
  // Bitwise the same vector everywhere.
  const std::uint64_t h = same_hash(out);
  std::vector<std::uint64_t> all(uK);
  std::vector<std::size_t> bytes(uK, sizeof h);
  b.allgatherv(&h, all.data(), bytes);
  for (int r = 0; r < K; ++r)
    if (all[static_cast<std::size_t>(r)] != h)
      res.fail("liec: rank " + std::to_string(me) + " differs from rank " + std::to_string(r));
  return res;
}

}  // namespace sparcol::test
