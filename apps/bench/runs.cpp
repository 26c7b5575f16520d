// The operations at one size and the sweep (runs.hpp).
#include "runs.hpp"

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "data.hpp"
#include "output.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sign_allgather.hpp"
#include "sparcol/coll/sign_ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/comm/mpi_backend.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/device/ops.hpp"
#include "sparcol/topo/neighbor_exchange.hpp"

namespace sparcol::bench {

using comm::Backend;

namespace {

// Sum over ranks of a per-rank count (wrong elements), exact as long as it fits in a double.
std::int64_t sum_over_ranks(Backend& b, std::uint64_t mine) {
  const auto n = static_cast<std::size_t>(b.size());
  std::vector<std::uint64_t> all(n);
  std::vector<std::size_t> bytes(n, sizeof(std::uint64_t));
  b.control().allgatherv(&mine, all.data(), bytes);
  std::uint64_t s = 0;
  for (auto x : all) s += x;
  return static_cast<std::int64_t>(s);
}

// A vector the operations work on: host memory, or the executor's device memory with --device cuda.
// Inputs are built on the host and copied in (untimed); results are copied out for the check.
template <class T>
class Mem {
 public:
  Mem(sparcol::device::Exec* ex, std::size_t n) : ex_(ex) {
    if (ex_ != nullptr) {
      dev_.assign(*ex_, n, "sparcol-bench buffer");
    } else {
      host_.resize(n);
    }
  }
  T* data() { return ex_ != nullptr ? dev_.data() : host_.data(); }
  std::size_t size() const { return ex_ != nullptr ? static_cast<std::size_t>(dev_.size()) : host_.size(); }
  void set(const std::vector<T>& h) { set_range(0, h.data(), h.size()); }
  void set_range(std::size_t off, const T* h, std::size_t n) {
    if (ex_ != nullptr) {
      ex_->upload(dev_.data() + off, h, n * sizeof(T));
    } else {
      std::copy(h, h + n, host_.begin() + static_cast<std::ptrdiff_t>(off));
    }
  }
  std::vector<T> get() const { return get_range(ex_ != nullptr ? dev_.data() : host_.data(), size()); }
  // n elements at p (this executor's memory) as a host vector.
  std::vector<T> get_range(const T* p, std::size_t n) const {
    if (ex_ == nullptr) return std::vector<T>(p, p + n);
    std::vector<T> h(n);
    ex_->download(h.data(), p, n * sizeof(T));
    return h;
  }
  // this[off, off + n) <- src[off, off + n), finished when this returns (the caller times what follows).
  void copy_from(Mem& src, std::size_t off, std::size_t n) {
    if (n == 0) return;
    if (ex_ != nullptr) {
      ex_->copy(dev_.data() + off, src.data() + off, n * sizeof(T));
      ex_->synchronize();
    } else {
      std::copy(src.host_.begin() + static_cast<std::ptrdiff_t>(off),
                src.host_.begin() + static_cast<std::ptrdiff_t>(off + n),
                host_.begin() + static_cast<std::ptrdiff_t>(off));
    }
  }
  void copy_from(Mem& src) { copy_from(src, 0, size()); }

 private:
  sparcol::device::Exec* ex_;
  std::vector<T> host_;
  sparcol::device::Buffer<T> dev_;
};

class SizeBench {
 public:
  SizeBench(Backend& b, const Config& c, std::uint64_t seed, std::uint64_t bytes, sparcol::device::Exec* ex)
      : b_(b),
        c_(c),
        ex_(ex),
        seed_(seed),
        bytes_(bytes),
        d_(bytes / sizeof(float)),
        k_(pairs_for(c, bytes / sizeof(float))),
        K_(b.size()),
        me_(b.rank()) {
    if (k_ > d_) {
      throw Error(ErrorCode::kInvalidArgument, me_,
                  "-k " + std::to_string(k_) + " exceeds the vector length d = " + std::to_string(d_) +
                      " at size " + std::to_string(bytes_) + " bytes");
    }
  }

