// Rotary position embedding for CPU, in place on q and k: each pair (a, b) of a head turns by the token's
// angle, a' = a cos - b sin, b' = b cos + a sin, in fp32 with one rounding to the tensors' dtype.
// NeoX / Hugging Face layout: pair i is (x[i], x[i + head_dim/2]); interleaved (GPT-J): (x[2i], x[2i+1]).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "vec.h"

namespace tamer_cpu {
namespace {

template <typename scalar_t>
void rotate(at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool is_neox, int64_t token) {
  const int64_t num_heads = x.size(1), half = x.size(2) / 2;
  scalar_t* row = x.data_ptr<scalar_t>() + token * x.stride(0);
  const scalar_t* c = cos.data_ptr<scalar_t>() + token * cos.stride(0);
  const scalar_t* s = sin.data_ptr<scalar_t>() + token * sin.stride(0);
  const int64_t first_step = is_neox ? 1 : 2, second_offset = is_neox ? half : 1;
  for (int64_t h = 0; h < num_heads; ++h) {
    scalar_t* head = row + h * x.stride(1);
    for (int64_t i = 0; i < half; ++i) {
      const int64_t ia = i * first_step, ib = ia + second_offset;
      const float a = load(head, ia), b = load(head, ib), ci = load(c, i), si = load(s, i);
      store(head, ia, a * ci - b * si);
      store(head, ib, b * ci + a * si);
    }
  }
}

}  // namespace

void rotary_embedding(at::Tensor& query, at::Tensor& key, const at::Tensor& cos, const at::Tensor& sin,
                      bool is_neox) {
  TORCH_CHECK(query.dim() == 3 && key.dim() == 3 && query.size(0) == key.size(0) && query.size(2) == key.size(2),
              "query and key must be (num_tokens, heads, head_dim) with the same tokens and head_dim");
  TORCH_CHECK(query.size(2) % 2 == 0 && cos.dim() == 2 && cos.size(0) == query.size(0) &&
                  cos.size(1) == query.size(2) / 2 && sin.sizes() == cos.sizes(),
              "cos and sin must be (num_tokens, head_dim / 2)");
  TORCH_CHECK(query.stride(2) == 1 && key.stride(2) == 1 && cos.stride(1) == 1 && sin.stride(1) == 1,
              "the last axes must be contiguous");
  const auto dtype = query.scalar_type();
  TORCH_CHECK(key.scalar_type() == dtype && cos.scalar_type() == dtype && sin.scalar_type() == dtype,
              "query, key, cos and sin must share one dtype");
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, (query.size(1) + key.size(1)) * query.size(2)));
  at::parallel_for(0, query.size(0), grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      if (dtype == at::kFloat) {
        rotate<float>(query, cos, sin, is_neox, t);
        rotate<float>(key, cos, sin, is_neox, t);
      } else if (dtype == at::kBFloat16) {
        rotate<c10::BFloat16>(query, cos, sin, is_neox, t);
        rotate<c10::BFloat16>(key, cos, sin, is_neox, t);
      } else {
        TORCH_CHECK(false, "rotary_embedding on CPU takes float32 or bfloat16, got ", dtype);
      }
    }
  });
}

}  // namespace tamer_cpu
