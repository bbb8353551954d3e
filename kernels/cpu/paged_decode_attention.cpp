// Paged decode attention for CPU: one query token per sequence against its cached context, read in place
// from the paged KV cache (no gather copy), softmax in fp32, grouped-query attention.
//
//   out[s, h] = sum_{j < context_lens[s]} softmax_j(scale * q[s, h] . k[s, j, h / g]) v[s, j, h / g]
//
// with g = num_heads / num_kv_heads, and token j of sequence s at block block_tables[s, j / block_size],
// offset j % block_size. The cache tensors are (num_blocks, block_size, num_kv_heads, head_dim) views of any
// strides whose last axis is contiguous (the CPU cache is a heads-outer view, see backends/engine/kv_cache.py).
// Work is split over (sequence, kv head) pairs: each pair reads its keys and values once for its g query heads.
// For head_dim 64 and 128 the vector path (vec.h's Vec: sixteen lanes on AVX-512, eight on AVX2) scores a vector's
// worth of keys at a time (one transposed sum instead of one horizontal sum per key) and keeps each query row's
// accumulator in registers across the values: on a 2-core Zen 4 the bench/engine.py run spends 6.8 s in this
// kernel instead of 8.9 s with one key and one axpy at a time.
// float32 or bfloat16 queries and caches, in any pairing (an fp32 model may keep a bf16 cache); bfloat16 is
// widened to float32 on load.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>


#include <vector>

#include "vec.h"