  Row base_row(Op op, double payload, double factor) const {
    Row r;
    r.op = op;
    r.bytes = bytes_;
    r.count = d_;
    r.ranks = K_;
    r.k = (op == Op::kDenseRing || op == Op::kMpiAllreduce) ? d_ : k_;
    r.density = static_cast<double>(r.k) / static_cast<double>(d_);
    r.payload_bytes = payload;
    r.bus_factor = factor;
    return r;
  }

  double allreduce_factor() const { return 2.0 * (K_ - 1) / K_; }
  double allgather_factor() const { return static_cast<double>(K_ - 1) / K_; }

  // The dense input of this rank; rank 0 puts a NaN in the middle with --nan.
  void fill_dense(std::vector<float>& v) const {
    v.resize(d_);
    for (std::uint64_t i = 0; i < d_; ++i) v[i] = input_value(seed_, me_, i);
    if (c_.nan && me_ == 0) v[d_ / 2] = std::numeric_limits<float>::quiet_NaN();
  }
  // The same in the benchmark's memory.
  Mem<float> dense_input() const {
    std::vector<float> h;
    fill_dense(h);
    Mem<float> m(ex_, d_);
    m.set(h);
    return m;
  }
  float dense_expected(std::uint64_t i) const {
    if (c_.nan && i == d_ / 2) return std::numeric_limits<float>::quiet_NaN();
    return expected_sum(seed_, K_, i);
  }
  std::uint64_t check_dense_sum(const std::vector<float>& v) const {
    std::uint64_t wrong = 0;
    for (std::uint64_t i = 0; i < d_; ++i) wrong += same(v[i], dense_expected(i)) ? 0 : 1;
    return wrong;
  }

  // The backend's dense all-reduce (MPI_Allreduce, or ncclAllReduce with --backend nccl) of the whole
  // vector, timed alone.
  Row mpi_allreduce() {
    Row row = base_row(Op::kMpiAllreduce, 4.0 * static_cast<double>(d_), allreduce_factor());
    FullAllreduce full(*this);
    row.time = time_interleaved(b_, c_, {full.timed()})[0].stats;
    row.base = row.time;
    row.allreduce_us = row.time.p50;
    row.sent_bytes = ring_allreduce_bytes(d_);
    if (c_.check) {
      std::vector<float> result = full.result().get();
      spoil(result[0]);
      row.wrong = sum_over_ranks(b_, check_dense_sum(result));
    }
    return row;
  }

  // sparcol's all-reduce, interleaved with the backend's all-reduce of the same vector (its baseline,
  // and the x-allred reference).
  Row dense_ring() {
    Row row = base_row(Op::kDenseRing, 4.0 * static_cast<double>(d_), allreduce_factor());
    Mem<float> pristine = dense_input(), data(ex_, d_);
    sparcol::coll::RingAllreduce ring(b_, d_, sparcol::coll::RingAllreduce::kDefaultPieceBytes,
                                      sparcol::coll::RingAllreduce::Algorithm::kAuto, ex_);
    FullAllreduce full(*this);
    const auto t = time_interleaved(b_, c_,
                                    {{[&](std::uint64_t) { data.copy_from(pristine); },
                                      [&](std::uint64_t step) { ring.run(data.data(), step); }},
                                     full.timed()});
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = t[1].stats.p50;
    if (c_.check) {
      std::vector<float> result = data.get();
      spoil(result[0]);
      row.wrong = sum_over_ranks(b_, check_dense_sum(result));
    }
    return row;
  }

