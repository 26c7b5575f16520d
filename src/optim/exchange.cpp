#include "sparcol/optim/exchange.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "sparcol/coll/agree.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::optim {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

void CommStats::add(const CommStats& o) {
  elements_up += o.elements_up;
  elements_up_all += o.elements_up_all;
  elements_down += o.elements_down;
  bytes_up += o.bytes_up;
  bytes_down += o.bytes_down;
  bytes_sent += o.bytes_sent;
  bytes_recv += o.bytes_recv;
  dense_elements += o.dense_elements;
  time_compress_s += o.time_compress_s;
  time_comm_s += o.time_comm_s;
}

Exchange::Exchange(comm::Backend& backend, const Layout& layout, ExchangeConfig config)
    : backend_(backend), config_(std::move(config)) {
  layout.validate();
  compressor_ = compress::make_compressor(config_.compressor);
  kind_ = compressor_->aggregation();
  // Threshold compressors select a data-dependent number of pairs; the others exactly k per group.
  variable_count_ = config_.compressor.name == "topk-sampled" || config_.compressor.name == "sidco";
  n_ = layout.total();
  SPARCOL_CHECK_ARG(n_ <= kMaxElements, backend_.rank(),
                    "exchange: " + std::to_string(n_) + " parameters exceed the 2^32-1 supported by uint32 indices");
  build_groups(layout);
  set_density(config_.compressor.density);
  if (kind_ == compress::Aggregation::kSparse) {
    sparse_ = std::make_unique<coll::SparseAllgather>(backend_, n_, total_k());
  }
  if (kind_ == compress::Aggregation::kSign) {
    for (const auto& g : groups_) signs_.push_back(std::make_unique<coll::SignAllgather>(backend_, g.n));
  }
}

Exchange::~Exchange() = default;

void Exchange::build_groups(const Layout& layout) {
  const bool all_dense = kind_ == compress::Aggregation::kDense;
  Group flat;
  for (std::size_t i = 0; i < layout.tensors.size(); ++i) {
    const TensorSpec& t = layout.tensors[i];
    if (t.size == 0) continue;
    const bool dense = all_dense || t.size < config_.min_compress_size ||
                       (config_.compress_only_matrices && t.dims <= 1);
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
      g.k = std::min<std::uint64_t>(g.n, std::max<std::uint64_t>(1, static_cast<std::uint64_t>(
                                                                        std::ceil(rho * static_cast<double>(g.n)))));
    } else {
      g.k = compressor_->target_k(g.n);
    }
  }
  std::uint64_t packed = dense_count_;
  if (kind_ == compress::Aggregation::kShared) packed += total_k();
  packed_.resize(packed);
  if (packed > 0) ring_ = std::make_unique<coll::RingAllreduce>(backend_, packed);
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

std::span<float> Exchange::group_view(Group& g, std::span<float> v, bool gather) {
  if (g.segments.size() == 1) return v.subspan(g.segments[0].offset, g.segments[0].size);
  gather_.resize(g.n);
  if (gather) {
    std::size_t pos = 0;
    for (const auto& s : g.segments) {
      std::copy_n(v.begin() + static_cast<std::ptrdiff_t>(s.offset), s.size, gather_.begin() + static_cast<std::ptrdiff_t>(pos));
      pos += s.size;
    }
  }
  return {gather_.data(), g.n};
}

void Exchange::scatter_group(const Group& g, std::span<const float> from, std::span<float> v) const {
  if (g.segments.size() == 1 && from.data() == v.data() + g.segments[0].offset) return;  // already in place
  std::size_t pos = 0;
  for (const auto& s : g.segments) {
    std::copy_n(from.begin() + static_cast<std::ptrdiff_t>(pos), s.size, v.begin() + static_cast<std::ptrdiff_t>(s.offset));
    pos += s.size;
  }
}

