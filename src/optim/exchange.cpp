#include "sparcol/optim/exchange.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <string>

#include "sparcol/coll/agree.hpp"
#include "sparcol/compress/topk.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/payload.hpp"
#include "sparcol/core/prefetch.hpp"

namespace sparcol::optim {

namespace ops = device::dispatch;

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool has_kernel(const std::string& name) {
  return name == "none" || name == "topk" || name == "topk-sampled" || name == "rbgs";
}
}  // namespace

void CommStats::add(const CommStats& o) {
  elements_up += o.elements_up;
  elements_up_all += o.elements_up_all;
  elements_down += o.elements_down;
  bytes_up += o.bytes_up;
  bytes_down += o.bytes_down;
  bytes_sent += o.bytes_sent;
  bytes_recv += o.bytes_recv;
  bytes_sent_down += o.bytes_sent_down;
  dense_elements += o.dense_elements;
  time_compress_s += o.time_compress_s;
  time_comm_s += o.time_comm_s;
  rounds += o.rounds;
}

Aggregate::Aggregate(device::Exec& exec, std::uint64_t n, const char* what) : values_(exec, n, what) {
  dense_ = exec.on_device();
}

void apply_aggregate(device::Exec& exec, float* x, const Aggregate& agg, float eta) {
  if (agg.dense()) {
    ops::apply_update(exec, x, agg.data(), eta, 0.0f, agg.size());
  } else {
    ops::sparse_apply_update(exec, x, agg.data(), agg.support().data(), agg.support().size(), eta);
  }
}

std::string unsupported_on_device(const Layout& layout, const ExchangeConfig& config) {
  const std::string& name = config.compressor.name;
  if (!has_kernel(name))
    return "compressor '" + name +
           "' has no GPU kernel (on a device executor: none, rbgs, topk, topk-sampled)";
  if (name == "none") return {};
  if (config.layerwise) return "layer-wise compression runs on the host executor only (use flat compression)";
  for (const auto& t : layout.tensors) {
    if (t.size == 0) continue;
    if (t.size < config.min_compress_size || (config.compress_only_matrices && t.dims <= 1))
      return "tensor '" + t.name +
             "' would be all-reduced densely (min_compress_size / compress_only_matrices), " +
             "which runs on the host executor only: on a device executor every tensor is compressed";
  }
  return {};
}

