#include "devpath_checks.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>
#include <vector>

#include "../common/coll_checks.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sign_allgather.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/core/rng.hpp"

namespace sparcol::test {

namespace {

using device::Buffer;
using device::Exec;
using Vec = std::vector<float>;

// Pieces of 1 KiB, so that a few thousand elements already take several pieces per ring step.
constexpr std::size_t kPiece = 1024;

// A float for (seed, rank, i): integer-valued in [-8, 8] when `integer`, else a 24-bit fraction in
// [-4, 4) (sums then depend on their order in the last bits).
float value(std::uint64_t seed, int rank, std::uint64_t i, bool integer) {
  const std::uint64_t h = counter_u64(seed, i, static_cast<std::uint32_t>(rank), kStreamUser);
  if (integer) return static_cast<float>(static_cast<int>(h % 17) - 8);
  return static_cast<float>(static_cast<double>(h >> 40) * 0x1.0p-21 - 4.0);
}

Vec inputs(std::uint64_t seed, int rank, std::size_t n, bool integer) {
  Vec v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = value(seed, rank, i, integer);
  return v;
}

template <class T>
Buffer<T> to_exec(Exec& ex, const std::vector<T>& h, const char* what) {
  Buffer<T> b(ex, h.size(), what);
  ex.upload(b.data(), h.data(), h.size() * sizeof(T));
  return b;
}

template <class T>
std::vector<T> from_exec(Exec& ex, const T* p, std::size_t n) {
  std::vector<T> h(n);
  ex.download(h.data(), p, n * sizeof(T));
  return h;
}

template <class T>
void compare(DevCheck& c, const char* what, int rank, const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size()) {
    c.fail(std::string(what) + ": rank " + std::to_string(rank) + ": " + std::to_string(got.size()) +
           " elements, expected " + std::to_string(want.size()));
    return;
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) == 0) continue;
    c.fail(std::string(what) + ": rank " + std::to_string(rank) + " element " + std::to_string(i) + ": got " +
           std::to_string(static_cast<double>(got[i])) + ", expected " +
           std::to_string(static_cast<double>(want[i])) + " (bitwise)");
  }
}

// Whether the executor path may sum in another order than the host path (NCCL's own all-reduce).
bool native_on(comm::Backend& b, int algorithm) {
  return algorithm == 3 || (algorithm == 0 && b.mem_kind() == MemKind::kDevice);
}

}  // namespace

DevCheck check_ring_exec(comm::Backend& b, Exec& ex, std::size_t count, int algorithm, std::uint64_t seed) {
  DevCheck c;
  const int me = b.rank();
  using A = coll::RingAllreduce::Algorithm;
  const A algo = static_cast<A>(algorithm);
  const bool integer = native_on(b, algorithm);
  Vec want = inputs(seed, me, count, integer);
  auto d = to_exec(ex, want, "ring input");
  // The host path on the control backend; kAuto there resolves as it would on any host backend.
  coll::RingAllreduce(b.control(), count, kPiece, algo == A::kNative ? A::kAuto : algo).run(want.data());
  coll::RingAllreduce ring(b, count, kPiece, algo, &ex);
  ring.run(d.data(), 7);
  compare(c, "ring_allreduce (executor path)", me, from_exec(ex, d.data(), count), want);
  // A second call on the same object (scratch reuse), with other data.
  want = inputs(seed + 1, me, count, integer);
  ex.upload(d.data(), want.data(), count * sizeof(float));
  coll::RingAllreduce(b.control(), count, kPiece, algo == A::kNative ? A::kAuto : algo).run(want.data());
  ring.run(d.data(), 8);
  compare(c, "ring_allreduce (executor path, second call)", me, from_exec(ex, d.data(), count), want);
  return c;
}

