// Helpers shared by the CPU kernels: bf16 <-> fp32 loads and stores and exp, one value at a time, and `Vec`,
// the vector type of the instruction set the build targets (-march=native): sixteen fp32 lanes on AVX-512,
// eight on AVX2 with FMA. The kernels write their vector paths once, against Vec (under TAMER_VEC), beside a
// portable scalar path for the values a vector does not cover and for machines with neither instruction set.
#pragma once

#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace tamer_cpu {

inline float load(const float* p, int64_t i) { return p[i]; }

inline float load(const c10::BFloat16* p, int64_t i) {
  uint32_t bits = static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(p)[i]) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

inline void store(float* p, int64_t i, float value) { p[i] = value; }

inline void store(c10::BFloat16* p, int64_t i, float value) { p[i] = static_cast<c10::BFloat16>(value); }

// The value as the tensor's dtype holds it (bf16 rounds; fp32 is unchanged), back in fp32.
inline float round_to(float value, const float*) { return value; }

inline float round_to(float value, const c10::BFloat16*) {
  return static_cast<float>(static_cast<c10::BFloat16>(value));
}

// exp(x) (Cephes expf: Cody-Waite range reduction, degree-6 polynomial, about 1 ulp) for x in [-87, 88];
// inputs outside are clamped there (about 1e-38 and 1.7e38).
// Its constants, shared with the vector version below (exp_vec): log2(e), ln 2 in a high and a low part,
// and the polynomial's coefficients from the highest degree down.
constexpr float kLog2E = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;
constexpr float kExpPoly[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                              1.6666665459e-1f, 5.0000001201e-1f};

inline float exp_clamped(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(x * kLog2E + 0.5f);  // x / ln 2, rounded
  const float r = (x - n * kLn2High) - n * kLn2Low;  // x - n ln 2, in two steps
  float p = kExpPoly[0];
  for (int i = 1; i < 6; ++i) p = p * r + kExpPoly[i];
  const float y = p * r * r + r + 1.0f;
  const int32_t exponent_bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float two_n;
  std::memcpy(&two_n, &exponent_bits, sizeof(two_n));
  return y * two_n;
}

