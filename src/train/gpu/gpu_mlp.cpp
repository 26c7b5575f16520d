// The MLP with its forward and backward on the current CUDA device (docs/gpu.md, "The trainer on the
// GPU"): the same architecture, tensor layout and initialisation as the CPU MLP (src/train/mlp.cpp,
// which it uses for init), GEMMs through cuBLAS (FP32, no TF32), the elementwise layers, the bias
// gradient and the cross-entropy through the kernels of mlp_kernels.cu. The parameters and the
// gradient stay host vectors (the Model interface): each call uploads the parameters and the batch
// and downloads the gradient, so every optimizer and backend works unchanged.
//
// Row-major [rows][cols] matrices are column-major [cols][rows] to cuBLAS, so the CPU's
//   y[n][out] = x[n][in] w[out][in]^T   is  Y' = W'^T X'   (W' = w as [in][out] column-major),
//   dx[n][in] = dy[n][out] w[out][in]  is  dX' = W' dY',
//   dw[out][in] = dy^T x               is  dW' = X' dY'^T.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../models.hpp"
#include "gpu_kernels.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/train/model.hpp"

namespace sparcol::train {

namespace {

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(ErrorCode::kCuda, -1, std::string("gpu mlp: ") + what + ": " + cudaGetErrorString(e));
}

void blas_ok(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw Error(ErrorCode::kCuda, -1,
                std::string("gpu mlp: ") + what + ": cuBLAS status " + std::to_string(static_cast<int>(s)));
  }
}