namespace tamer_cpu {
namespace {

// scores[g * stride + t] = q[g] . k[t] for the `group` query rows (fp32, head_dim each) against n keys
// token_stride apart. The portable version; the vector one (score_tokens_vec) is below.
template <typename scalar_t>
inline void score_tokens(const float* q, const scalar_t* k, int64_t token_stride, int64_t n, int64_t group,
                         int64_t head_dim, float* scores, int64_t stride) {
  for (int64_t t = 0; t < n; ++t) {
    const scalar_t* kt = k + t * token_stride;
    for (int64_t g = 0; g < group; ++g) {
      const float* qg = q + g * head_dim;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < head_dim; ++d) dot += qg[d] * load(kt, d);
      scores[g * stride + t] = dot;
    }
  }
}

// acc[g] += p[g * stride + t] * v[t] for the `group` accumulator rows (fp32, head_dim each) over n values
// token_stride apart. The portable version; the vector one (accumulate_tokens_vec) is below.
template <typename scalar_t>
inline void accumulate_tokens(const float* p, int64_t stride, const scalar_t* v, int64_t token_stride, int64_t n,
                              int64_t group, int64_t head_dim, float* acc) {
  for (int64_t t = 0; t < n; ++t) {
    const scalar_t* vt = v + t * token_stride;
    for (int64_t g = 0; g < group; ++g) {
      const float weight = p[g * stride + t];
      float* a = acc + g * head_dim;
#pragma omp simd
      for (int64_t d = 0; d < head_dim; ++d) a[d] += weight * load(vt, d);
    }
  }
}

#ifdef TAMER_VEC
// score_tokens for head_dim = Vec::kLanes * kChunks: per query row, kLanes keys' products are summed by one
// Vec::transpose_sum and stored as one vector (the keys stay in L1 between the group's rows).
template <int kChunks, typename scalar_t>
inline void score_tokens_vec(const float* q, const scalar_t* k, int64_t token_stride, int64_t n, int64_t group,
                             float* scores, int64_t stride) {
  constexpr int kLanes = Vec::kLanes;
  for (int64_t t0 = 0; t0 < n; t0 += kLanes) {
    const int64_t m = std::min<int64_t>(kLanes, n - t0);
    for (int64_t g = 0; g < group; ++g) {
      Vec::reg qg[kChunks], x[kLanes];
      for (int c = 0; c < kChunks; ++c) qg[c] = Vec::load(q + (g * kChunks + c) * kLanes);
      for (int64_t t = 0; t < kLanes; ++t) {
        if (t >= m) {
          x[t] = Vec::zero();
          continue;
        }
        const scalar_t* kt = k + (t0 + t) * token_stride;
        Vec::reg sum = Vec::mul(qg[0], Vec::load(kt));
        for (int c = 1; c < kChunks; ++c) sum = Vec::fmadd(qg[c], Vec::load(kt + c * kLanes), sum);
        x[t] = sum;
      }
      Vec::store_first(scores + g * stride + t0, Vec::transpose_sum(x), m);
    }
  }
}

// accumulate_tokens for head_dim = Vec::kLanes * kChunks: each query row's accumulator stays in registers across
// the tokens (the values stay in L1 between the group's rows).
template <int kChunks, typename scalar_t>
inline void accumulate_tokens_vec(const float* p, int64_t stride, const scalar_t* v, int64_t token_stride, int64_t n,
                                  int64_t group, float* acc) {
  constexpr int kLanes = Vec::kLanes;
  for (int64_t g = 0; g < group; ++g) {
    float* ag = acc + g * kChunks * kLanes;
    const float* pg = p + g * stride;
    Vec::reg a[kChunks];
    for (int c = 0; c < kChunks; ++c) a[c] = Vec::load(ag + c * kLanes);
    for (int64_t t = 0; t < n; ++t) {
      const Vec::reg weight = Vec::set1(pg[t]);
      const scalar_t* vt = v + t * token_stride;
      for (int c = 0; c < kChunks; ++c) a[c] = Vec::fmadd(weight, Vec::load(vt + c * kLanes), a[c]);
    }
    for (int c = 0; c < kChunks; ++c) Vec::store(ag + c * kLanes, a[c]);
  }
}
#endif

// row[j] = exp(row[j] - max(row)) for j < n, in place; returns their sum.
inline float softmax_numerators(float* row, int64_t n) {
#ifdef TAMER_VEC  // whole vectors, then the last n % kLanes values one at a time
  const int64_t full = n - n % Vec::kLanes;
  Vec::reg m = Vec::set1(-INFINITY);
  for (int64_t j = 0; j < full; j += Vec::kLanes) m = Vec::max(m, Vec::load(row + j));
  float row_max = Vec::reduce_max(m);
  for (int64_t j = full; j < n; ++j) row_max = std::max(row_max, row[j]);
  const Vec::reg row_max_vec = Vec::set1(row_max);  // exp of (row - max) <= 0: the clamp at 88 never bites
  Vec::reg sum_vec = Vec::zero();
  for (int64_t j = 0; j < full; j += Vec::kLanes) {
    const Vec::reg e = exp_vec(Vec::sub(Vec::load(row + j), row_max_vec));
    Vec::store(row + j, e);
    sum_vec = Vec::add(sum_vec, e);
  }
  float sum = Vec::reduce_add(sum_vec);
  for (int64_t j = full; j < n; ++j) {
    row[j] = exp_clamped(row[j] - row_max);
    sum += row[j];
  }
  return sum;
#else
  float row_max = row[0];
  for (int64_t j = 1; j < n; ++j) row_max = std::max(row_max, row[j]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    row[j] = exp_clamped(row[j] - row_max);
    sum += row[j];
  }
  return sum;
#endif
}

// Prefetch num_rows rows (head_dim elements each, token_stride apart) of one cache block into the caches.
template <typename scalar_t>
inline void prefetch_block(const scalar_t* block, int64_t token_stride, int64_t num_rows, int64_t head_dim) {
  const char* base = reinterpret_cast<const char*>(block);
  const int64_t stride_bytes = token_stride * static_cast<int64_t>(sizeof(scalar_t));
  const int64_t row_bytes = head_dim * static_cast<int64_t>(sizeof(scalar_t));
  for (int64_t t = 0; t < num_rows; ++t)
    for (int64_t byte = 0; byte < row_bytes; byte += 64) __builtin_prefetch(base + t * stride_bytes + byte, 0, 3);
}

// kHeadDim: 64 or 128 for the vector path (a whole number of vectors on either instruction set), 0 for the
// portable one, which takes any head_dim.
template <int kHeadDim, typename scalar_t, typename cache_t>
void decode_attention(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                      const at::Tensor& block_tables, const at::Tensor& context_lens, double scale,
                      at::Tensor& out) {
  const int64_t num_seqs = query.size(0), num_heads = query.size(1), head_dim = query.size(2);
  const int64_t block_size = key_cache.size(1), num_kv_heads = key_cache.size(2);
  const int64_t group = num_heads / num_kv_heads;
  const scalar_t* q_ptr = query.data_ptr<scalar_t>();
  const cache_t* k_ptr = key_cache.data_ptr<cache_t>();
  const cache_t* v_ptr = value_cache.data_ptr<cache_t>();
  scalar_t* o_ptr = out.data_ptr<scalar_t>();
  const int32_t* tables = block_tables.data_ptr<int32_t>();
  const int32_t* lens = context_lens.data_ptr<int32_t>();
  const int64_t q_seq = query.stride(0), q_head = query.stride(1);
  const int64_t k_blk = key_cache.stride(0), k_tok = key_cache.stride(1), k_head = key_cache.stride(2);
  const int64_t v_blk = value_cache.stride(0), v_tok = value_cache.stride(1), v_head = value_cache.stride(2);
  const int64_t table_width = block_tables.size(1);
  const float scale_f = static_cast<float>(scale);
  auto key_block = [&](const int32_t* table, int64_t b, int64_t kv_head) {
    return k_ptr + table[b] * k_blk + kv_head * k_head;
  };
  auto value_block = [&](const int32_t* table, int64_t b, int64_t kv_head) {
    return v_ptr + table[b] * v_blk + kv_head * v_head;
  };
  // The cache is read from memory (the weights of the layers in between evict it from the caches), block by
  // scattered block, and each block's first touch waits on DRAM: so the next block (of keys, then of values,
  // then the next pair's keys) is prefetched while the current one is computed on. Measured on 2 cores,
  // SmolLM2's shapes, 64 sequences of 170 tokens in shuffled blocks, cache evicted: 1.47 -> 1.0 ms a call.
  at::parallel_for(0, num_seqs * num_kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> q(group * head_dim), acc(group * head_dim), total(group), scores;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / num_kv_heads, kv_head = item % num_kv_heads;
      const int64_t context_len = lens[s];
      const int32_t* table = tables + s * table_width;
      std::fill(acc.begin(), acc.end(), 0.0f);
      if (context_len > 0) {
        for (int64_t g = 0; g < group; ++g) {  // q rows of this kv head's group, scaled, in fp32
          const scalar_t* src = q_ptr + s * q_seq + (kv_head * group + g) * q_head;
          for (int64_t d = 0; d < head_dim; ++d) q[g * head_dim + d] = load(src, d) * scale_f;
        }
        scores.resize(group * context_len);  // (group, context_len)
        for (int64_t j0 = 0, b = 0; j0 < context_len; j0 += block_size, ++b) {
          if (j0 + block_size < context_len)
            prefetch_block(key_block(table, b + 1, kv_head), k_tok, std::min(block_size, context_len - j0 - block_size),
                           head_dim);
          else
            prefetch_block(value_block(table, 0, kv_head), v_tok, std::min(block_size, context_len), head_dim);
          const cache_t* k = key_block(table, b, kv_head);
          const int64_t n = std::min(block_size, context_len - j0);
#ifdef TAMER_VEC
          if constexpr (kHeadDim > 0) {
            score_tokens_vec<kHeadDim / Vec::kLanes>(q.data(), k, k_tok, n, group, scores.data() + j0, context_len);
            continue;
          }
#endif
          score_tokens(q.data(), k, k_tok, n, group, head_dim, scores.data() + j0, context_len);
        }
        for (int64_t g = 0; g < group; ++g) total[g] = softmax_numerators(scores.data() + g * context_len, context_len);
        for (int64_t j0 = 0, b = 0; j0 < context_len; j0 += block_size, ++b) {
          if (j0 + block_size < context_len) {
            prefetch_block(value_block(table, b + 1, kv_head), v_tok,
                           std::min(block_size, context_len - j0 - block_size), head_dim);
          } else if (item + 1 < end && lens[(item + 1) / num_kv_heads] > 0) {
            const int64_t next_s = (item + 1) / num_kv_heads;
            prefetch_block(key_block(tables + next_s * table_width, 0, (item + 1) % num_kv_heads), k_tok,
                           std::min(block_size, static_cast<int64_t>(lens[next_s])), head_dim);
          }
          const cache_t* v = value_block(table, b, kv_head);
          const int64_t n = std::min(block_size, context_len - j0);
#ifdef TAMER_VEC
          if constexpr (kHeadDim > 0) {
            accumulate_tokens_vec<kHeadDim / Vec::kLanes>(scores.data() + j0, context_len, v, v_tok, n, group,
                                                          acc.data());
            continue;
          }
#endif
          accumulate_tokens(scores.data() + j0, context_len, v, v_tok, n, group, head_dim, acc.data());
        }
      }
      for (int64_t g = 0; g < group; ++g) {  // no keys (context_len 0) leaves zeros: nothing to attend to
        scalar_t* dst = o_ptr + (s * num_heads + kv_head * group + g) * head_dim;
        const float inv = context_len > 0 ? 1.0f / total[g] : 0.0f;
        for (int64_t d = 0; d < head_dim; ++d) store(dst, d, acc[g * head_dim + d] * inv);
      }
    }
  });
}