#ifdef __AVX512F__
#define TAMER_VEC 1
struct Vec {
  using reg = __m512;
  static constexpr int kLanes = 16;

  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }  // a * b + c
  static reg fnmadd(reg a, reg b, reg c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a * b
  static reg round(reg x) {  // to the nearest integer, ties to even
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static reg pow2(reg n) {  // 2^n for whole n in [-126, 127]: n + 127 becomes the float's exponent bits
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  static float reduce_add(reg x) { return _mm512_reduce_add_ps(x); }
  static float reduce_max(reg x) { return _mm512_reduce_max_ps(x); }

  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg load(const c10::BFloat16* p) {  // bf16 -> fp32: the 16 bits become the high half of the float
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
  }
  static void store(float* p, reg x) { _mm512_storeu_ps(p, x); }
  // fp32 -> bf16, rounded as c10::BFloat16 rounds one value: to nearest, ties to even; NaN to the quiet NaN 0x7FC0.
  static void store(c10::BFloat16* p, reg x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    rounded = _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(rounded));
  }
  static void store_first(float* p, reg x, int64_t m) {  // lanes 0 .. m - 1 only, m <= kLanes
    _mm512_mask_storeu_ps(p, m >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << m) - 1), x);
  }

  // Lane i of the result = the sum of the sixteen lanes of x[i]. Sixteen horizontal sums at once in 45 shuffles
  // and adds (pairs within 128-bit lanes, then 64-bit pairs, then across 128-bit lanes) instead of about 8 each.
  static reg transpose_sum(const reg* x) {
    reg y[8], z[4], u[2];
    for (int i = 0; i < 8; ++i)  // per 128-bit lane: [a, b, a, b], partial sums of x[2i] (a) and x[2i + 1] (b)
      y[i] = _mm512_add_ps(_mm512_unpacklo_ps(x[2 * i], x[2 * i + 1]), _mm512_unpackhi_ps(x[2 * i], x[2 * i + 1]));
    for (int i = 0; i < 4; ++i) {  // per 128-bit lane: partial sums of x[4i], x[4i + 1], x[4i + 2], x[4i + 3]
      const __m512d y0 = _mm512_castps_pd(y[2 * i]), y1 = _mm512_castps_pd(y[2 * i + 1]);
      z[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(y0, y1)), _mm512_castpd_ps(_mm512_unpackhi_pd(y0, y1)));
    }
    for (int i = 0; i < 2; ++i)  // 128-bit lanes: x[8i .. 8i+3] twice (halves of the sum), x[8i+4 .. 8i+7] twice
      u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(z[2 * i], z[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm512_shuffle_f32x4(z[2 * i], z[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
};

#elif defined(__AVX2__) && defined(__FMA__)
#define TAMER_VEC 1
struct Vec {
  using reg = __m256;
  static constexpr int kLanes = 8;

  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float x) { return _mm256_set1_ps(x); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }  // a * b + c
  static reg fnmadd(reg a, reg b, reg c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a * b
  static reg round(reg x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg pow2(reg n) {  // 2^n for whole n in [-126, 127]: n + 127 becomes the float's exponent bits
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  static float reduce_add(reg x) {  // lane by lane, in order
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, x);
    float sum = 0.0f;
    for (int i = 0; i < 8; ++i) sum += lanes[i];
    return sum;
  }
  static float reduce_max(reg x) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, x);
    return *std::max_element(lanes, lanes + 8);
  }

  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg load(const c10::BFloat16* p) {  // bf16 -> fp32: the 16 bits become the high half of the float
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
  }
  static void store(float* p, reg x) { _mm256_storeu_ps(p, x); }
  // fp32 -> bf16, rounded as the AVX-512 version (and c10::BFloat16) rounds: to nearest, ties to even; NaN to
  // the quiet NaN 0x7FC0.
  static void store(c10::BFloat16* p, reg x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    rounded = _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7FC0), is_nan);
    // 32 -> 16 bits: packus packs within 128-bit halves (values here fit in 16 bits, so nothing saturates),
    // then the two 64-bit results are brought together.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(rounded, _mm256_setzero_si256()),
                                                    _MM_SHUFFLE(3, 1, 2, 0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static void store_first(float* p, reg x, int64_t m) {  // lanes 0 .. m - 1 only, m <= kLanes
    if (m == 8) {
      _mm256_storeu_ps(p, x);
      return;
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, x);
    std::memcpy(p, lanes, m * sizeof(float));
  }

  // Lane i of the result = the sum of the eight lanes of x[i]: two rounds of pairwise horizontal adds within
  // 128-bit lanes, then the two halves added across.
  static reg transpose_sum(const reg* x) {
    const __m256 t0 = _mm256_hadd_ps(x[0], x[1]), t1 = _mm256_hadd_ps(x[2], x[3]);
    const __m256 t2 = _mm256_hadd_ps(x[4], x[5]), t3 = _mm256_hadd_ps(x[6], x[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);  // x0..x3 | x4..x7, per 128-bit half
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
  }
};
#endif

#ifdef TAMER_VEC
// exp_clamped on Vec::kLanes lanes: the same clamp, reduction and polynomial.
inline Vec::reg exp_vec(Vec::reg x) {
  x = Vec::min(Vec::max(x, Vec::set1(-87.0f)), Vec::set1(88.0f));
  const Vec::reg n = Vec::round(Vec::mul(x, Vec::set1(kLog2E)));
  Vec::reg r = Vec::fnmadd(n, Vec::set1(kLn2High), x);
  r = Vec::fnmadd(n, Vec::set1(kLn2Low), r);
  Vec::reg p = Vec::set1(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = Vec::fmadd(p, r, Vec::set1(kExpPoly[i]));
  const Vec::reg y = Vec::fmadd(p, Vec::mul(r, r), Vec::add(r, Vec::set1(1.0f)));
  return Vec::mul(y, Vec::pow2(n));
}
#endif

}  // namespace tamer_cpu