  // RBGS with the block of step `step`, interleaved with the backend's all-reduce of a packed k-float
  // block (the baseline) and of the whole vector (the x-allred reference).
  Row rbgs() {
    Row row = base_row(Op::kRbgs, 4.0 * static_cast<double>(k_), allreduce_factor());
    std::vector<float> pristine_h;
    fill_dense(pristine_h);
    Mem<float> pristine(ex_, d_), data(ex_, d_);
    pristine.set(pristine_h);
    data.copy_from(pristine);
    sparcol::coll::RbgsAllreduce rbgs(b_, d_, k_, ex_);
    sparcol::Block last{d_, 0, 0};
    auto block = [&](std::uint64_t step) { return sparcol::rbgs_block(d_, k_, seed_, step, 0); };
    // Restores what the previous run changed (its block) and rewrites the next run's block, its input,
    // as the baseline's reset rewrites its buffer; with --nan rank 0 puts a NaN inside that block.
    auto restore = [&](const sparcol::Block& blk) {
      data.copy_from(pristine, blk.start, blk.first_len());
      data.copy_from(pristine, 0, blk.wrap_len());
    };
    auto reset = [&](std::uint64_t step) {
      restore(last);
      last = block(step);
      restore(last);
      if (c_.nan && me_ == 0 && k_ > 0) {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        data.set_range(last.start, &nan, 1);
      }
    };
    std::vector<float> packed_h(k_);
    sparcol::rbgs_pack(pristine_h.data(), block(0), packed_h.data());
    Mem<float> packed0(ex_, k_), packed(ex_, k_);
    packed0.set(packed_h);
    FullAllreduce full(*this);
    const auto t =
        timed_with_xref({{reset, [&](std::uint64_t step) { rbgs.run(data.data(), seed_, step, 0); }},
                         {[&](std::uint64_t) { packed.copy_from(packed0); },
                          [&](std::uint64_t) { b_.allreduce_sum(packed.data(), k_); }}},
                        full);
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = xref_us(t, 2);
    if (c_.check) {
      std::vector<float> result = data.get();
      if (k_ > 0) spoil(result[last.start]);
      std::uint64_t wrong = 0;
      for (std::uint64_t i = 0; i < d_; ++i) {
        float want = pristine_h[i];
        // Inside the block the sum; with --nan, NaN where rank 0 put one: the block's first element,
        // and the dense input's d/2 when the block happens to cover it.
        if (last.contains(i))
          want = (c_.nan && (i == last.start || i == d_ / 2)) ? std::numeric_limits<float>::quiet_NaN()
                                                              : expected_sum(seed_, K_, i);
        wrong += same(result[i], want) ? 0 : 1;
      }
      row.wrong = sum_over_ranks(b_, wrong);
    }
    return row;
  }

  // This rank's pairs, and the wire block the MPI baseline gathers (k indices, then k values: the
  // same bytes sparcol's all-gather moves).
  void make_pairs() {
    sparse_indices(seed_, me_, d_, k_, idx_);
    sparse_values(seed_, me_, idx_, c_.nan, val_);
  }

  // Counts gathered pairs that differ from what rank r contributed; get(r) gives rank r's received
  // (indices, values) as host vectors.
  template <typename Get>
  std::uint64_t check_pairs(Get&& get) const {
    std::uint64_t wrong = 0;
    std::vector<Index> idx;
    std::vector<float> val;
    for (int r = 0; r < K_; ++r) {
      sparse_indices(seed_, r, d_, k_, idx);
      sparse_values(seed_, r, idx, c_.nan, val);
      const auto [gi, gv] = get(r);
      if (gi.size() != idx.size()) {
        wrong += std::max<std::uint64_t>(gi.size(), idx.size());
        continue;
      }
      for (std::size_t j = 0; j < idx.size(); ++j) wrong += (gi[j] == idx[j] && same(gv[j], val[j])) ? 0 : 1;
    }
    return wrong;
  }