Verdict Exchange::begin(std::uint64_t step, bool local_nonfinite) {
  const auto locals = coll::agree(
      backend_,
      coll::CallSignature{coll::CollOp::kExchange, n_, total_k(), config_.seed, step,
                          static_cast<std::uint64_t>(groups_.size()), 0},
      coll::RankLocal{0, local_nonfinite ? coll::kFlagNonFinite : 0}, /*need_locals=*/true);
  Verdict verdict;
  for (std::size_t r = 0; r < locals.size(); ++r) {
    if (locals[r].flags & coll::kFlagNonFinite) verdict.bad_ranks.push_back(static_cast<int>(r));
  }
  verdict.skip = !verdict.bad_ranks.empty();
  step_ = step;
  begun_ = !verdict.skip;
  return verdict;
}

CommStats Exchange::finish(std::span<float> v, std::span<float> agg) {
  const int me = backend_.rank();
  const auto K = static_cast<std::uint64_t>(backend_.size());
  SPARCOL_CHECK(begun_, ErrorCode::kInternal, me, "exchange: finish() without a successful begin()");
  begun_ = false;
  SPARCOL_CHECK_ARG(v.size() == n_ && agg.size() == n_, me,
                    "exchange: vectors of " + std::to_string(v.size()) + " and " + std::to_string(agg.size()) +
                        " elements for a layout of " + std::to_string(n_));
  CommStats st;
  const auto t0 = Clock::now();

  // 1-2. Compress each group and keep the compression error in v.
  std::size_t packed_pos = 0;
  for (auto& g : groups_) {
    auto view = group_view(g, v, /*gather=*/true);
    compress::Context ctx{config_.seed, step_, g.id, static_cast<std::uint32_t>(me), g.k};
    compressor_->compress(view, ctx, g.msg);
    compress::subtract_decompressed(g.msg, view);
    scatter_group(g, view, v);
    st.elements_up += g.msg.wire_elements();
    st.bytes_up += g.msg.wire_bytes();
    if (kind_ == compress::Aggregation::kShared) {
      std::copy(g.msg.values.begin(), g.msg.values.end(), packed_.begin() + static_cast<std::ptrdiff_t>(packed_pos));
      packed_pos += g.msg.values.size();
    }
  }
  for (const auto& s : dense_) {
    std::copy_n(v.begin() + static_cast<std::ptrdiff_t>(s.offset), s.size, packed_.begin() + static_cast<std::ptrdiff_t>(packed_pos));
    std::fill_n(v.begin() + static_cast<std::ptrdiff_t>(s.offset), s.size, 0.0f);
    packed_pos += s.size;
  }
  st.elements_up += static_cast<double>(dense_count_);
  st.bytes_up += 4 * dense_count_;
  st.time_compress_s = seconds_since(t0);
  const auto t1 = Clock::now();

  // 3. Aggregate.
  const float kf = static_cast<float>(K);
  auto divide_dense_into_agg = [&](std::size_t from) {
    for (const auto& s : dense_) {
      for (std::uint64_t i = 0; i < s.size; ++i) agg[s.offset + i] = packed_[from + i] / kf;
      from += s.size;
    }
  };
  if (ring_) {
    ring_->run_unchecked(packed_.data());
    st.bytes_sent += ring_->bytes_sent_per_run();
    st.bytes_recv += ring_->bytes_sent_per_run();
  }
  std::fill(agg.begin(), agg.end(), 0.0f);
  switch (kind_) {
    case compress::Aggregation::kDense: {
      divide_dense_into_agg(0);
      st.elements_up_all = static_cast<double>(K) * st.elements_up;
      st.elements_down = static_cast<double>(n_);
      break;
    }
    case compress::Aggregation::kShared: {
      std::size_t pos = 0;
      for (auto& g : groups_) {
        const auto& m = g.msg;
        if (m.is_block) {
          const auto first = m.block.first_len();
          for (std::uint64_t i = 0; i < m.block.length; ++i) {
            const std::uint64_t local = i < first ? m.block.start + i : i - first;
            agg[to_global(g, local)] = packed_[pos + i] / kf;
          }
        } else {
          for (std::size_t i = 0; i < m.indices.size(); ++i) agg[to_global(g, m.indices[i])] = packed_[pos + i] / kf;
        }
        pos += m.values.size();
      }
      divide_dense_into_agg(pos);
      st.elements_up_all = static_cast<double>(K) * st.elements_up;
      st.elements_down = static_cast<double>(total_k() + dense_count_);
      break;
    }
    case compress::Aggregation::kSparse: {
      pair_idx_.clear();
      pair_val_.clear();
      for (const auto& g : groups_) {
        for (std::size_t i = 0; i < g.msg.indices.size(); ++i) {
          pair_idx_.push_back(static_cast<Index>(to_global(g, g.msg.indices[i])));
          pair_val_.push_back(g.msg.values[i]);
        }
      }
      std::vector<std::size_t> counts(K, total_k());
      if (variable_count_) {
        std::vector<std::uint64_t> all(K);
        const std::uint64_t mine = pair_idx_.size();
        coll::allgather_small(backend_, &mine, sizeof mine, all.data(), comm::kTagFingerprint);
        for (std::size_t r = 0; r < K; ++r) counts[r] = all[r];
      }
      sparse_->run_agreed(pair_idx_, pair_val_, counts);
      st.bytes_sent += sparse_->last_bytes_sent();
      st.bytes_recv += sparse_->last_bytes_recv();
      sparse_->accumulate_into(agg.data());
      std::uint64_t nnz = 0;
      for (const auto& g : groups_) {
        for (const auto& s : g.segments) {
          for (std::uint64_t i = s.offset; i < s.offset + s.size; ++i) {
            agg[i] /= kf;
            nnz += agg[i] != 0.0f;
          }
        }
      }
      divide_dense_into_agg(0);
      std::uint64_t pairs_all = 0;
      for (auto c : counts) pairs_all += c;
      st.elements_up_all = 2.0 * static_cast<double>(pairs_all) + static_cast<double>(K * dense_count_);
      st.elements_down = 2.0 * static_cast<double>(nnz) + static_cast<double>(dense_count_);
      break;
    }
    case compress::Aggregation::kSign: {
      double down = 0;
      std::uint64_t down_bytes = 0;
      for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
        auto& g = groups_[gi];
        auto& sag = *signs_[gi];
        sag.run_agreed(g.msg.bits, g.msg.scale);
        st.bytes_sent += sag.last_bytes_sent();
        st.bytes_recv += sag.last_bytes_recv();
        auto view = group_view(g, agg, /*gather=*/false);
        if (config_.compressor.sign_majority) {
          sag.majority_into(view);
        } else {
          sag.mean_into(view);
        }
        scatter_group(g, view, agg);
        down += static_cast<double>(K) * g.msg.wire_elements();
        down_bytes += K * g.msg.wire_bytes();
      }
      st.bytes_down = down_bytes + 4 * dense_count_;
      divide_dense_into_agg(0);
      st.elements_up_all = static_cast<double>(K) * st.elements_up;
      st.elements_down = down + static_cast<double>(dense_count_);
      break;
    }
  }
  // Bytes down: 4 per element (sign messages counted above, their bits pack 32 to a word).
  if (kind_ != compress::Aggregation::kSign) st.bytes_down = static_cast<std::uint64_t>(st.elements_down) * 4;
  st.dense_elements = static_cast<double>((K + 1) * n_);
  st.time_comm_s = seconds_since(t1);
  return st;
}

void Exchange::zero_sent(std::span<float> u) const {
  if (kind_ == compress::Aggregation::kDense) {
    // Compressor "none": the identity sends every coordinate (DGC with masking degenerates to DSGD).
    std::fill(u.begin(), u.end(), 0.0f);
    return;
  }
  for (const auto& g : groups_) {
    compress::for_each_support_range(g.msg, [&](std::uint64_t b, std::uint64_t e) {
      if (g.segments.size() == 1) {
        std::fill(u.begin() + static_cast<std::ptrdiff_t>(g.segments[0].offset + b),
                  u.begin() + static_cast<std::ptrdiff_t>(g.segments[0].offset + e), 0.0f);
      } else {
        for (std::uint64_t i = b; i < e; ++i) u[to_global(g, i)] = 0.0f;
      }
    });
  }
}

}  // namespace sparcol::optim
