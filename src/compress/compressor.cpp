// Message sizes, decompression, error-feedback subtraction, k rules and the compressor factory.
#include "sparcol/compress/compressor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common.hpp"
#include "sparcol/compress/none.hpp"
#include "sparcol/compress/random_block.hpp"
#include "sparcol/compress/random_k.hpp"
#include "sparcol/compress/sidco.hpp"
#include "sparcol/compress/sign.hpp"
#include "sparcol/compress/topk.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/prefetch.hpp"

namespace sparcol::compress {

// ---------------------------------------------------------------------------------------------
// Message
// ---------------------------------------------------------------------------------------------

void Message::reset(Aggregation new_kind, std::uint64_t new_n) {
  kind = new_kind;
  n = new_n;
  indices.clear();
  values.clear();
  is_block = false;
  block = sparcol::Block{};
  bits.clear();
  scale = 0.0f;
  value_scale = 1.0f;
}

std::uint64_t Message::nnz() const {
  switch (kind) {
    case Aggregation::kDense:
    case Aggregation::kSign:
      return n;
    case Aggregation::kSparse:
    case Aggregation::kShared:
      return values.size();
  }
  return 0;
}

double Message::wire_elements() const {
  switch (kind) {
    case Aggregation::kDense:
      return static_cast<double>(n);
    case Aggregation::kSparse:
      return 2.0 * static_cast<double>(values.size());
    case Aggregation::kShared:
      return static_cast<double>(values.size());
    case Aggregation::kSign:
      return SignBits::wire_elements(n);
  }
  return 0.0;
}

std::uint64_t Message::wire_bytes() const {
  switch (kind) {
    case Aggregation::kDense:
      return kValueBytes * n;
    case Aggregation::kSparse:
      return kPairBytes * values.size();
    case Aggregation::kShared:
      return kValueBytes * values.size();
    case Aggregation::kSign:
      return SignBits::wire_bytes(n);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// decompress / subtract_decompressed
// ---------------------------------------------------------------------------------------------

namespace {

// Checks that m is well formed for a vector of out_size elements before any write through it.
void check_message(const Message& m, std::size_t out_size, const char* who) {
  SPARCOL_CHECK_ARG(out_size == m.n, -1,
                    std::string(who) + ": the vector has " + std::to_string(out_size) +
                        " elements but the message is for n = " + std::to_string(m.n));
  switch (m.kind) {
    case Aggregation::kDense:
      SPARCOL_CHECK_ARG(m.values.size() == m.n, -1,
                        std::string(who) + ": dense message with " + std::to_string(m.values.size()) +
                            " values for n = " + std::to_string(m.n));
      return;
    case Aggregation::kSign:
      SPARCOL_CHECK_ARG(m.bits.size() == SignLayout::words_for(m.n), -1,
                        std::string(who) + ": sign message with " + std::to_string(m.bits.size()) +
                            " words for n = " + std::to_string(m.n));
      return;
    case Aggregation::kShared:
      if (m.is_block) {
        SPARCOL_CHECK_ARG(m.block.n == m.n && m.block.length <= m.n && m.values.size() == m.block.length &&
                              (m.n == 0 || m.block.start < m.n),
                          -1, std::string(who) + ": inconsistent block message");
        return;
      }
      [[fallthrough]];
    case Aggregation::kSparse:
      SPARCOL_CHECK_ARG(m.indices.size() == m.values.size(), -1,
                        std::string(who) + ": message with " + std::to_string(m.indices.size()) +
                            " indices and " + std::to_string(m.values.size()) + " values");
      for (const Index i : m.indices)
        SPARCOL_CHECK_ARG(i < m.n, -1,
                          std::string(who) + ": index " + std::to_string(i) +
                              " out of range for n = " + std::to_string(m.n));
      return;
  }
}

}  // namespace

void decompress(const Message& m, std::span<float> out) {
  check_message(m, out.size(), "decompress");
  switch (m.kind) {
    case Aggregation::kDense:
      std::copy(m.values.begin(), m.values.end(), out.begin());
      return;
    case Aggregation::kSign:
      for (std::uint64_t j = 0; j < m.n; ++j) out[j] = m.scale * SignLayout::sign(m.bits.data(), j);
      return;
    case Aggregation::kShared:
      if (m.is_block) {
        std::fill(out.begin(), out.end(), 0.0f);
        sparcol::rbgs_unpack(m.values.data(), m.block, out.data());
        return;
      }
      [[fallthrough]];
    case Aggregation::kSparse:
      std::fill(out.begin(), out.end(), 0.0f);
      for (std::size_t i = 0; i < m.indices.size(); ++i) out[m.indices[i]] = m.values[i];
      return;
  }
}

void subtract_decompressed(const Message& m, std::span<float> v) {
  check_message(m, v.size(), "subtract_decompressed");
  switch (m.kind) {
    case Aggregation::kDense:
      // C(v) = v: the residual is zero (exactly, also where v is infinite).
      std::fill(v.begin(), v.end(), 0.0f);
      return;
    case Aggregation::kSign:
      for (std::uint64_t j = 0; j < m.n; ++j) v[j] -= m.scale * SignLayout::sign(m.bits.data(), j);
      return;
    case Aggregation::kShared:
      if (m.is_block) {
        const auto first = static_cast<std::ptrdiff_t>(m.block.first_len());
        std::fill(v.begin() + static_cast<std::ptrdiff_t>(m.block.start),
                  v.begin() + static_cast<std::ptrdiff_t>(m.block.start) + first, 0.0f);
        std::fill(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m.block.wrap_len()), 0.0f);
        return;
      }
      [[fallthrough]];
    case Aggregation::kSparse:
      if (m.value_scale == 1.0f) {
        const std::size_t count = m.indices.size();
        const std::size_t ahead = count > kPrefetchDistance ? count - kPrefetchDistance : 0;
        for (std::size_t j = 0; j < count; ++j) {
          if (j < ahead) prefetch_for_write(v.data() + m.indices[j + kPrefetchDistance]);
          v[m.indices[j]] = 0.0f;
        }
      } else {
        for (std::size_t i = 0; i < m.indices.size(); ++i) v[m.indices[i]] -= m.values[i];
      }
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// k rules
// ---------------------------------------------------------------------------------------------

namespace {

// rho*n, snapped to a nearby multiple of 1/2 when within 1e-9 (relative) of it (see the header).
double k_product(double rho, std::uint64_t n) {
  const double x = rho * static_cast<double>(n);
  const double half = std::round(2.0 * x) / 2.0;
  return std::fabs(x - half) <= 1e-9 * std::max(1.0, std::fabs(x)) ? half : x;
}

std::uint64_t clamp_k(double k, std::uint64_t n) {
  if (!(k >= 1.0)) return 1;  // also NaN
  if (k >= static_cast<double>(n)) return n;
  return static_cast<std::uint64_t>(k);
}

}  // namespace

std::uint64_t k_round(double rho, std::uint64_t n) {
  if (n == 0) return 0;
  return clamp_k(std::floor(k_product(rho, n) + 0.5), n);
}

std::uint64_t k_floor(double rho, std::uint64_t n) {
  if (n == 0) return 0;
  return clamp_k(std::floor(k_product(rho, n)), n);
}

// ---------------------------------------------------------------------------------------------
// Factory
// ---------------------------------------------------------------------------------------------

const std::vector<std::string>& compressor_names() {
  static const std::vector<std::string> names{"none",         "topk", "topk-sampled", "randk",
                                              "randk-shared", "rbgs", "sign",         "sidco"};
  return names;
}

namespace {

std::string format_double(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

std::string valid_names() {
  std::string s;
  for (const auto& name : compressor_names()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

}  // namespace

std::unique_ptr<Compressor> make_compressor(const CompressorConfig& c) {
  const auto& names = compressor_names();
  SPARCOL_CHECK_ARG(std::find(names.begin(), names.end(), c.name) != names.end(), -1,
                    "compressor: unknown name '" + c.name + "' (valid: " + valid_names() + ")");
  SPARCOL_CHECK_ARG(c.density > 0.0 && c.density <= 1.0, -1,
                    "compressor " + c.name + ": density must be in (0, 1], got " + format_double(c.density));
  SPARCOL_CHECK_ARG(
      c.sample_ratio > 0.0 && c.sample_ratio <= 1.0, -1,
      "compressor " + c.name + ": sample_ratio must be in (0, 1], got " + format_double(c.sample_ratio));
  SPARCOL_CHECK_ARG(
      c.sidco_stages >= 1, -1,
      "compressor " + c.name + ": sidco_stages must be >= 1, got " + std::to_string(c.sidco_stages));
  SPARCOL_CHECK_ARG(c.sidco_first_ratio > 0.0 && c.sidco_first_ratio < 1.0, -1,
                    "compressor " + c.name + ": sidco_first_ratio must be in (0, 1), got " +
                        format_double(c.sidco_first_ratio));

  if (c.name == "none") return std::make_unique<NoneCompressor>();
  if (c.name == "topk") return std::make_unique<TopkCompressor>(c.density);
  if (c.name == "topk-sampled") return std::make_unique<TopkSampledCompressor>(c.density, c.sample_ratio);
  if (c.name == "randk") return std::make_unique<RandkCompressor>(c.density, false, c.randk_scale);
  if (c.name == "randk-shared") return std::make_unique<RandkCompressor>(c.density, true, c.randk_scale);
  if (c.name == "rbgs") return std::make_unique<RbgsCompressor>(c.density);
  if (c.name == "sign") return std::make_unique<SignCompressor>(c.sign_majority);
  return std::make_unique<SidcoCompressor>(c.density, c.sidco_stages, c.sidco_first_ratio);
}

}  // namespace sparcol::compress