  // The sparse all-gather, interleaved with the backend's all-gather-v of the same wire blocks; then
  // the optional dense sum, timed on its own (local work, no communication).
  Row sparse_allgather() {
    Row row = base_row(Op::kSparseAllgather, 8.0 * static_cast<double>(k_) * K_, allgather_factor());
    make_pairs();
    Mem<Index> idx(ex_, k_);
    Mem<float> val(ex_, k_);
    idx.set(idx_);
    val.set(val_);
    sparcol::coll::SparseAllgather sag(b_, d_, k_, sparcol::coll::SparseAllgather::Algorithm::kAuto, ex_);
    MpiGather plain(*this);
    FullAllreduce full(*this);
    const sparcol::SparseChunk pairs{{idx.data(), k_}, {val.data(), k_}};
    const auto t = timed_with_xref(
        {{nothing(), [&](std::uint64_t step) { sag.run(pairs, step); }}, plain.timed()}, full);
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = xref_us(t, 2);
    Mem<float> sum(ex_, d_);
    row.sum_us = time_interleaved(b_, c_, {{nothing(), [&](std::uint64_t) { sag.sum_into(sum.data()); }}})[0]
                     .stats.p50;
    if (c_.check) {
      std::uint64_t wrong = check_pairs([&](int r) {
        const sparcol::SparseChunk got = sag.chunk(r);
        return std::pair(idx.get_range(got.indices.data(), got.size()),
                         val.get_range(got.values.data(), got.size()));
      });
      // The dense sum: every rank's pairs added in rank order.
      std::vector<float> got = sum.get();
      spoil(got[d_ - 1]);
      std::vector<float> want(d_, 0.0f);
      std::vector<Index> pi;
      std::vector<float> pv;
      for (int r = 0; r < K_; ++r) {
        sparse_indices(seed_, r, d_, k_, pi);
        sparse_values(seed_, r, pi, c_.nan, pv);
        for (std::size_t j = 0; j < pi.size(); ++j) want[pi[j]] += pv[j];
      }
      for (std::uint64_t i = 0; i < d_; ++i) wrong += same(got[i], want[i]) ? 0 : 1;
      row.wrong = sum_over_ranks(b_, wrong);
    }
    return row;
  }

  Row mpi_allgatherv() {
    Row row = base_row(Op::kMpiAllgatherv, 8.0 * static_cast<double>(k_) * K_, allgather_factor());
    make_pairs();
    MpiGather plain(*this);
    FullAllreduce full(*this);
    const auto t = timed_with_xref({plain.timed()}, full);
    row.time = t[0].stats;
    row.base = row.time;
    row.allreduce_us = xref_us(t, 1);
    // A ring all-gather's bytes per rank: every block but the right neighbour's passes through.
    row.sent_bytes = 8 * k_ * static_cast<std::uint64_t>(K_ - 1);
    if (c_.check) row.wrong = sum_over_ranks(b_, plain.check());
    return row;
  }

  // ---- The 1-bit operations (issue 13): rank r's message is the scaled sign of its dense input.
  // Each is interleaved with the backend's XOR all-reduce of the same number of packed 64-bit words
  // (the same payload as a 1-bit all-reduce) and with the dense all-reduce (x-allred).
  struct SignInput {
    std::vector<std::uint32_t> words;
    float scale = 0.0f;
  };
  SignInput sign_input(int rank) const {
    std::vector<float> v(d_);
    for (std::uint64_t i = 0; i < d_; ++i) v[i] = input_value(seed_, rank, i);
    if (c_.nan && rank == 0) v[d_ / 2] = std::numeric_limits<float>::quiet_NaN();
    SignInput s;
    s.words.resize(sparcol::SignLayout::words_for(d_));
    sparcol::sign_pack({v.data(), d_}, s.words.data());
    s.scale = sparcol::sign_scale({v.data(), d_});
    return s;
  }
  // The XOR all-reduce of ceil(d / 64) words, reset from this rank's packed bits before each run.
  class BxorAllreduce {
   public:
    BxorAllreduce(const SizeBench& s, const SignInput& in)
        : s_(s), pristine_(sparcol::coll::SignLayout64::words_for(s.d_), 0), data_(pristine_.size()) {
      for (std::size_t i = 0; i < in.words.size(); ++i)
        pristine_[i / 2] |= static_cast<std::uint64_t>(in.words[i]) << (32 * (i % 2));
    }
    Timed timed() {
      return Timed{[this](std::uint64_t) { std::copy(pristine_.begin(), pristine_.end(), data_.begin()); },
                   [this](std::uint64_t) { s_.b_.allreduce_bxor(data_.data(), data_.size()); }};
    }