class GpuMlp final : public Model {
 public:
  explicit GpuMlp(const ModelOptions& o) : Model(o.input, o.num_classes), cpu_(detail::make_mlp(o)) {
    // The CPU model's layout, tensor by tensor (fc<l>.weight [out, in], fc<l>.bias [out]).
    widths_.push_back(static_cast<int>(o.input.size()));
    for (const TensorInfo& t : cpu_->tensors()) {
      const std::size_t at = add_tensor(t.name, t.shape);
      if (t.shape.size() == 2) {
        weight_.push_back(at);
        widths_.push_back(static_cast<int>(t.shape[0]));
      } else {
        bias_.push_back(at);
      }
    }
    blas_ok(cublasCreate(&blas_), "cublasCreate");
    blas_ok(cublasSetStream(blas_, static_cast<cudaStream_t>(stream_.handle())), "cublasSetStream");
    // FP32 GEMMs in FP32 (no TF32 tensor-core rounding), so that the GPU model tracks the CPU one.
    blas_ok(cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
    params_ = device::DeviceBuffer<float>(num_params(), "gpu mlp: parameters");
    grad_ = device::DeviceBuffer<float>(num_params(), "gpu mlp: gradient");
  }
  ~GpuMlp() override { cublasDestroy(blas_); }
  GpuMlp(const GpuMlp&) = delete;
  GpuMlp& operator=(const GpuMlp&) = delete;

  std::string name() const override { return "mlp"; }

  void init(std::span<float> params, std::uint64_t seed) override { cpu_->init(params, seed); }

  double forward_backward(std::span<const float> params, const BatchView& batch,
                          std::span<float> grad) override {
    check_call(params, batch, grad.data(), grad.size());
    const auto n = static_cast<int>(batch.size);
    upload(params, batch, true);
    forward(n);
    const std::size_t layers = weight_.size();
    const int k = num_classes_;
    gpu::softmax_xent(stream_.handle(), acts_[layers - 1].data(), labels_.data(),
                      static_cast<std::uint64_t>(n), k, delta_[0].data(), loss_.data(), correct_.data());
    int cur = 0;
    const float one = 1.0f, zero = 0.0f;
    for (std::size_t l = layers; l-- > 0;) {
      const float* in = l == 0 ? images_.data() : acts_[l - 1].data();
      const int fan_in = widths_[l], fan_out = widths_[l + 1];
      float* dw = grad_.data() + weight_[l];
      blas_ok(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, fan_in, fan_out, n, &one, in, fan_in,
                          delta_[cur].data(), fan_out, &zero, dw, fan_in),
              "weight gradient");
      gpu::column_sum(stream_.handle(), delta_[cur].data(), grad_.data() + bias_[l],
                      static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(fan_out));
      if (l > 0) {
        float* dx = delta_[1 - cur].data();
        blas_ok(
            cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, fan_in, n, fan_out, &one,
                        params_.data() + weight_[l], fan_in, delta_[cur].data(), fan_out, &zero, dx, fan_in),
            "input gradient");
        gpu::relu_backward(stream_.handle(), acts_[l - 1].data(), dx,
                           static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(fan_in));
        cur = 1 - cur;
      }
    }
    cuda_ok(cudaMemcpyAsync(grad.data(), grad_.data(), grad.size() * sizeof(float), cudaMemcpyDeviceToHost,
                            static_cast<cudaStream_t>(stream_.handle())),
            "gradient download");
    return finish_loss(n);
  }

 protected:
  void predict(std::span<const float> params, const BatchView& batch, std::span<float> logits) override {
    upload(params, batch, false);
    forward(static_cast<int>(batch.size));
    cuda_ok(cudaMemcpyAsync(logits.data(), acts_.back().data(), logits.size() * sizeof(float),
                            cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream_.handle())),
            "logits download");
    stream_.synchronize();
  }

 private:
  // Parameters, images and (with labels) the labels to the device; scratch sized for n samples.
  void upload(std::span<const float> params, const BatchView& batch, bool labels) {
    const std::size_t n = batch.size;
    ensure_capacity(n);
    const auto s = static_cast<cudaStream_t>(stream_.handle());
    cuda_ok(cudaMemcpyAsync(params_.data(), params.data(), params.size() * sizeof(float),
                            cudaMemcpyHostToDevice, s),
            "parameter upload");
    cuda_ok(
        cudaMemcpyAsync(images_.data(), batch.images,
                        n * static_cast<std::size_t>(widths_[0]) * sizeof(float), cudaMemcpyHostToDevice, s),
        "image upload");
    if (labels) {
      cuda_ok(
          cudaMemcpyAsync(labels_.data(), batch.labels, n * sizeof(std::int32_t), cudaMemcpyHostToDevice, s),
          "label upload");
    }
    // The host buffers may change once this returns: wait for the copies.
    stream_.synchronize();
  }

  void ensure_capacity(std::size_t n) {
    if (n <= capacity_) return;
    capacity_ = n;
    images_ = device::DeviceBuffer<float>(n * static_cast<std::size_t>(widths_[0]), "gpu mlp: images");
    labels_ = device::DeviceBuffer<std::int32_t>(n, "gpu mlp: labels");
    loss_ = device::DeviceBuffer<double>(n, "gpu mlp: losses");
    correct_ = device::DeviceBuffer<std::uint32_t>(n, "gpu mlp: correct flags");
    acts_.clear();
    std::size_t widest = 0;
    for (std::size_t l = 1; l < widths_.size(); ++l) {
      acts_.emplace_back(n * static_cast<std::size_t>(widths_[l]), "gpu mlp: activations");
      widest = std::max(widest, static_cast<std::size_t>(widths_[l]));
    }
    widest = std::max(widest, static_cast<std::size_t>(widths_[0]));
    for (auto& d : delta_) d = device::DeviceBuffer<float>(n * widest, "gpu mlp: deltas");
    host_loss_.resize(n);
    host_correct_.resize(n);
  }

  void forward(int n) {
    const float one = 1.0f, zero = 0.0f;
    const float* in = images_.data();
    const std::size_t layers = weight_.size();
    for (std::size_t l = 0; l < layers; ++l) {
      const int fan_in = widths_[l], fan_out = widths_[l + 1];
      blas_ok(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, fan_out, n, fan_in, &one,
                          params_.data() + weight_[l], fan_in, in, fan_in, &zero, acts_[l].data(), fan_out),
              "linear forward");
      gpu::bias_act(stream_.handle(), acts_[l].data(), params_.data() + bias_[l],
                    static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(fan_out), l + 1 < layers);
      in = acts_[l].data();
    }
  }

  // The mean loss and the correct count, summed on the host in row order (as the CPU model does).
  double finish_loss(int n) {
    const auto s = static_cast<cudaStream_t>(stream_.handle());
    cuda_ok(cudaMemcpyAsync(host_loss_.data(), loss_.data(), static_cast<std::size_t>(n) * sizeof(double),
                            cudaMemcpyDeviceToHost, s),
            "loss download");
    cuda_ok(cudaMemcpyAsync(host_correct_.data(), correct_.data(),
                            static_cast<std::size_t>(n) * sizeof(std::uint32_t), cudaMemcpyDeviceToHost, s),
            "flag download");
    stream_.synchronize();
    double total = 0.0;
    std::size_t hits = 0;
    for (int i = 0; i < n; ++i) {
      total += host_loss_[static_cast<std::size_t>(i)];
      hits += host_correct_[static_cast<std::size_t>(i)];
    }
    last_correct_ = hits;
    return total / n;
  }

  std::unique_ptr<Model> cpu_;  // initialisation (the same x_0 as the CPU model)
  std::vector<int> widths_;
  std::vector<std::size_t> weight_, bias_;
  device::Stream stream_;
  cublasHandle_t blas_ = nullptr;
  device::DeviceBuffer<float> params_, grad_, images_;
  device::DeviceBuffer<std::int32_t> labels_;
  device::DeviceBuffer<double> loss_;
  device::DeviceBuffer<std::uint32_t> correct_;
  std::vector<device::DeviceBuffer<float>> acts_;
  device::DeviceBuffer<float> delta_[2];
  std::size_t capacity_ = 0;
  std::vector<double> host_loss_;
  std::vector<std::uint32_t> host_correct_;
};

}  // namespace

std::unique_ptr<Model> make_gpu_model(std::string_view name, const ModelOptions& options) {
  if (!device::has_gpu()) {
    throw Error(ErrorCode::kCuda, -1, "--device cuda: no CUDA device (" + device::no_gpu_reason() + ")");
  }
  SPARCOL_CHECK_ARG(name == "mlp", -1,
                    "--device cuda: only --model mlp has a GPU path so far, not '" + std::string(name) +
                        "' (docs/gpu.md, \"The trainer on the GPU\")");
  SPARCOL_CHECK_ARG(options.dropit_gamma == 0.0, -1,
                    "--device cuda: --dropit has no GPU path yet (docs/gpu.md)");
  (void)make_model(name, options);  // validates the options exactly as on the CPU
  return std::make_unique<GpuMlp>(options);
}

}  // namespace sparcol::train
