// make_gpu_model in a build without CUDA: every request is refused, naming why (exit 9).
#include <string>

#include "sparcol/core/error.hpp"
#include "sparcol/train/model.hpp"

namespace sparcol::train {

std::unique_ptr<Model> make_gpu_model(std::string_view name, const ModelOptions& /*options*/) {
  throw Error(
      ErrorCode::kCuda, -1,
      "--device cuda: no CUDA device (built without CUDA), so no GPU model '" + std::string(name) + "'");
}

}  // namespace sparcol::train