   private:
    const SizeBench& s_;
    std::vector<std::uint64_t> pristine_, data_;
  };
  Row sign_row(Op op, double payload, double factor) const {
    Row r = base_row(op, payload, factor);
    r.k = d_;
    r.density = 1.0;
    return r;
  }
  std::int64_t count_words(const std::vector<std::uint64_t>& got,
                           const std::vector<std::uint64_t>& want) const {
    std::uint64_t wrong = got.size() == want.size() ? 0 : std::max(got.size(), want.size());
    for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i) wrong += got[i] == want[i] ? 0 : 1;
    return static_cast<std::int64_t>(wrong);
  }

  // Marsit (coll/sign_ring_allreduce.hpp): checked against the host recomputation of the merge with
  // the same masks (every rank recomputes every rank's bits) and lambda against the mean of the scales.
  Row marsit() {
    Row row = sign_row(Op::kMarsit, static_cast<double>(d_) / 8.0, allreduce_factor());
    const SignInput mine = sign_input(me_);
    sparcol::coll::SignRingAllreduce ring(b_, d_);
    BxorAllreduce plain(*this, mine);
    FullAllreduce full(*this);
    std::uint64_t last = 0;
    const auto t =
        timed_with_xref({{nothing(),
                          [&](std::uint64_t step) {
                            last = step;
                            ring.run(sparcol::SignBits{d_, mine.words, mine.scale}, seed_, step, 0);
                          }},
                         plain.timed()},
                        full);
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = xref_us(t, 2);
    if (c_.check) {
      std::vector<std::vector<std::uint32_t>> all;
      float sum = 0.0f;
      for (int r = 0; r < K_; ++r) {
        SignInput in = sign_input(r);
        sum += in.scale;
        all.push_back(std::move(in.words));
      }
      const auto want = sparcol::coll::marsit_reference(all, d_, seed_, last, 0);
      std::vector<std::uint64_t> got(ring.merged().begin(), ring.merged().end());
      std::int64_t wrong = count_words(got, want);
      float lambda = ring.scale();
      spoil(lambda);
      wrong += same(lambda, sum / static_cast<float>(K_)) ? 0 : 1;
      row.wrong = sum_over_ranks(b_, static_cast<std::uint64_t>(wrong));
    }
    return row;
  }

  // The cascading baseline: checked against a host replay of every hop's decode, add and re-compress.
  Row sign_cascade() {
    Row row = sign_row(Op::kSignCascade, static_cast<double>(d_) / 8.0, allreduce_factor());
    std::vector<float> p;
    fill_dense(p);
    sparcol::coll::SignCascadeAllreduce cas(b_, d_);
    BxorAllreduce plain(*this, sign_input(me_));
    FullAllreduce full(*this);
    const auto t =
        timed_with_xref({{nothing(), [&](std::uint64_t step) { cas.run(p, step); }}, plain.timed()}, full);
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = xref_us(t, 2);
    if (c_.check) {
      std::vector<float> got(d_), want(d_);
      cas.decode_into(got);
      if (d_ > 0) spoil(got[0]);
      for (int c = 0; c < K_; ++c) {
        const std::uint64_t b0 = cas.chunk_begin(c), len = cas.chunk_size(c);
        std::vector<std::uint32_t> words(sparcol::SignLayout::words_for(len));
        std::vector<float> sum(len);
        float scale = 0.0f;
        for (int h = 0; h < K_; ++h) {
          const int r = (c + h) % K_;
          for (std::uint64_t j = 0; j < len; ++j) {
            float x = input_value(seed_, r, b0 + j);
            if (c_.nan && r == 0 && b0 + j == d_ / 2) x = std::numeric_limits<float>::quiet_NaN();
            sum[j] = h == 0 ? x : (sparcol::SignLayout::is_set(words.data(), j) ? scale : -scale) + x;
          }
          sparcol::sign_pack({sum.data(), len}, words.data());
          scale = sparcol::sign_scale({sum.data(), len});
        }
        for (std::uint64_t j = 0; j < len; ++j)
          want[b0 + j] =
              (sparcol::SignLayout::is_set(words.data(), j) ? scale : -scale) / static_cast<float>(K_);
      }
      std::uint64_t wrong = 0;
      for (std::uint64_t i = 0; i < d_; ++i) wrong += same(got[i], want[i]) ? 0 : 1;
      row.wrong = sum_over_ranks(b_, wrong);
    }
    return row;
  }

