// The tensors of one flat parameter vector: what layer-wise compression and the exclusion of
// small tensors work on (ALGORITHMS.md 0.1, "Flat vs layer-wise compression").
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sparcol::optim {

struct TensorSpec {
  std::string name;
  std::uint64_t offset = 0;  // in elements, into the flat vector
  std::uint64_t size = 0;
  int dims = 1;            // number of dimensions (DGC compresses only tensors with dims > 1)
  std::uint64_t rows = 0;  // first dimension (output features) when dims > 1; 0 = not given
                           // (powergossip then views the tensor as its most square matrix)
};

struct Layout {
  // Not an aggregate, so that Layout{{tensor, ...}} keeps meaning "these tensors" (rows unknown).
  Layout(std::vector<TensorSpec> t = {}, std::vector<std::uint64_t> r = {})
      : tensors(std::move(t)), rows(std::move(r)) {}

  std::vector<TensorSpec> tensors;  // contiguous and in order: offset_i = sum of earlier sizes
  // The first dimension of tensor i (rows[i]), for methods that view a tensor as a matrix
  // (powersgd: n = rows, m = size / rows). Empty, or 0 for a tensor: unknown (powersgd then sends that
  // tensor densely).
  std::vector<std::uint64_t> rows;
  std::uint64_t total() const { return tensors.empty() ? 0 : tensors.back().offset + tensors.back().size; }

  // One tensor covering n elements.
  static Layout flat(std::uint64_t n, int dims = 2);
  // Checks that the tensors tile [0, total) in order; throws Error(kInvalidArgument) otherwise.
  void validate() const;
};

}  // namespace sparcol::optim