Exchange::Exchange(comm::Backend& backend, const Layout& layout, ExchangeConfig config, device::Exec& exec)
    : backend_(backend), config_(std::move(config)), exec_(exec) {
  const int me = backend_.rank();
  layout.validate();
  compressor_ = compress::make_compressor(config_.compressor);
  kind_ = compressor_->aggregation();
  const std::string& name = config_.compressor.name;
  // On the host, top-k and sampled top-k run the host compressors (compress/topk.hpp: a cache-blocked
  // radix select several times faster on a CPU than the kernels' algorithm); their result is the
  // kernels' (and twins') bit for bit: the same set, ties to the smaller index, ascending.
  const bool dev = exec_.on_device();
  path_ = name == "none"                  ? Path::kDense
          : name == "rbgs"                ? Path::kBlock
          : dev && name == "topk"         ? Path::kTopk
          : dev && name == "topk-sampled" ? Path::kTopkSampled
                                          : Path::kHost;
  track_ = !dev && config_.track_support;
  // Threshold compressors select a data-dependent number of pairs; the others exactly k per group.
  variable_count_ = name == "topk-sampled" || name == "sidco";
  n_ = layout.total();
  SPARCOL_CHECK_ARG(
      n_ <= kMaxElements, me,
      "exchange: " + std::to_string(n_) + " parameters exceed the 2^32-1 supported by uint32 indices");
  SPARCOL_CHECK_ARG(
      backend_.accepts(exec_.kind()), me,
      "backend " + backend_.name() + " does not move " + (exec_.on_device() ? "device" : "host") + " memory");
  if (exec_.on_device()) {
    const std::string why = unsupported_on_device(layout, config_);
    SPARCOL_CHECK_ARG(why.empty(), me, "exchange on a device executor: " + why);
  }
  build_groups(layout);
  set_density(config_.compressor.density);
  device::Exec* coll_exec = exec_.on_device() ? &exec_ : nullptr;
  if (kind_ == compress::Aggregation::kSparse) {
    sparse_ = std::make_unique<coll::SparseAllgather>(backend_, n_, total_k(),
                                                      coll::SparseAllgather::Algorithm::kAuto, coll_exec);
    if (track_) marks_.assign((n_ + 63) / 64, 0);
  }
  if (kind_ == compress::Aggregation::kSign) {
    for (const auto& g : groups_) {
      switch (config_.sign_reduce) {
        case ExchangeConfig::SignReduce::kAllgather:
          signs_.push_back(std::make_unique<coll::SignAllgather>(backend_, g.n));
          break;
        case ExchangeConfig::SignReduce::kMarsit:
          marsit_.push_back(std::make_unique<coll::SignRingAllreduce>(backend_, g.n));
          break;
        case ExchangeConfig::SignReduce::kCascade:
          cascade_.push_back(std::make_unique<coll::SignCascadeAllreduce>(backend_, g.n));
          break;
      }
    }
  } else {
    SPARCOL_CHECK_ARG(
        config_.sign_reduce == ExchangeConfig::SignReduce::kAllgather, me,
        "exchange: a sign ring all-reduce (Marsit or the cascade) needs the compressor 'sign', not '" +
            config_.compressor.name + "'");
  }
}

Exchange::~Exchange() = default;

void Exchange::build_groups(const Layout& layout) {
  const bool all_dense = kind_ == compress::Aggregation::kDense;
  Group flat;
  for (std::size_t i = 0; i < layout.tensors.size(); ++i) {
    const TensorSpec& t = layout.tensors[i];
    if (t.size == 0) continue;
    const bool dense =
        all_dense || t.size < config_.min_compress_size || (config_.compress_only_matrices && t.dims <= 1);
    if (dense) {
      if (!dense_.empty() && dense_.back().offset + dense_.back().size == t.offset) {
        dense_.back().size += t.size;
      } else {
        dense_.push_back({t.offset, t.size});
      }
      dense_count_ += t.size;
      continue;
    }
    if (config_.layerwise) {
      Group g;
      g.segments.push_back({t.offset, t.size});
      g.n = t.size;
      g.id = static_cast<std::uint32_t>(i);
      groups_.push_back(std::move(g));
    } else {
      if (!flat.segments.empty() && flat.segments.back().offset + flat.segments.back().size == t.offset) {
        flat.segments.back().size += t.size;
      } else {
        flat.segments.push_back({t.offset, t.size});
      }
      flat.n += t.size;
    }
  }
  if (!config_.layerwise && flat.n > 0) groups_.push_back(std::move(flat));
  for (auto& g : groups_) g.id += config_.stream;
  std::uint64_t widest = 0;
  for (const auto& g : groups_)
    if (g.segments.size() > 1) widest = std::max(widest, g.n);
  if (widest > 0) gather_.assign(exec_, widest, "exchange gather");
}

