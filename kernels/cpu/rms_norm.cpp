// RMSNorm and fused residual-add + RMSNorm for CPU, one row per token, statistics in fp32:
//   y = w * round(x / sqrt(mean(x^2) + eps))      (round: to the tensors' dtype, as the reference does)
//   fused: r = round(x + residual); y = rms_norm(r); r is written into residual and y into x.
// Rows run in parallel only when there are enough of them to pay for waking a thread.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "vec.h"

namespace tamer_cpu {
namespace {

constexpr int64_t kElementsPerTask = 32768;

template <typename scalar_t>
void norm_rows(const at::Tensor& x, at::Tensor* residual, const at::Tensor& weight, double eps, at::Tensor& out) {
  const int64_t num_rows = x.size(0), hidden = x.size(1);
  scalar_t* x_ptr = x.data_ptr<scalar_t>();
  scalar_t* r_ptr = residual ? residual->data_ptr<scalar_t>() : nullptr;
  const scalar_t* w_ptr = weight.data_ptr<scalar_t>();
  scalar_t* o_ptr = out.data_ptr<scalar_t>();
  const int64_t x_stride = x.stride(0), o_stride = out.stride(0), r_stride = residual ? residual->stride(0) : 0;
  const float eps_f = static_cast<float>(eps);
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(hidden, 1));
  at::parallel_for(0, num_rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      scalar_t* xr = x_ptr + row * x_stride;
      scalar_t* src = xr;  // the row that is normalized: x, or r = x + residual written into residual
      if (r_ptr != nullptr) {
        scalar_t* rr = r_ptr + row * r_stride;
        for (int64_t i = 0; i < hidden; ++i) store(rr, i, load(xr, i) + load(rr, i));
        src = rr;
      }
      float sum_sq = 0.0f;
#pragma omp simd reduction(+ : sum_sq)
      for (int64_t i = 0; i < hidden; ++i) sum_sq += load(src, i) * load(src, i);
      const float inv_rms = 1.0f / std::sqrt(sum_sq / static_cast<float>(hidden) + eps_f);
      scalar_t* orow = o_ptr + row * o_stride;
      for (int64_t i = 0; i < hidden; ++i) store(orow, i, load(w_ptr, i) * round_to(load(src, i) * inv_rms, src));
    }
  });
}

void check(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out) {
  TORCH_CHECK(x.dim() == 2 && x.device().is_cpu() && x.stride(1) == 1, "x must be a CPU (num_tokens, hidden_size) "
              "tensor with contiguous rows");
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(1) && weight.is_contiguous(),
              "weight must be contiguous (hidden_size,)");
  TORCH_CHECK(weight.scalar_type() == x.scalar_type() && out.scalar_type() == x.scalar_type(),
              "x, weight and out must share one dtype");
  TORCH_CHECK(out.sizes() == x.sizes() && out.stride(1) == 1, "out must be x's shape with contiguous rows");
}

template <typename Fn>
void by_dtype(const at::Tensor& x, Fn&& fn) {
  if (x.scalar_type() == at::kFloat) {
    fn(static_cast<float*>(nullptr));
  } else if (x.scalar_type() == at::kBFloat16) {
    fn(static_cast<c10::BFloat16*>(nullptr));
  } else {
    TORCH_CHECK(false, "the CPU norm kernels take float32 or bfloat16, got ", x.scalar_type());
  }
}

}  // namespace

void rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor& out) {
  check(x, weight, out);
  by_dtype(x, [&](auto* tag) { norm_rows<std::remove_pointer_t<decltype(tag)>>(x, nullptr, weight, eps, out); });
}

void fused_add_rms_norm(at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps) {
  check(x, weight, x);
  TORCH_CHECK(residual.sizes() == x.sizes() && residual.scalar_type() == x.scalar_type() && residual.stride(1) == 1,
              "residual must be x's shape and dtype, with contiguous rows");
  by_dtype(x, [&](auto* tag) { norm_rows<std::remove_pointer_t<decltype(tag)>>(x, &residual, weight, eps, x); });
}

}  // namespace tamer_cpu