template <typename scalar_t, typename cache_t>
void by_head_dim(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                 const at::Tensor& block_tables, const at::Tensor& context_lens, double scale, at::Tensor& out) {
  switch (query.size(2)) {
    case 64: return decode_attention<64, scalar_t, cache_t>(query, key_cache, value_cache, block_tables, context_lens, scale, out);
    case 128: return decode_attention<128, scalar_t, cache_t>(query, key_cache, value_cache, block_tables, context_lens, scale, out);
    default: return decode_attention<0, scalar_t, cache_t>(query, key_cache, value_cache, block_tables, context_lens, scale, out);
  }
}

}  // namespace

void paged_decode_attention(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                            const at::Tensor& block_tables, const at::Tensor& context_lens, double scale,
                            at::Tensor& out) {
  TORCH_CHECK(query.dim() == 3 && key_cache.dim() == 4 && value_cache.dim() == 4,
              "query must be (num_seqs, num_heads, head_dim) and the caches (num_blocks, block_size, "
              "num_kv_heads, head_dim)");
  TORCH_CHECK(query.device().is_cpu() && key_cache.device().is_cpu() && value_cache.device().is_cpu(),
              "the CPU kernel takes CPU tensors");
  TORCH_CHECK(value_cache.scalar_type() == key_cache.scalar_type() && out.scalar_type() == query.scalar_type(),
              "the caches must share one dtype, and out query's");
  TORCH_CHECK(query.stride(2) == 1 && key_cache.stride(3) == 1 && value_cache.stride(3) == 1,
              "the head_dim axis must be contiguous");
  TORCH_CHECK(out.is_contiguous() && out.sizes() == query.sizes(), "out must be contiguous, query's shape");
  TORCH_CHECK(key_cache.size(3) == query.size(2) && query.size(1) % key_cache.size(2) == 0,
              "head_dim must match and num_heads must be a multiple of num_kv_heads");
  TORCH_CHECK(block_tables.scalar_type() == at::kInt && context_lens.scalar_type() == at::kInt &&
                  block_tables.is_contiguous() && context_lens.is_contiguous(),
              "block_tables and context_lens must be contiguous int32");
  TORCH_CHECK(block_tables.size(0) == query.size(0) && context_lens.size(0) == query.size(0),
              "block_tables and context_lens need one row per sequence");
  if (query.size(0) == 0) return;
  const bool q_fp32 = query.scalar_type() == at::kFloat, kv_fp32 = key_cache.scalar_type() == at::kFloat;
  TORCH_CHECK((q_fp32 || query.scalar_type() == at::kBFloat16) && (kv_fp32 || key_cache.scalar_type() == at::kBFloat16),
              "paged_decode_attention on CPU takes float32 or bfloat16 queries and caches, got ", query.scalar_type(),
              " and ", key_cache.scalar_type());
  if (q_fp32 && kv_fp32) {
    by_head_dim<float, float>(query, key_cache, value_cache, block_tables, context_lens, scale, out);
  } else if (q_fp32) {
    by_head_dim<float, c10::BFloat16>(query, key_cache, value_cache, block_tables, context_lens, scale, out);
  } else if (kv_fp32) {
    by_head_dim<c10::BFloat16, float>(query, key_cache, value_cache, block_tables, context_lens, scale, out);
  } else {
    by_head_dim<c10::BFloat16, c10::BFloat16>(query, key_cache, value_cache, block_tables, context_lens, scale, out);
  }
}

}  // namespace tamer_cpu