void Exchange::set_density(double rho) {
  SPARCOL_CHECK_ARG(rho > 0 && rho <= 1 && std::isfinite(rho), backend_.rank(),
                    "density must be in (0, 1], got " + std::to_string(rho));
  config_.compressor.density = rho;
  if (compressor_) {
    auto cfg = config_.compressor;
    compressor_ = compress::make_compressor(cfg);
  }
  for (auto& g : groups_) {
    if (kind_ == compress::Aggregation::kSign) {
      g.k = g.n;
    } else if (config_.layerwise) {
      // ALGORITHMS.md 0.1: k_l = max(1, ceil(rho * n_l)).
      g.k = std::min<std::uint64_t>(
          g.n,
          std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(rho * static_cast<double>(g.n)))));
    } else {
      g.k = compressor_->target_k(g.n);
    }
  }
  std::uint64_t packed = dense_count_;
  if (kind_ == compress::Aggregation::kShared) packed += total_k();
  if (packed_.size() != packed) packed_.assign(exec_, packed, "exchange packed values");
  ring_.reset();
  if (packed > 0) {
    ring_ = std::make_unique<coll::RingAllreduce>(backend_, packed, coll::RingAllreduce::kDefaultPieceBytes,
                                                  coll::RingAllreduce::Algorithm::kAuto,
                                                  exec_.on_device() ? &exec_ : nullptr);
  }
  if (kind_ == compress::Aggregation::kSparse) reserve_pairs(total_k());
}

void Exchange::reserve_pairs(std::uint64_t pairs) {
  if (pair_idx_.size() >= pairs) return;
  // Keeps the pairs already written (a host compressor's groups are appended one by one).
  device::Buffer<Index> idx(exec_, pairs, "exchange pair indices");
  device::Buffer<float> val(exec_, pairs, "exchange pair values");
  if (pairs_ > 0) {
    exec_.copy(idx.data(), pair_idx_.data(), pairs_ * sizeof(Index));
    exec_.copy(val.data(), pair_val_.data(), pairs_ * sizeof(float));
  }
  pair_idx_ = std::move(idx);
  pair_val_ = std::move(val);
}

std::uint64_t Exchange::total_k() const {
  std::uint64_t k = 0;
  for (const auto& g : groups_) k += g.k;
  return k;
}

std::uint64_t Exchange::to_global(const Group& g, std::uint64_t local) const {
  for (const auto& s : g.segments) {
    if (local < s.size) return s.offset + local;
    local -= s.size;
  }
  throw Error(ErrorCode::kInternal, backend_.rank(), "exchange: local index beyond its group");
}

float* Exchange::group_view(Group& g, std::span<float> v, bool gather) {
  if (g.segments.size() == 1) return v.data() + g.segments[0].offset;
  if (gather) {
    std::size_t pos = 0;
    for (const auto& s : g.segments) {
      exec_.copy(gather_.data() + pos, v.data() + s.offset, s.size * sizeof(float));
      pos += s.size;
    }
  }
  return gather_.data();
}

void Exchange::scatter_group(const Group& g, const float* from, std::span<float> v) {
  if (g.segments.size() == 1 && from == v.data() + g.segments[0].offset) return;  // already in place
  std::size_t pos = 0;
  for (const auto& s : g.segments) {
    exec_.copy(v.data() + s.offset, from + pos, s.size * sizeof(float));
    pos += s.size;
  }
}

Verdict Exchange::begin(std::uint64_t step, bool local_nonfinite) {
  const auto& locals = coll::agree(backend_,
                                   coll::CallSignature{coll::CollOp::kExchange, n_, total_k(), config_.seed,
                                                       step, static_cast<std::uint64_t>(groups_.size()), 0},
                                   coll::RankLocal{0, local_nonfinite ? coll::kFlagNonFinite : 0},
                                   /*need_locals=*/true, agree_);
  Verdict verdict;
  for (std::size_t r = 0; r < locals.size(); ++r) {
    if (locals[r].flags & coll::kFlagNonFinite) verdict.bad_ranks.push_back(static_cast<int>(r));
  }
  verdict.skip = !verdict.bad_ranks.empty();
  if (verdict.skip) fused_armed_ = false;
  step_ = step;
  begun_ = !verdict.skip;
  return verdict;
}

