// SwiGLU gate for CPU: with x = [gate, up] in halves of each row, out = silu(gate) * up,
// silu(g) = g / (1 + exp(-g)), in fp32 with one rounding to the tensors' dtype.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "vec.h"

namespace tamer_cpu {
namespace {

template <typename scalar_t>
void gate_rows(const at::Tensor& x, at::Tensor& out, int64_t begin, int64_t end) {
  const int64_t half = out.size(1);
  for (int64_t row = begin; row < end; ++row) {
    const scalar_t* gate = x.data_ptr<scalar_t>() + row * x.stride(0);
    const scalar_t* up = gate + half;
    scalar_t* o = out.data_ptr<scalar_t>() + row * out.stride(0);
    int64_t i = 0;
#ifdef TAMER_VEC
    for (; i + Vec::kLanes <= half; i += Vec::kLanes) {  // fp32 or bf16 widened on load, rounded once on store
      const Vec::reg g = Vec::load(gate + i);
      const Vec::reg e = exp_vec(Vec::sub(Vec::zero(), g));  // exp(-g)
      const Vec::reg silu = Vec::div(g, Vec::add(Vec::set1(1.0f), e));
      Vec::store(o + i, Vec::mul(silu, Vec::load(up + i)));
    }
#endif
    for (; i < half; ++i) {
      const float g = load(gate, i);
      store(o, i, g / (1.0f + exp_clamped(-g)) * load(up, i));
    }
  }
}

}  // namespace

void silu_and_mul(const at::Tensor& x, at::Tensor& out) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) % 2 == 0 && x.stride(1) == 1 && x.device().is_cpu(),
              "x must be a CPU (num_tokens, 2 * intermediate_size) tensor with contiguous rows");
  TORCH_CHECK(out.dim() == 2 && out.size(0) == x.size(0) && out.size(1) == x.size(1) / 2 && out.stride(1) == 1 &&
                  out.scalar_type() == x.scalar_type(),
              "out must be (num_tokens, intermediate_size), x's dtype, contiguous rows");
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, out.size(1)));
  at::parallel_for(0, x.size(0), grain, [&](int64_t begin, int64_t end) {
    if (x.scalar_type() == at::kFloat) {
      gate_rows<float>(x, out, begin, end);
    } else if (x.scalar_type() == at::kBFloat16) {
      gate_rows<c10::BFloat16>(x, out, begin, end);
    } else {
      TORCH_CHECK(false, "silu_and_mul on CPU takes float32 or bfloat16, got ", x.scalar_type());
    }
  });
}

}  // namespace tamer_cpu
