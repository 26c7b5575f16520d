#include "coll_checks.hpp"

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sign_allgather.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/core/rng.hpp"

namespace sparcol::test {

namespace {

std::string where(const char* op, int rank, std::uint64_t i, double got, double want) {
  return std::string(op) + ": rank " + std::to_string(rank) + " index " + std::to_string(i) + ": got " +
         std::to_string(got) + ", expected " + std::to_string(want);
}

// FNV-1a over the bytes of a float vector, to compare results across ranks bit for bit.
std::uint64_t fingerprint(const float* v, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(v);
  for (std::size_t i = 0; i < n * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Checks that every rank holds the same bytes (compares fingerprints through allgatherv).
void check_identical(comm::Backend& b, const float* v, std::size_t n, const char* op, CheckResult& res) {
  const std::uint64_t mine = fingerprint(v, n);
  std::vector<std::uint64_t> all(static_cast<std::size_t>(b.size()));
  std::vector<std::size_t> bytes(static_cast<std::size_t>(b.size()), sizeof(std::uint64_t));
  b.allgatherv(&mine, all.data(), bytes);
  for (int r = 0; r < b.size(); ++r) {
    if (all[static_cast<std::size_t>(r)] != mine)
      res.fail(std::string(op) + ": result on rank " + std::to_string(b.rank()) +
               " differs bitwise from rank " + std::to_string(r));
  }
}

}  // namespace

float input_value(std::uint64_t seed, int rank, std::uint64_t i) {
  // Cheap integer hash: fast enough for 2^24 elements times 8 ranks.
  std::uint64_t x =
      (i + 1) * 0x9E3779B97F4A7C15ull ^ (seed + static_cast<std::uint64_t>(rank) * 0xBF58476D1CE4E5B9ull);
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return static_cast<float>(static_cast<int>(x % 17) - 8);
}

CheckResult check_ring_allreduce(comm::Backend& b, std::size_t count, std::uint64_t seed) {
  CheckResult res;
  const int K = b.size(), me = b.rank();
  std::vector<float> data(count), plain(count);
  for (std::size_t i = 0; i < count; ++i) data[i] = plain[i] = input_value(seed, me, i);
  coll::RingAllreduce ring(b, count);
  ring.run(data.data());
  b.allreduce_sum(plain.data(), count);
  for (std::size_t i = 0; i < count; ++i) {
    float want = 0;
    for (int r = 0; r < K; ++r) want += input_value(seed, r, i);
    if (data[i] != want) res.fail(where("ring_allreduce", me, i, data[i], want));
    if (data[i] != plain[i]) res.fail(where("ring_allreduce vs plain allreduce", me, i, data[i], plain[i]));
  }
  check_identical(b, data.data(), count, "ring_allreduce", res);
  return res;
}

std::optional<std::uint64_t> rbgs_step_of_kind(std::size_t n, std::size_t k, std::uint64_t seed, bool wrap) {
  if (wrap ? !(k >= 2 && k < n) : k > n) return std::nullopt;
  const std::uint64_t limit = 64 * static_cast<std::uint64_t>(n) + 64;
  for (std::uint64_t step = 0; step < limit; ++step)
    if ((sparcol::rbgs_block(n, k, seed, step, 3).wrap_len() != 0) == wrap) return step;
  return std::nullopt;
}

CheckResult check_rbgs_allreduce(comm::Backend& b, std::size_t n, std::size_t k, std::uint64_t seed,
                                 bool want_wrap) {
  CheckResult res;
  const int K = b.size(), me = b.rank();
  std::uint64_t step = 0;
  if (want_wrap) {
    const auto wrapping = rbgs_step_of_kind(n, k, seed, true);
    want_wrap = wrapping.has_value();
    step = wrapping.value_or(0);
  }
  std::vector<float> data(n);
  for (std::size_t i = 0; i < n; ++i) data[i] = input_value(seed, me, i);
  coll::RbgsAllreduce rbgs(b, n, k);
  const sparcol::Block blk = rbgs.run(data.data(), seed, step, 3);
  if (blk.length != k) res.fail("rbgs: block length " + std::to_string(blk.length) + " != k");
  if (want_wrap && blk.wrap_len() == 0) res.fail("rbgs: block was expected to wrap");
  // The plain reference: MPI_Allreduce of the same packed block.
  std::vector<float> packed(k);
  std::vector<float> mine(n);
  for (std::size_t i = 0; i < n; ++i) mine[i] = input_value(seed, me, i);
  sparcol::rbgs_pack(mine.data(), blk, packed.data());
  b.allreduce_sum(packed.data(), k);
  std::vector<float> plain = mine;
  sparcol::rbgs_unpack(packed.data(), blk, plain.data());
  std::uint64_t in_block = 0;
  for (std::size_t i = 0; i < n; ++i) {
    float want = mine[i];
    if (blk.contains(i)) {
      ++in_block;
      want = 0;
      for (int r = 0; r < K; ++r) want += input_value(seed, r, i);
    }
    if (data[i] != want) res.fail(where("rbgs_allreduce", me, i, data[i], want));
    if (data[i] != plain[i])
      res.fail(where("rbgs_allreduce vs plain allreduce of the block", me, i, data[i], plain[i]));
  }
  if (in_block != k)
    res.fail("rbgs: block covers " + std::to_string(in_block) +
             " positions, expected k = " + std::to_string(k));
  std::vector<float> block_only(k);
  sparcol::rbgs_pack(data.data(), blk, block_only.data());
  check_identical(b, block_only.data(), k, "rbgs_allreduce", res);
  return res;
}

namespace {
// The pairs rank r contributes in check_sparse_allgather.
void sparse_pairs(std::uint64_t seed, int rank, int size, std::uint64_t n, std::size_t max_k,
                  std::vector<Index>& idx, std::vector<float>& val) {
  CounterRng rng(seed, kStreamUser, static_cast<std::uint32_t>(rank));
  std::size_t k = static_cast<std::size_t>(rng.below(max_k + 1));
  if (size > 1 && rank == 1) k = 0;  // an empty rank
  if (rank == 0 && max_k > 0) k = max_k;
  // Draw indices from a range of about 2 * max_k so that duplicates across and within ranks occur.
  const std::uint64_t range = std::min<std::uint64_t>(n, std::max<std::uint64_t>(1, 2 * max_k));
  idx.resize(k);
  val.resize(k);
  for (std::size_t i = 0; i < k; ++i) {
    idx[i] = static_cast<Index>(n - 1 - rng.below(range));  // near the end: exercises large indices
    val[i] = static_cast<float>(static_cast<int>(rng.below(17)) - 8);
  }
}
}  // namespace

CheckResult check_sparse_allgather(comm::Backend& b, std::uint64_t n, std::size_t max_k, std::uint64_t seed) {
  CheckResult res;
  const int K = b.size(), me = b.rank();
  if (n == 0) max_k = 0;
  std::vector<Index> idx;
  std::vector<float> val;
  sparse_pairs(seed, me, K, n, max_k, idx, val);
  coll::SparseAllgather sag(b, n, max_k);
  sag.run({idx, val}, 7);
  std::vector<float> sum(n);
  sag.sum_into(sum.data());

  // Expected pairs of every rank, and the dense sum in rank order.
  std::vector<float> want(n, 0.0f);
  std::vector<std::size_t> bytes(static_cast<std::size_t>(K));
  std::vector<std::vector<Index>> all_idx(static_cast<std::size_t>(K));
  std::vector<std::vector<float>> all_val(static_cast<std::size_t>(K));
  for (int r = 0; r < K; ++r) {
    auto& ri = all_idx[static_cast<std::size_t>(r)];
    auto& rv = all_val[static_cast<std::size_t>(r)];
    sparse_pairs(seed, r, K, n, max_k, ri, rv);
    bytes[static_cast<std::size_t>(r)] = ri.size() * kPairBytes;
    if (sag.count(r) != ri.size()) {
      res.fail("sparse_allgather: rank " + std::to_string(me) + " got " + std::to_string(sag.count(r)) +
               " pairs from rank " + std::to_string(r) + ", expected " + std::to_string(ri.size()));
      continue;
    }
    for (std::size_t i = 0; i < ri.size(); ++i) {
      if (sag.chunk(r).indices[i] != ri[i] || sag.chunk(r).values[i] != rv[i])
        res.fail("sparse_allgather: pair " + std::to_string(i) + " from rank " + std::to_string(r) +
                 " differs on rank " + std::to_string(me));
      want[ri[i]] += rv[i];
    }
  }
  for (std::uint64_t i = 0; i < n; ++i)
    if (sum[i] != want[i]) res.fail(where("sparse_allgather sum", me, i, sum[i], want[i]));

  // Plain MPI_Allgatherv of the same pairs (AoS-free wire block: indices then values).
  std::vector<std::byte> block(idx.size() * kPairBytes);
  if (!idx.empty()) {
    std::memcpy(block.data(), idx.data(), idx.size() * sizeof(Index));
    std::memcpy(block.data() + idx.size() * sizeof(Index), val.data(), val.size() * sizeof(float));
  }
  std::size_t total = 0;
  for (auto x : bytes) total += x;
  std::vector<std::byte> gathered(total);
  b.allgatherv(block.data(), gathered.data(), bytes);
  std::size_t off = 0;
  for (int r = 0; r < K; ++r) {
    const std::size_t kr = bytes[static_cast<std::size_t>(r)] / kPairBytes;
    if (sag.count(r) == kr && kr > 0) {
      const SparseChunk got = sag.chunk(r);
      if (std::memcmp(gathered.data() + off, got.indices.data(), kr * sizeof(Index)) != 0 ||
          std::memcmp(gathered.data() + off + kr * sizeof(Index), got.values.data(), kr * sizeof(float)) != 0)
        res.fail("sparse_allgather: block of rank " + std::to_string(r) +
                 " differs from MPI_Allgatherv on rank " + std::to_string(me));
    }
    off += bytes[static_cast<std::size_t>(r)];
  }
  check_identical(b, sum.data(), n, "sparse_allgather sum", res);
  return res;
}

namespace {
// The inputs of rank r in check_sign_allgather: the sign of element j, and the scale (a multiple of
// 1/4 in [0.25, 4], so that sums over at most a few hundred ranks are exact in float).
bool sign_bit(std::uint64_t seed, int rank, std::uint64_t j) {
  return input_value(seed, rank, j) >= 0.0f;
}
float sign_scale(std::uint64_t seed, int rank) {
  return 0.25f * static_cast<float>(1 + (seed + 7 * static_cast<std::uint64_t>(rank)) % 16);
}
}  // namespace

CheckResult check_sign_allgather(comm::Backend& b, std::uint64_t n, std::uint64_t seed) {
  CheckResult res;
  const int K = b.size(), me = b.rank();
  const std::uint64_t words = (n + 31) / 32;
  // Every rank's packed bits by the formula (the padding bits of the last word are zero).
  std::vector<std::vector<std::uint32_t>> want(static_cast<std::size_t>(K),
                                               std::vector<std::uint32_t>(words, 0u));
  for (int r = 0; r < K; ++r)
    for (std::uint64_t j = 0; j < n; ++j)
      if (sign_bit(seed, r, j)) want[static_cast<std::size_t>(r)][j >> 5] |= 1u << (j & 31);
  const std::vector<std::uint32_t>& mine = want[static_cast<std::size_t>(me)];
  coll::SignAllgather sag(b, n);
  sag.run(SignBits{n, mine, sign_scale(seed, me)}, 5);
  if (sag.words() != words) res.fail("sign_allgather: " + std::to_string(sag.words()) + " words per rank");

  // The gathered blocks against the formula, and against the plain allgatherv of the same words.
  std::vector<std::uint32_t> plain(words * static_cast<std::uint64_t>(K));
  std::vector<std::size_t> bytes(static_cast<std::size_t>(K), words * sizeof(std::uint32_t));
  b.allgatherv(mine.data(), plain.data(), bytes);
  for (int r = 0; r < K; ++r) {
    const SignBits msg = sag.bits(r);
    const auto got = msg.words;
    const std::string of = " of rank " + std::to_string(r) + " on rank " + std::to_string(me);
    if (msg.scale != sign_scale(seed, r))
      res.fail("sign_allgather: scale " + std::to_string(msg.scale) + of + ", expected " +
               std::to_string(sign_scale(seed, r)));
    if (msg.n != n) res.fail("sign_allgather: n = " + std::to_string(msg.n) + of);
    if (got.size() != words) {
      res.fail("sign_allgather: " + std::to_string(got.size()) + " words" + of);
      continue;
    }
    if (words == 0) continue;
    if (std::memcmp(got.data(), want[static_cast<std::size_t>(r)].data(), words * sizeof(std::uint32_t)) != 0)
      res.fail("sign_allgather: bits" + of + " differ from the formula");
    if (std::memcmp(got.data(), plain.data() + words * static_cast<std::uint64_t>(r),
                    words * sizeof(std::uint32_t)) != 0)
      res.fail("sign_allgather: bits" + of + " differ from the plain allgatherv");
  }

  // The oracle, from the formula: mean_j = sum_r scale_r s_rj / K; majority_j = +-(sum_r scale_r) / K
  // with the sign of sum_r s_rj (a tie counts as +).
  std::vector<float> mean(n), majority(n);
  sag.mean_into(mean);
  sag.majority_into(majority);
  double scale_sum = 0.0;
  for (int r = 0; r < K; ++r) scale_sum += sign_scale(seed, r);
  const auto mean_scale = static_cast<float>(scale_sum / K);
  // In blocks of elements, ranks outer: the same sums, in an order that keeps 2^24 x 8 ranks quick.
  constexpr std::uint64_t kBlock = 4096;
  std::vector<double> sum(kBlock);
  std::vector<int> positive(kBlock);
  for (std::uint64_t j0 = 0; j0 < n; j0 += kBlock) {
    const std::uint64_t len = std::min(kBlock, n - j0);
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(positive.begin(), positive.end(), 0);
    for (int r = 0; r < K; ++r) {
      const std::uint32_t* w = want[static_cast<std::size_t>(r)].data();
      const double scale = sign_scale(seed, r);
      for (std::uint64_t i = 0; i < len; ++i) {
        const std::uint64_t j = j0 + i;
        const bool up = ((w[j >> 5] >> (j & 31)) & 1u) != 0;
        sum[i] += up ? scale : -scale;
        positive[i] += up ? 1 : 0;
      }
    }
    for (std::uint64_t i = 0; i < len; ++i) {
      const std::uint64_t j = j0 + i;
      const auto want_mean = static_cast<float>(sum[i] / K);
      const float want_majority = 2 * positive[i] >= K ? mean_scale : -mean_scale;
      if (mean[j] != want_mean) res.fail(where("sign_allgather mean", me, j, mean[j], want_mean));
      if (majority[j] != want_majority)
        res.fail(where("sign_allgather majority", me, j, majority[j], want_majority));
    }
  }
  check_identical(b, mean.data(), n, "sign_allgather mean", res);
  check_identical(b, majority.data(), n, "sign_allgather majority", res);
  return res;
}

std::vector<std::size_t> rbgs_ks(std::size_t n) {
  if (n > (std::size_t{1} << 20)) return {n / 2, n / 100};
  if (n == 0) return {0};
  return {0, 1, n, n / 2, n / 100};  // 1: a block of one element (never wraps)
}

std::vector<std::size_t> sparse_ks(std::size_t n) {
  if (n > (std::size_t{1} << 20)) return {0, n / 100 + 1};
  return {0, 1, n / 10 + 1, n};
}

int ranks_failed(comm::Backend& b, const CheckResult& r) {
  float f = r.wrong != 0 ? 1.0f : 0.0f;
  b.allreduce_sum(&f, 1);
  return static_cast<int>(f);
}

bool large_sizes() {
  const char* s = std::getenv("SPARCOL_TEST_SMALL");
  return s == nullptr || *s == '\0' || std::string(s) == "0";
}

std::vector<std::size_t> sized(std::vector<std::size_t> sizes) {
  if (large_sizes()) return sizes;
  std::erase_if(sizes, [](std::size_t n) { return n > (std::size_t{1} << 17); });
  return sizes;
}

std::uint64_t test_seed() {
  if (const char* s = std::getenv("SPARCOL_TEST_SEED"); s != nullptr && *s != '\0')
    return std::strtoull(s, nullptr, 0);
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) | rd();
}

}  // namespace sparcol::test