  // The sign all-gather (the one-hop baseline): every rank receives all K messages.
  Row sign_allgather() {
    const double msg = static_cast<double>(sparcol::SignBits::wire_bytes(d_));
    Row row = sign_row(Op::kSignAllgather, msg * K_, allgather_factor());
    const SignInput mine = sign_input(me_);
    sparcol::coll::SignAllgather sag(b_, d_);
    BxorAllreduce plain(*this, mine);
    FullAllreduce full(*this);
    const auto t = timed_with_xref({{nothing(),
                                     [&](std::uint64_t step) {
                                       sag.run(sparcol::SignBits{d_, mine.words, mine.scale}, step);
                                     }},
                                    plain.timed()},
                                   full);
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = xref_us(t, 2);
    if (c_.check) {
      std::uint64_t wrong = 0;
      for (int r = 0; r < K_; ++r) {
        const SignInput in = sign_input(r);
        const sparcol::SignBits got = sag.bits(r);
        float scale = got.scale;
        if (r == 0) spoil(scale);
        wrong += same(scale, in.scale) ? 0 : 1;
        for (std::size_t w = 0; w < in.words.size(); ++w) wrong += got.words[w] == in.words[w] ? 0 : 1;
      }
      row.wrong = sum_over_ranks(b_, wrong);
    }
    return row;
  }

  // The neighbour exchange on --topology (one block of d floats to every neighbour, a different one
  // each), interleaved with MPI's neighbourhood collective moving the same blocks on the same graph
  // (MPI_Dist_graph_create_adjacent + MPI_Neighbor_alltoallv); both results are checked exactly. The
  // payload is what this rank sends (degree blocks); there is no x-allred reference.
  Row neighbor() {
    auto* mpi = dynamic_cast<comm::MpiBackend*>(&b_);
    SPARCOL_CHECK_ARG(mpi != nullptr, me_, "--op neighbor needs --backend mpi");
    const auto g = topo::make_topology(c_.topology, K_, me_);
    topo::NeighborExchange nx(b_, g);
    const auto nb = nx.neighbors();
    const std::size_t deg = nb.size();
    Row row = base_row(Op::kNeighbor, 4.0 * static_cast<double>(d_) * static_cast<double>(deg), 1.0);
    row.k = d_;
    row.density = 1.0;
    // Block for the edge from -> to: input_value with a "rank" that names the edge.
    auto value = [&](int from, int to, std::uint64_t i) { return input_value(seed_, from * K_ + to, i); };
    std::vector<float> send(deg * d_), recv(deg * d_), ref(deg * d_);
    for (std::size_t k = 0; k < deg; ++k)
      for (std::uint64_t i = 0; i < d_; ++i) send[k * d_ + i] = value(me_, nb[k], i);
    if (c_.nan && me_ == 0 && d_ > 0) send[d_ / 2] = std::numeric_limits<float>::quiet_NaN();
    std::vector<topo::Edge> edges(deg);
    for (std::size_t k = 0; k < deg; ++k)
      edges[k] = topo::Edge{send.data() + k * d_, recv.data() + k * d_, d_ * sizeof(float)};
    const auto t = time_interleaved(
        b_, c_,
        {{nothing(), [&](std::uint64_t step) { nx.run(edges, step); }},
         {nothing(),
          [&](std::uint64_t) { mpi->neighbor_alltoall(nb, send.data(), ref.data(), d_ * sizeof(float)); }}});
    row.time = t[0].stats;
    row.sent_bytes = t[0].sent_per_run;
    row.base = t[1].stats;
    row.allreduce_us = std::numeric_limits<double>::quiet_NaN();
    if (c_.check) {
      if (!recv.empty()) spoil(recv[0]);
      std::uint64_t wrong = 0;
      for (std::size_t k = 0; k < deg; ++k) {
        // Neighbour nb[k]'s block for this rank; rank 0's first block to each neighbour carries the NaN.
        const int j = nb[k];
        for (std::uint64_t i = 0; i < d_; ++i) {
          float want = value(j, me_, i);
          if (c_.nan && j == 0 && i == d_ / 2 && g.index_of(0, me_) == 0)
            want = std::numeric_limits<float>::quiet_NaN();
          wrong += same(recv[k * d_ + i], want) ? 0 : 1;
          wrong += same(ref[k * d_ + i], want) ? 0 : 1;
        }
      }
      row.wrong = sum_over_ranks(b_, wrong);
    }
    return row;
  }

