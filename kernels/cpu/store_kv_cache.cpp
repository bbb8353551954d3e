// Writes each new token's key and value into its slot of the paged cache: cache[slot] = kv[t], slot =
// block * block_size + offset; a negative slot is skipped. The caches are (num_blocks, block_size,
// num_kv_heads, head_dim) views of any strides whose head_dim axis is contiguous; the keys and values may be
// strided rows of the fused qkv projection.
#include <ATen/core/Tensor.h>

#include <cstring>
#include <utility>

#include "vec.h"

namespace tamer_cpu {

void store_kv_cache(const at::Tensor& key, const at::Tensor& value, at::Tensor& key_cache, at::Tensor& value_cache,
                    const at::Tensor& slot_mapping) {
  TORCH_CHECK(key.dim() == 3 && value.sizes() == key.sizes() && key_cache.dim() == 4 &&
                  value_cache.sizes() == key_cache.sizes(),
              "key/value must be (num_tokens, num_kv_heads, head_dim), the caches (num_blocks, block_size, "
              "num_kv_heads, head_dim)");
  TORCH_CHECK(key.size(1) == key_cache.size(2) && key.size(2) == key_cache.size(3), "heads and head_dim must match");
  TORCH_CHECK(value.scalar_type() == key.scalar_type() && value_cache.scalar_type() == key_cache.scalar_type(),
              "keys and values must share one dtype, and the two caches one");
  // The same dtype is copied as bytes; an fp32 model writing a bf16 cache rounds on the way in.
  const bool same_dtype = key.scalar_type() == key_cache.scalar_type();
  TORCH_CHECK(same_dtype || (key.scalar_type() == at::kFloat && key_cache.scalar_type() == at::kBFloat16),
              "a cache of another dtype than the keys must be bfloat16 under float32 keys, got ",
              key_cache.scalar_type(), " and ", key.scalar_type());
  TORCH_CHECK(key.stride(2) == 1 && value.stride(2) == 1 && key_cache.stride(3) == 1 && value_cache.stride(3) == 1,
              "the head_dim axes must be contiguous");
  TORCH_CHECK(slot_mapping.scalar_type() == at::kLong && slot_mapping.is_contiguous() &&
                  slot_mapping.size(0) == key.size(0),
              "slot_mapping must be contiguous int64, one slot per token");
  const int64_t num_tokens = key.size(0), num_kv_heads = key.size(1), head_dim = key.size(2);
  const int64_t block_size = key_cache.size(1), num_slots = key_cache.size(0) * block_size;
  const int64_t src_item = key.element_size(), dst_item = key_cache.element_size();
  const int64_t* slots = slot_mapping.data_ptr<int64_t>();
  auto copy_row = [&](char* dst, const char* src) {
    if (same_dtype) {
      std::memcpy(dst, src, head_dim * src_item);
    } else {
      const auto* from = reinterpret_cast<const float*>(src);
      auto* to = reinterpret_cast<c10::BFloat16*>(dst);
      for (int64_t d = 0; d < head_dim; ++d) store(to, d, from[d]);
    }
  };
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t slot = slots[t];
    if (slot < 0) continue;
    TORCH_CHECK(slot < num_slots, "slot ", slot, " is past the cache's ", num_slots, " slots");
    const int64_t block = slot / block_size, offset = slot % block_size;
    for (auto [src, cache] : {std::pair{&key, &key_cache}, std::pair{&value, &value_cache}}) {
      for (int64_t h = 0; h < num_kv_heads; ++h) {
        copy_row(static_cast<char*>(cache->data_ptr()) +
                     (block * cache->stride(0) + offset * cache->stride(1) + h * cache->stride(2)) * dst_item,
                 static_cast<const char*>(src->data_ptr()) + (t * src->stride(0) + h * src->stride(1)) * src_item);
      }
    }
  }
}

}  // namespace tamer_cpu
