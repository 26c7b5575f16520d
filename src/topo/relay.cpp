#include "sparcol/topo/relay.hpp"

#include <string>

#include "sparcol/core/error.hpp"

namespace sparcol::topo {

namespace ops = device::dispatch;

RelaySum::RelaySum(comm::Backend& backend, const Graph& tree, device::Exec& exec, std::uint64_t len)
    : nx_(backend, tree), exec_(exec), len_(len), n_(backend.size()) {
  SPARCOL_CHECK_ARG(
      is_tree(tree), backend.rank(),
      "RelaySum needs a spanning tree (chain, binary-tree, double-binary-tree), got " + tree.name);
  const auto deg = static_cast<std::uint64_t>(nx_.degree());
  in_.assign(exec, deg * (len + 1), "relay messages in");
  out_.assign(exec, deg * (len + 1), "relay messages out");
  counts_.resize(deg);
  edges_.resize(deg);
  for (std::uint64_t k = 0; k < deg; ++k)
    edges_[k] = Edge{out_.data() + k * (len + 1), in_.data() + k * (len + 1), (len + 1) * sizeof(float)};
}

void RelaySum::run(const float* mine, const float* fill, float* out, std::uint64_t step) {
  const std::size_t deg = counts_.size();
  const std::uint64_t stride = len_ + 1;
  // The counts of the previous call (they live with the messages: a restored state carries them).
  for (std::size_t k = 0; k < deg; ++k)
    exec_.download(&counts_[k], in_.data() + k * stride + len_, sizeof(float));
  for (std::size_t k = 0; k < deg; ++k) {
    float* m = out_.data() + k * stride;
    exec_.copy(m, mine, len_ * sizeof(float));
    float c = 1;
    for (std::size_t l = 0; l < deg; ++l) {
      if (l == k) continue;
      ops::add_into(exec_, m, in_.data() + l * stride, len_);
      c += counts_[l];
    }
    exec_.upload(m + len_, &c, sizeof(float));
  }
  exec_.synchronize();
  nx_.run(edges_, step);
  double heard = 0;
  for (std::size_t k = 0; k < deg; ++k) {
    exec_.download(&counts_[k], in_.data() + k * stride + len_, sizeof(float));
    heard += counts_[k];
  }
  SPARCOL_CHECK(heard <= n_ - 1, ErrorCode::kInternal, -1,
                "RelaySum: the counts received add up to " + std::to_string(heard) + " workers of " +
                    std::to_string(n_ - 1) + " others");
  heard_ = static_cast<std::uint64_t>(heard);
  if (out != mine) exec_.copy(out, mine, len_ * sizeof(float));
  for (std::size_t k = 0; k < deg; ++k) ops::add_into(exec_, out, in_.data() + k * stride, len_);
  const double missing = (n_ - 1) - heard;
  if (fill != nullptr && missing > 0)
    ops::detached_point(exec_, out, out, fill, static_cast<float>(-missing), len_);
  // out / n as out - (1 - 1/n) * out.
  if (n_ > 1) ops::apply_update(exec_, out, out, static_cast<float>(1.0 - 1.0 / n_), 0.0f, len_);
  exec_.synchronize();
}

}  // namespace sparcol::topo