 private:
  // SPARCOL_BENCH_CORRUPT=1: the last rank changes one element of a result before it is checked, so
  // that a test can see the check count it and the exit status report it. c_.corrupt is set only in
  // the test build of the bench (sparcol-bench-test-hooks, hooks_on.cpp); never in the program itself.
  void spoil(float& x) const {
    if (c_.corrupt && me_ == K_ - 1) x += 1.0f;
  }

  static Timed::Fn nothing() {
    return [](std::uint64_t) {};
  }

  // The backend's all-reduce of this rank's whole dense input: each operation is timed interleaved
  // with it, so that every row's x-allred is measured under the same conditions as its time.
  class FullAllreduce {
   public:
    explicit FullAllreduce(const SizeBench& s) : s_(s), pristine_(s.dense_input()), data_(s.ex_, s.d_) {}
    Timed timed() {
      return Timed{[this](std::uint64_t) { data_.copy_from(pristine_); },
                   [this](std::uint64_t) { s_.b_.allreduce_sum(data_.data(), s_.d_); }};
    }
    Mem<float>& result() { return data_; }

   private:
    const SizeBench& s_;
    Mem<float> pristine_, data_;
  };

  // The operations timed interleaved, with the whole-vector all-reduce (x-allred) after them unless
  // --no-xref.
  std::vector<Timing> timed_with_xref(std::initializer_list<Timed> ops, FullAllreduce& full) const {
    std::vector<Timed> all;
    all.reserve(ops.size() + 1);
    all.insert(all.end(), ops.begin(), ops.end());
    if (c_.xref) all.push_back(full.timed());
    return time_interleaved(b_, c_, all);
  }
  // x-allred's median, or NaN (shown as N/A) without it.
  double xref_us(const std::vector<Timing>& t, std::size_t i) const {
    return c_.xref ? t.at(i).stats.p50 : std::numeric_limits<double>::quiet_NaN();
  }