DevCheck check_rbgs_exec(comm::Backend& b, Exec& ex, std::size_t n, std::size_t k, bool wrap,
                         std::uint64_t seed) {
  DevCheck c;
  const int me = b.rank();
  // k = 0 and k = n have one kind of block only; a one-element block never wraps.
  const bool choose = k > 0 && k < n;
  const auto chosen = choose ? rbgs_step_of_kind(n, k, seed, wrap) : std::nullopt;
  const std::uint64_t step = chosen.value_or(0);
  const bool integer = b.mem_kind() == MemKind::kDevice;  // the block goes through ncclAllReduce
  Vec want = inputs(seed, me, n, integer);
  auto d = to_exec(ex, want, "rbgs input");
  coll::RbgsAllreduce(b.control(), n, k).run(want.data(), seed, step, 3);
  coll::RbgsAllreduce rbgs(b, n, k, &ex);
  const sparcol::Block blk = rbgs.run(d.data(), seed, step, 3);
  if (chosen && (blk.wrap_len() != 0) != wrap) c.fail("rbgs: the block does not wrap as chosen");
  compare(c, "rbgs_allreduce (executor path)", me, from_exec(ex, d.data(), n), want);
  return c;
}

DevCheck check_sparse_exec(comm::Backend& b, Exec& ex, std::uint64_t n, std::size_t max_k, int algorithm,
                           std::uint64_t seed) {
  DevCheck c;
  const int me = b.rank(), K = b.size();
  using A = coll::SparseAllgather::Algorithm;
  const A algo = algorithm == 1 ? A::kDirect : algorithm == 2 ? A::kRing : A::kAuto;
  // This rank's pairs: a seeded count (rank 1 none), indices from a small range (duplicates).
  CounterRng rng(seed, kStreamUser, static_cast<std::uint32_t>(me) + 100);
  std::size_t k = n == 0 ? 0 : static_cast<std::size_t>(rng.below(max_k + 1));
  if (K > 1 && me == 1) k = 0;
  const std::uint64_t range = std::max<std::uint64_t>(1, std::min<std::uint64_t>(n, 2 * max_k + 1));
  std::vector<Index> idx(k);
  Vec val(k);
  for (std::size_t j = 0; j < k; ++j) {
    idx[j] = static_cast<Index>(rng.below(range));
    val[j] = value(seed, me, j, false);
  }
  coll::SparseAllgather ref(b.control(), n, max_k, algo);
  ref.run({idx, val}, 5);
  Vec want_sum(n);
  ref.sum_into(want_sum.data(), static_cast<float>(K));

  auto d_idx = to_exec(ex, idx, "sparse indices");
  auto d_val = to_exec(ex, val, "sparse values");
  Buffer<float> d_sum(ex, n, "sparse sum");
  coll::SparseAllgather sag(b, n, max_k, algo, &ex);
  const SparseChunk d_pairs{{d_idx.data(), k}, {d_val.data(), k}};
  sag.run(d_pairs, 5);
  for (int r = 0; r < K; ++r) {
    const SparseChunk got = sag.chunk(r), want = ref.chunk(r);
    const auto gi = got.indices, wi = want.indices;
    const auto gv = got.values, wv = want.values;
    compare(c, "sparse_allgather indices", me, from_exec(ex, gi.data(), gi.size()),
            std::vector<Index>(wi.begin(), wi.end()));
    compare(c, "sparse_allgather values", me, from_exec(ex, gv.data(), gv.size()), Vec(wv.begin(), wv.end()));
  }
  sag.sum_into(d_sum.data(), static_cast<float>(K));
  compare(c, "sparse_allgather sum_into / K", me, from_exec(ex, d_sum.data(), n), want_sum);

  // run_agreed (what the fused optimizers call) with every rank's count known.
  std::vector<std::size_t> counts(static_cast<std::size_t>(K));
  for (int r = 0; r < K; ++r) counts[static_cast<std::size_t>(r)] = ref.count(r);
  sag.run_agreed(d_pairs, counts);
  sag.sum_into(d_sum.data(), static_cast<float>(K));
  compare(c, "sparse_allgather run_agreed + sum_into", me, from_exec(ex, d_sum.data(), n), want_sum);
  return c;
}

