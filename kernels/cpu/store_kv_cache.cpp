// Writes each new token's key and value into its slot of the paged cache: cache[slot] = kv[t], slot =
// block * block_size + offset; a negative slot is skipped. The caches are (num_blocks, block_size,
// num_kv_heads, head_dim) views of any strides whose head_dim axis is contiguous; the keys and values may be
// strided rows of the fused qkv projection.
#include <ATen/core/Tensor.h>

#include <cstring>
#include <utility>

#include "vec.h"

namespace tamer_cpu {
namespace {

void store_rounded(const at::Tensor& key, const at::Tensor& value, at::Tensor& key_cache, at::Tensor& value_cache,
                   const at::Tensor& slot_mapping) {
  const int64_t block_size = key_cache.size(1), num_slots = key_cache.size(0) * block_size;
  const int64_t* slots = slot_mapping.data_ptr<int64_t>();
  for (int64_t t = 0; t < key.size(0); ++t) {
    if (slots[t] < 0) continue;
    TORCH_CHECK(slots[t] < num_slots, "slot ", slots[t], " is past the cache's ", num_slots, " slots");
    const int64_t block = slots[t] / block_size, offset = slots[t] % block_size;
    for (int64_t h = 0; h < key.size(1); ++h) {
      for (auto [src, cache] : {std::pair{&key, &key_cache}, std::pair{&value, &value_cache}}) {
        const float* from = src->data_ptr<float>() + t * src->stride(0) + h * src->stride(1);
        c10::BFloat16* to = cache->data_ptr<c10::BFloat16>() + block * cache->stride(0) + offset * cache->stride(1) +
                            h * cache->stride(2);
        for (int64_t d = 0; d < src->size(2); ++d) store(to, d, from[d]);
      }
    }
  }
}

}  // namespace

void store_kv_cache(const at::Tensor& key, const at::Tensor& value, at::Tensor& key_cache, at::Tensor& value_cache,
                    const at::Tensor& slot_mapping) {
  TORCH_CHECK(key.dim() == 3 && value.sizes() == key.sizes() && key_cache.dim() == 4 &&
                  value_cache.sizes() == key_cache.sizes(),
              "key/value must be (num_tokens, num_kv_heads, head_dim), the caches (num_blocks, block_size, "
              "num_kv_heads, head_dim)");
  TORCH_CHECK(key.size(1) == key_cache.size(2) && key.size(2) == key_cache.size(3), "heads and head_dim must match");
  TORCH_CHECK(value.scalar_type() == key.scalar_type() && value_cache.scalar_type() == key_cache.scalar_type(),
              "keys and values must share one dtype, and the two caches one");
  if (key.scalar_type() != key_cache.scalar_type()) {  // an fp32 model writing a bf16 cache: round on the way in
    TORCH_CHECK(key.scalar_type() == at::kFloat && key_cache.scalar_type() == at::kBFloat16,
                "a cache of another dtype than the keys must be bfloat16 under float32 keys, got ",
                key_cache.scalar_type(), " and ", key.scalar_type());
    store_rounded(key, value, key_cache, value_cache, slot_mapping);
    return;
  }
  TORCH_CHECK(key.stride(2) == 1 && value.stride(2) == 1 && key_cache.stride(3) == 1 && value_cache.stride(3) == 1,
              "the head_dim axes must be contiguous");
  TORCH_CHECK(slot_mapping.scalar_type() == at::kLong && slot_mapping.is_contiguous() &&
                  slot_mapping.size(0) == key.size(0),
              "slot_mapping must be contiguous int64, one slot per token");
  const int64_t num_tokens = key.size(0), num_kv_heads = key.size(1);
  const int64_t block_size = key_cache.size(1), num_slots = key_cache.size(0) * block_size;
  const int64_t row_bytes = key.size(2) * key.element_size();
  const int64_t* slots = slot_mapping.data_ptr<int64_t>();
  const auto* k_src = static_cast<const char*>(key.data_ptr());
  const auto* v_src = static_cast<const char*>(value.data_ptr());
  auto* k_dst = static_cast<char*>(key_cache.data_ptr());
  auto* v_dst = static_cast<char*>(value_cache.data_ptr());
  const int64_t item = key.element_size();
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t slot = slots[t];
    if (slot < 0) continue;
    TORCH_CHECK(slot < num_slots, "slot ", slot, " is past the cache's ", num_slots, " slots");
    const int64_t block = slot / block_size, offset = slot % block_size;
    for (int64_t h = 0; h < num_kv_heads; ++h) {
      std::memcpy(k_dst + (block * key_cache.stride(0) + offset * key_cache.stride(1) + h * key_cache.stride(2)) * item,
                  k_src + (t * key.stride(0) + h * key.stride(1)) * item, row_bytes);
      std::memcpy(v_dst + (block * value_cache.stride(0) + offset * value_cache.stride(1) + h * value_cache.stride(2)) * item,
                  v_src + (t * value.stride(0) + h * value.stride(1)) * item, row_bytes);
    }
  }
}

}  // namespace tamer_cpu