// Compresses one group's view in place (v <- v - C(v)) and stages what it sends: sparse pairs at
// `pairs` in pair_idx_/pair_val_ (group-local indices), shared values at packed_pos in packed_.
// Returns the number of pairs written.
std::uint64_t Exchange::compress_group(Group& g, float* view, std::uint64_t pairs,
                                       std::uint64_t& packed_pos) {
  switch (path_) {
    case Path::kDense:
      return 0;  // no compressed groups
    case Path::kTopk:
    case Path::kTopkSampled: {
      std::uint64_t count = g.k;
      Index* idx = pair_idx_.data() + pairs;
      float* val = pair_val_.data() + pairs;
      bool exact = true;
      if (path_ == Path::kTopkSampled) {
        const compress::DgcSamplePlan p =
            compress::dgc_sample_plan(g.n, g.k, config_.compressor.sample_ratio);
        if (g.k < g.n && p.stride > 1) {
          const device::SamplePlan plan{
              p.stride, compress::dgc_sample_offset(p.stride, config_.seed, step_, g.id), p.top_samples};
          count = ops::topk_sampled(exec_, view, g.n, g.k, plan, idx, val).count;
          exact = false;
        }
        // Otherwise the "sample" would be all of v: the exact top-k, as the compressor does.
      }
      if (exact) ops::topk(exec_, view, g.n, g.k, idx, val);
      ops::scatter_zero(exec_, view, g.n, idx, count);  // sent coordinates become exactly 0
      return count;
    }
    case Path::kBlock: {
      g.block = sparcol::rbgs_block(g.n, g.k, config_.seed, step_, g.id);
      ops::rbgs_extract(exec_, view, g.block, packed_.data() + packed_pos);
      packed_pos += g.k;
      return 0;
    }
    case Path::kHost: {
      // Host memory only (checked when the Exchange was built).
      std::span<float> v(view, g.n);
      compress::Context ctx{config_.seed, step_, g.id, static_cast<std::uint32_t>(backend_.rank()), g.k};
      bool fused = false;
      if (fused_armed_) {
        // The method's message pass fed the selector (arm_fused): the same selection as compress().
        fused_armed_ = false;
        g.msg.reset(compress::Aggregation::kSparse, g.n);
        fused = fused_sel_.fused_finish(g.k, g.msg.indices, g.msg.values);
      }
      if (!fused) compressor_->compress(v, ctx, g.msg);
      if (config_.sign_reduce == ExchangeConfig::SignReduce::kCascade) g.raw.assign(v.begin(), v.end());
      compress::subtract_decompressed(g.msg, v);
      if (kind_ == compress::Aggregation::kShared) {
        std::copy(g.msg.values.begin(), g.msg.values.end(), packed_.data() + packed_pos);
        packed_pos += g.msg.values.size();
      }
      if (kind_ != compress::Aggregation::kSparse) return 0;
      const std::uint64_t count = g.msg.indices.size();
      reserve_pairs(pairs + count);
      std::copy(g.msg.indices.begin(), g.msg.indices.end(), pair_idx_.data() + pairs);
      std::copy(g.msg.values.begin(), g.msg.values.end(), pair_val_.data() + pairs);
      return count;
    }
  }
  return 0;
}

void Exchange::clear(Aggregate& agg) const {
  if (agg.dense_) {
    exec_.zero(agg.data(), agg.size() * sizeof(float));
  } else {
    ops::scatter_zero(exec_, agg.data(), agg.size(), agg.support_.data(), agg.support_.size());
  }
  agg.support_.clear();
  agg.support_values_.clear();
  agg.sorted_ = false;
}

compress::TopkSelector* Exchange::fused_selector() {
  const bool flat_topk = !exec_.on_device() && path_ == Path::kHost && config_.compressor.name == "topk" &&
                         dense_.empty() && groups_.size() == 1 && groups_[0].segments.size() == 1 &&
                         groups_[0].segments[0].offset == 0 && groups_[0].n == n_;
  return flat_topk ? &fused_sel_ : nullptr;
}

std::uint64_t Exchange::fused_k() const {
  return groups_.empty() ? 0 : groups_[0].k;
}