  // The backend's all-gather-v (MPI_Allgatherv, or broadcasts with NCCL) of every rank's wire block:
  // k indices then k values, the bytes sparcol's all-gather moves.
  class MpiGather {
   public:
    explicit MpiGather(const SizeBench& s)
        : s_(s),
          block_(s.ex_, s.k_ * sparcol::kPairBytes),
          bytes_(static_cast<std::size_t>(s.K_), s.k_ * sparcol::kPairBytes),
          all_(s.ex_, s.k_ * sparcol::kPairBytes * static_cast<std::size_t>(s.K_)) {
      if (s.k_ > 0) {
        std::vector<std::byte> h(s.k_ * sparcol::kPairBytes);
        std::memcpy(h.data(), s.idx_.data(), s.k_ * sizeof(Index));
        std::memcpy(h.data() + s.k_ * sizeof(Index), s.val_.data(), s.k_ * sizeof(float));
        block_.set(h);
      }
    }
    Timed timed() {
      return Timed{nothing(),
                   [this](std::uint64_t) { s_.b_.allgatherv(block_.data(), all_.data(), bytes_); }};
    }
    std::uint64_t check() {
      std::vector<std::byte> all = all_.get();
      if (s_.k_ > 0) {
        // Rank 0's first gathered value is the one spoiled (SPARCOL_BENCH_CORRUPT).
        float v0;
        std::memcpy(&v0, all.data() + s_.k_ * sizeof(Index), sizeof v0);
        s_.spoil(v0);
        std::memcpy(all.data() + s_.k_ * sizeof(Index), &v0, sizeof v0);
      }
      const std::size_t block = s_.k_ * sparcol::kPairBytes;
      return s_.check_pairs([&](int r) {
        const std::byte* p = all.data() + static_cast<std::size_t>(r) * block;
        std::vector<Index> gi(s_.k_);
        std::vector<float> gv(s_.k_);
        if (s_.k_ > 0) {
          std::memcpy(gi.data(), p, s_.k_ * sizeof(Index));
          std::memcpy(gv.data(), p + s_.k_ * sizeof(Index), s_.k_ * sizeof(float));
        }
        return std::pair(gi, gv);
      });
    }

   private:
    const SizeBench& s_;
    Mem<std::byte> block_;
    std::vector<std::size_t> bytes_;
    Mem<std::byte> all_;
  };

  // A bandwidth-optimal (ring) all-reduce's bytes per rank: 2 (K-1)/K of the vector.
  std::uint64_t ring_allreduce_bytes(std::uint64_t d) const {
    return 2 * d * sizeof(float) * static_cast<std::uint64_t>(K_ - 1) / static_cast<std::uint64_t>(K_);
  }

  Backend& b_;
  const Config& c_;
  sparcol::device::Exec* ex_;  // nullptr: host memory
  std::uint64_t seed_, bytes_, d_, k_;
  int K_, me_;
  std::vector<Index> idx_;
  std::vector<float> val_;
};

}  // namespace

std::int64_t run_bench(Backend& b, const Config& c, const Setup& setup, io::BenchTable* out,
                       device::Exec* ex) {
  if (out) out->header();
  std::int64_t wrong = c.check ? 0 : -1;
  for (const std::uint64_t bytes : sweep(c)) {
    SizeBench sb(b, c, setup.seed, bytes, ex);
    for (Op op : c.ops) {
      Row r;
      switch (op) {
        case Op::kDenseRing:
          r = sb.dense_ring();
          break;
        case Op::kRbgs:
          r = sb.rbgs();
          break;
        case Op::kSparseAllgather:
          r = sb.sparse_allgather();
          break;
        case Op::kMpiAllreduce:
          r = sb.mpi_allreduce();
          break;
        case Op::kMpiAllgatherv:
          r = sb.mpi_allgatherv();
          break;
        case Op::kMarsit:
          r = sb.marsit();
          break;
        case Op::kSignCascade:
          r = sb.sign_cascade();
          break;
        case Op::kSignAllgather:
          r = sb.sign_allgather();
          break;
        case Op::kNeighbor:
          r = sb.neighbor();
          break;
      }
      if (r.wrong > 0) wrong += r.wrong;
      if (out) out->row(table_row(r));
    }
  }
  if (out) wrong = out->finish();
  return wrong;
}

}  // namespace sparcol::bench