DevCheck check_sign_exec(comm::Backend& b, Exec& ex, std::uint64_t n, std::uint64_t seed) {
  DevCheck c;
  const int me = b.rank(), K = b.size();
  const std::uint64_t words = (n + 31) / 32;
  std::vector<std::uint32_t> bits(words);
  for (std::uint64_t w = 0; w < words; ++w) {
    bits[w] = static_cast<std::uint32_t>(counter_u64(seed, w, static_cast<std::uint32_t>(me), kStreamUser));
    if (w == words - 1 && n % 32 != 0) bits[w] &= (1u << (n % 32)) - 1u;  // unused high bits are 0
  }
  const float scale = 0.5f + std::abs(value(seed, me, 999, false));
  coll::SignAllgather ref(b.control(), n);
  ref.run(SignBits{n, bits, scale}, 2);
  Vec want_mean(n), want_major(n);
  ref.mean_into(want_mean);
  ref.majority_into(want_major);

  auto d_bits = to_exec(ex, bits, "sign bits");
  Buffer<float> d_out(ex, n, "sign decoded");
  coll::SignAllgather sag(b, n, &ex);
  sag.run(SignBits{n, {d_bits.data(), words}, scale}, 2);
  for (int r = 0; r < K; ++r) {
    const SignBits got = sag.bits(r), want = ref.bits(r);
    compare(c, "sign_allgather bits", me, from_exec(ex, got.words.data(), got.words.size()),
            std::vector<std::uint32_t>(want.words.begin(), want.words.end()));
    compare(c, "sign_allgather scale", me, Vec{got.scale}, Vec{want.scale});
  }
  sag.mean_into(d_out.span());
  compare(c, "sign_allgather mean_into", me, from_exec(ex, d_out.data(), n), want_mean);
  sag.majority_into(d_out.span());
  compare(c, "sign_allgather majority_into", me, from_exec(ex, d_out.data(), n), want_major);
  return c;
}

DevCheck check_dense_exec(comm::Backend& b, Exec& ex, std::size_t count, std::uint64_t seed) {
  DevCheck c;
  const int me = b.rank(), K = b.size();
  // allreduce_sum of integer-valued floats: exact in any order.
  Vec want(count, 0.0f);
  for (int r = 0; r < K; ++r) {
    const Vec v = inputs(seed, r, count, true);
    for (std::size_t i = 0; i < count; ++i) want[i] += v[i];
  }
  auto d = to_exec(ex, inputs(seed, me, count, true), "dense all-reduce");
  b.allreduce_sum(d.data(), count);
  compare(c, "allreduce_sum", me, from_exec(ex, d.data(), count), want);
  // allgatherv: rank r contributes min(count, r + 1) floats (rank 0 possibly one, never all equal).
  std::vector<std::size_t> bytes(static_cast<std::size_t>(K));
  std::size_t total = 0;
  Vec gathered_want;
  for (int r = 0; r < K; ++r) {
    const std::size_t len = std::min<std::size_t>(count, static_cast<std::size_t>(r) + 1);
    bytes[static_cast<std::size_t>(r)] = len * sizeof(float);
    total += len;
    const Vec v = inputs(seed + 3, r, len, false);
    gathered_want.insert(gathered_want.end(), v.begin(), v.end());
  }
  const std::size_t mine = bytes[static_cast<std::size_t>(me)] / sizeof(float);
  auto d_send = to_exec(ex, inputs(seed + 3, me, mine, false), "all-gather-v send");
  Buffer<float> d_all(ex, total, "all-gather-v receive");
  b.allgatherv(d_send.data(), d_all.data(), bytes);
  compare(c, "allgatherv", me, from_exec(ex, d_all.data(), total), gathered_want);
  // broadcast from the last rank.
  auto d_b = to_exec(ex, inputs(seed + 4, me, count, false), "broadcast");
  b.broadcast(d_b.data(), count * sizeof(float), K - 1);
  compare(c, "broadcast", me, from_exec(ex, d_b.data(), count), inputs(seed + 4, K - 1, count, false));
  return c;
}

int ranks_failed(comm::Backend& b, const DevCheck& c) {
  float f = c.wrong != 0 ? 1.0f : 0.0f;
  b.control().allreduce_sum(&f, 1);
  return static_cast<int>(f);
}

}  // namespace sparcol::test