// The tracked sparse mean by merging (host executor, at most kMaxMergeRanks ranks, every rank's
// indices ascending): for each index in ascending order, +0 plus the ranks' values in rank order,
// divided by K once: bit for bit sum_pairs_tracked, with sequential reads. The previous support is
// cleared in the same ascending walk that writes the new values when it is sorted too. Returns false
// (nothing changed) when the merge does not apply.
bool Exchange::merge_pairs_sorted(Aggregate& agg, float divisor, std::uint64_t& nnz) {
  const int K = sparse_->ranks();
  if (K > kMaxMergeRanks) return false;
  std::array<const Index*, kMaxMergeRanks> idx{};
  std::array<const float*, kMaxMergeRanks> val{};
  std::array<std::size_t, kMaxMergeRanks> pos{}, end{};
  std::size_t total = 0;
  for (int r = 0; r < K; ++r) {
    const SparseChunk c = sparse_->chunk(r);
    for (std::size_t j = 1; j < c.size(); ++j)
      if (c.indices[j] <= c.indices[j - 1])
        return false;  // not ascending: the random-access sum orders itself
    idx[r] = c.indices.data();
    val[r] = c.values.data();
    end[r] = c.size();
    total += c.size();
  }
  float* out = agg.data();
  const bool old_sorted = !agg.dense_ && agg.sorted_;
  if (agg.dense_) {
    exec_.zero(out, agg.size() * sizeof(float));
    agg.support_.clear();
  } else if (!old_sorted) {
    ops::scatter_zero(exec_, out, agg.size(), agg.support_.data(), agg.support_.size());
    agg.support_.clear();
  }
  old_support_.swap(agg.support_);  // sorted or empty
  auto& support = agg.support_;
  auto& values = agg.support_values_;
  support.clear();
  values.clear();
  support.reserve(total);
  values.reserve(total);
  constexpr Index kNone = ~Index{0};  // above every index (n <= 2^32 - 1)
  nnz = 0;
  std::size_t o = 0;  // the walk over the previous support
  const std::size_t old_n = old_support_.size();
  for (;;) {
    Index i = kNone;
    for (int r = 0; r < K; ++r)
      if (pos[r] < end[r]) i = std::min(i, idx[r][pos[r]]);
    if (i == kNone) break;
    float sum = 0.0f;
    for (int r = 0; r < K; ++r) {
      if (pos[r] < end[r] && idx[r][pos[r]] == i) {
        if (pos[r] + kPrefetchDistance < end[r]) prefetch_for_write(out + idx[r][pos[r] + kPrefetchDistance]);
        sum += val[r][pos[r]++];
      }
    }
    sum /= divisor;
    for (; o < old_n && old_support_[o] < i; ++o) {
      if (o + kPrefetchDistance < old_n) prefetch_for_write(out + old_support_[o + kPrefetchDistance]);
      out[old_support_[o]] = 0.0f;
    }
    if (o < old_n && old_support_[o] == i) ++o;
    out[i] = sum;
    support.push_back(i);
    values.push_back(sum);
    nnz += sum != 0.0f;
  }
  for (; o < old_n; ++o) out[old_support_[o]] = 0.0f;
  old_support_.clear();
  agg.sorted_ = true;
  return true;
}

