// AVX-512 emulated in software, so that vec.h's sixteen-lane Vec builds and runs on a machine without AVX-512
// (tests/kernels/test_cpu_kernels_avx512_emulated.py; never part of the kernels' own build). SIMDe provides the
// intrinsics under their usual names; the few that SIMDe 0.7.4 lacks are written here lane by lane.
#pragma once
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <cmath>
#ifndef __AVX512F__
#define __AVX512F__ 1
#endif

static inline simde__m256i emu_cvtepi32_epi16(simde__m512i a) {
  int32_t in[16]; int16_t out[16]; simde_mm512_storeu_si512(in, a);
  for (int i = 0; i < 16; ++i) out[i] = static_cast<int16_t>(in[i]);
  return simde_mm256_loadu_si256(out);
}
static inline simde__m512i emu_cvtepu16_epi32(simde__m256i a) {
  uint16_t in[16]; int32_t out[16]; simde_mm256_storeu_si256(in, a);
  for (int i = 0; i < 16; ++i) out[i] = in[i];
  return simde_mm512_loadu_si512(out);
}
static inline simde__m512i emu_cvtps_epi32(simde__m512 a) {
  float in[16]; int32_t out[16]; simde_mm512_storeu_ps(in, a);
  for (int i = 0; i < 16; ++i) out[i] = static_cast<int32_t>(std::nearbyint(in[i]));
  return simde_mm512_loadu_si512(out);
}
static inline void emu_mask_storeu_ps(void* p, simde__mmask16 k, simde__m512 a) {
  float in[16]; simde_mm512_storeu_ps(in, a);
  for (int i = 0; i < 16; ++i) if ((k >> i) & 1) static_cast<float*>(p)[i] = in[i];
}
static inline float emu_reduce_add_ps(simde__m512 a) {  // the tree GCC's _mm512_reduce_add_ps uses: halves, then halves
  float v[16]; simde_mm512_storeu_ps(v, a);
  for (int w = 8; w >= 1; w /= 2) for (int i = 0; i < w; ++i) v[i] += v[i + w];
  return v[0];
}
static inline float emu_reduce_max_ps(simde__m512 a) {
  float v[16]; simde_mm512_storeu_ps(v, a);
  float m = v[0]; for (int i = 1; i < 16; ++i) m = v[i] > m ? v[i] : m;
  return m;
}
#define _mm512_cvtepi32_epi16 emu_cvtepi32_epi16
#define _mm512_cvtepu16_epi32 emu_cvtepu16_epi32
#define _mm512_cvtps_epi32 emu_cvtps_epi32
#define _mm512_mask_storeu_ps emu_mask_storeu_ps
#define _mm512_reduce_add_ps emu_reduce_add_ps
#define _mm512_reduce_max_ps emu_reduce_max_ps
#define _mm512_shuffle_f32x4 simde_mm512_shuffle_f32x4
