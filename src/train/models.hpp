// Internal to sparcol_train: constructors of the concrete models (make_model dispatches here) and
// the initialisation helpers they share.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "sparcol/train/model.hpp"

namespace sparcol::train::detail {

std::unique_ptr<Model> make_mlp(const ModelOptions& options);
std::unique_ptr<Model> make_cnn(const ModelOptions& options);
std::unique_ptr<Model> make_resnet20(const ModelOptions& options);
std::unique_ptr<Model> make_synthetic(const ModelOptions& options);

// values ~ N(0, stddev^2) from CounterRng(seed, kStreamInit, tensor_id): each tensor's values depend
// only on (seed, its index in tensors()), not on the other tensors' sizes.
void init_normal(std::span<float> values, std::uint64_t seed, std::uint32_t tensor_id, double stddev);

// Throws kInvalidArgument "<model>: <option> must be ..." unless cond holds.
void require(bool cond, const char* model, const std::string& what);

}  // namespace sparcol::train::detail