// The tracked sparse mean (host executor): agg is +0 at every gathered index; the pairs are added
// in rank order, and within a rank in the order it sent them, starting from +0 (as
// SparseAllgather::accumulate_into does), then every distinct index is divided by K once.
void Exchange::sum_pairs_tracked(Aggregate& agg, float divisor, std::uint64_t& nnz) {
  float* out = agg.data();
  auto& support = agg.support_;
  for (int r = 0; r < sparse_->ranks(); ++r) {
    const SparseChunk c = sparse_->chunk(r);
    for (std::size_t j = 0; j < c.size(); ++j) {
      if (j + kPrefetchDistance < c.size()) prefetch_for_write(out + c.indices[j + kPrefetchDistance]);
      const Index i = c.indices[j];
      std::uint64_t& word = marks_[i >> 6];
      const std::uint64_t bit = std::uint64_t{1} << (i & 63);
      if ((word & bit) == 0) {
        word |= bit;
        support.push_back(i);
      }
      out[i] += c.values[j];
    }
  }
  nnz = 0;
  for (Index i : support) {
    out[i] /= divisor;
    nnz += out[i] != 0.0f;
    marks_[i >> 6] = 0;  // every bit of the word belongs to the support: clearing it whole is exact
  }
}

CommStats Exchange::finish(std::span<float> v, Aggregate& agg) {
  const int me = backend_.rank();
  const auto K = static_cast<std::uint64_t>(backend_.size());
  SPARCOL_CHECK(begun_, ErrorCode::kInternal, me, "exchange: finish() without a successful begin()");
  begun_ = false;
  SPARCOL_CHECK_ARG(v.size() == n_ && agg.size() == n_, me,
                    "exchange: vectors of " + std::to_string(v.size()) + " and " +
                        std::to_string(agg.size()) + " elements for a layout of " + std::to_string(n_));
  CommStats st;
  const auto t0 = Clock::now();

  // 1-2. Compress each group and keep the compression error in v.
  std::uint64_t packed_pos = 0;
  pairs_ = 0;
  for (auto& g : groups_) {
    float* view = group_view(g, v, /*gather=*/true);
    const std::uint64_t count = compress_group(g, view, pairs_, packed_pos);
    g.pair_begin = pairs_;
    g.pair_count = count;
    if (count > 0 && (g.segments.size() > 1 || g.segments[0].offset != 0)) {
      // Group-local indices to global ones (host memory: groups that need it run on the host only).
      Index* idx = pair_idx_.data() + pairs_;
      for (std::uint64_t j = 0; j < count; ++j) idx[j] = static_cast<Index>(to_global(g, idx[j]));
    }
    pairs_ += count;
    scatter_group(g, view, v);
    switch (path_) {
      case Path::kTopk:
      case Path::kTopkSampled:
        st.elements_up += 2.0 * static_cast<double>(count);
        st.bytes_up += kPairBytes * count;
        break;
      case Path::kBlock:
        st.elements_up += static_cast<double>(g.k);
        st.bytes_up += 4 * g.k;
        break;
      default:
        st.elements_up += g.msg.wire_elements();
        st.bytes_up += g.msg.wire_bytes();
        break;
    }
  }
  for (const auto& s : dense_) {
    exec_.copy(packed_.data() + packed_pos, v.data() + s.offset, s.size * sizeof(float));
    exec_.zero(v.data() + s.offset, s.size * sizeof(float));
    packed_pos += s.size;
  }
  st.elements_up += static_cast<double>(dense_count_);
  st.bytes_up += 4 * dense_count_;
  st.time_compress_s = seconds_since(t0);
  const auto t1 = Clock::now();

  // 3. Aggregate into agg, which is +0 everywhere once cleared (the merged sparse sum clears the
  // previous support itself).
  const bool merge_later = kind_ == compress::Aggregation::kSparse && track_;
  if (!merge_later) clear(agg);
  const bool tracked = track_ && dense_.empty() && kind_ != compress::Aggregation::kDense &&
                       kind_ != compress::Aggregation::kSign;
  float* out = agg.data();
  const float kf = static_cast<float>(K);
  auto divide_dense_into_agg = [&](std::uint64_t from) {
    for (const auto& s : dense_) {
      ops::rbgs_unpack(exec_, packed_.data() + from, sparcol::Block{s.size, 0, s.size}, kf, out + s.offset,
                       true);
      from += s.size;
    }
  };
  if (ring_) {
    ring_->run_unchecked(packed_.data());
    st.bytes_sent += ring_->bytes_sent_per_run();
    st.bytes_recv += ring_->bytes_sent_per_run();
  }
  switch (kind_) {
    case compress::Aggregation::kDense: {
      divide_dense_into_agg(0);
      st.elements_up_all = static_cast<double>(K) * st.elements_up;
      st.elements_down = static_cast<double>(n_);
      break;
    }
    case compress::Aggregation::kShared: {
      std::uint64_t pos = 0;
      for (auto& g : groups_) {
        const std::uint64_t count = path_ == Path::kBlock ? g.k : g.msg.values.size();
        const float* packed = packed_.data() + pos;
        if (path_ == Path::kBlock && g.segments.size() == 1) {
          const std::uint64_t offset = g.segments[0].offset;
          ops::rbgs_unpack(exec_, packed, g.block, kf, out + offset, /*zero_outside=*/false);
          if (tracked)
            for (std::uint64_t p = 0; p < count; ++p)
              agg.support_.push_back(static_cast<Index>(offset + g.block.element(p)));
        } else {
          // Host memory: a block across several segments, or the shared indices of randk-shared.
          for (std::uint64_t p = 0; p < count; ++p) {
            const std::uint64_t local = path_ == Path::kBlock ? g.block.element(p) : g.msg.indices[p];
            const std::uint64_t i = to_global(g, local);
            out[i] = packed[p] / kf;
            if (tracked) agg.support_.push_back(static_cast<Index>(i));
          }
        }
        pos += count;
      }
      divide_dense_into_agg(pos);
      if (tracked && groups_.size() == 1 && path_ == Path::kBlock && groups_[0].segments.size() == 1 &&
          groups_[0].block.wrap_len() == 0) {
        // One block that does not wrap: its support is ascending.
        for (Index i : agg.support_) agg.support_values_.push_back(out[i]);
        agg.sorted_ = true;
      }
      st.elements_up_all = static_cast<double>(K) * st.elements_up;
      st.elements_down = static_cast<double>(total_k() + dense_count_);
      break;
    }
    case compress::Aggregation::kSparse: {
      auto& counts = counts_;
      counts.assign(K, total_k());  // capacity kept: no allocation after the first step
      if (variable_count_) {
        auto& all = all_counts_;
        all.resize(K);
        const std::uint64_t mine = pairs_;
        coll::allgather_small(backend_.control(), &mine, sizeof mine, all.data(), comm::kTagFingerprint);
        for (std::size_t r = 0; r < K; ++r) counts[r] = all[r];
      }
      sparse_->run_agreed(SparseChunk{{pair_idx_.data(), pairs_}, {pair_val_.data(), pairs_}}, counts);
      st.bytes_sent += sparse_->last_bytes_sent();
      st.bytes_recv += sparse_->last_bytes_recv();
      std::uint64_t nnz = 0;
      if (track_) {
        // Host memory (dense segments, if any, are written below and make the aggregate dense).
        if (!merge_pairs_sorted(agg, kf, nnz)) {
          clear(agg);
          sum_pairs_tracked(agg, kf, nnz);
        }
        if (!tracked) {
          agg.support_.clear();
          agg.support_values_.clear();
          agg.sorted_ = false;
        }
      } else {
        sparse_->sum_into(out, kf);  // the whole vector: 0 where no pair points
        nnz = ops::count_nonzero(exec_, out, n_);
      }
      divide_dense_into_agg(0);
      std::uint64_t pairs_all = 0;
      for (auto c : counts) pairs_all += c;
      st.elements_up_all = 2.0 * static_cast<double>(pairs_all) + static_cast<double>(K * dense_count_);
      st.elements_down = 2.0 * static_cast<double>(nnz) + static_cast<double>(dense_count_);
      break;
    }
    case compress::Aggregation::kSign: {
      // Host memory only (sign has no device path).
      double down = 0;
      std::uint64_t down_bytes = 0;
      for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
        auto& g = groups_[gi];
        float* view = group_view(g, agg.values(), /*gather=*/false);
        switch (config_.sign_reduce) {
          case ExchangeConfig::SignReduce::kAllgather: {
            auto& sag = *signs_[gi];
            sag.run_agreed(g.msg.sign());
            st.bytes_sent += sag.last_bytes_sent();
            st.bytes_recv += sag.last_bytes_recv();
            if (config_.compressor.sign_majority) {
              sag.majority_into({view, g.n});
            } else {
              sag.mean_into({view, g.n});
            }
            down += static_cast<double>(K) * g.msg.wire_elements();
            down_bytes += K * g.msg.wire_bytes();
            break;
          }
          case ExchangeConfig::SignReduce::kMarsit: {
            // One merged sign vector and lambda come back: what a server would broadcast.
            auto& ring = *marsit_[gi];
            ring.run_agreed(g.msg.sign(), config_.seed, step_, g.id);
            st.bytes_sent += ring.last_bytes_sent();
            st.bytes_recv += ring.last_bytes_recv();
            ring.decode_into({view, g.n});
            down += g.msg.wire_elements();
            down_bytes += g.msg.wire_bytes();
            break;
          }
          case ExchangeConfig::SignReduce::kCascade: {
            // K chunk messages of bits + scale: n/32 + K elements.
            auto& cas = *cascade_[gi];
            cas.run_agreed(g.raw);
            st.bytes_sent += cas.last_bytes_sent();
            st.bytes_recv += cas.last_bytes_recv();
            cas.decode_into({view, g.n});
            for (int c = 0; c < backend_.size(); ++c) {
              down += sparcol::SignBits::wire_elements(cas.chunk_size(c));
              down_bytes += sparcol::SignBits::wire_bytes(cas.chunk_size(c));
            }
            break;
          }
        }
        scatter_group(g, view, agg.values());
      }
      st.bytes_down = down_bytes + 4 * dense_count_;
      divide_dense_into_agg(0);
      st.elements_up_all = static_cast<double>(K) * st.elements_up;
      st.elements_down = down + static_cast<double>(dense_count_);
      break;
    }
  }
  agg.dense_ = !tracked;
  // Bytes down: 4 per element (sign messages counted above, their bits pack 32 to a word).
  if (kind_ != compress::Aggregation::kSign) st.bytes_down = static_cast<std::uint64_t>(st.elements_down) * 4;
  st.dense_elements = static_cast<double>((K + 1) * n_);
  st.rounds = 1;
  exec_.synchronize();
  st.time_comm_s = seconds_since(t1);
  return st;
}

void Exchange::zero_sent(std::span<float> u) {
  if (kind_ == compress::Aggregation::kDense) {
    // Compressor "none": the identity sends every coordinate (DGC with masking degenerates to DSGD).
    exec_.zero(u.data(), u.size() * sizeof(float));
    return;
  }
  for (auto& g : groups_) {
    switch (path_) {
      case Path::kTopk:
      case Path::kTopkSampled:
        ops::scatter_zero(exec_, u.data(), n_, pair_idx_.data() + g.pair_begin, g.pair_count);
        break;
      case Path::kBlock:
        if (g.segments.size() == 1) {
          auto* scratch = static_cast<float*>(exec_.scratch(g.k * sizeof(float)));
          ops::rbgs_extract(exec_, u.data() + g.segments[0].offset, g.block, scratch);
        } else {
          for (std::uint64_t p = 0; p < g.block.length; ++p) u[to_global(g, g.block.element(p))] = 0.0f;
        }
        break;
      default:
        compress::for_each_support_range(g.msg, [&](std::uint64_t b, std::uint64_t e) {
          for (std::uint64_t i = b; i < e; ++i) u[to_global(g, i)] = 0.0f;
        });
        break;
    }
  }
  exec_.synchronize();
}

}  // namespace sparcol::optim
