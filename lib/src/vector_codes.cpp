#include "vector_codes.h"

#include "imgsearch/error.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace imgsearch {

const char* vector_codes_name(VectorCodes codes) {
  switch (codes) {
    case VectorCodes::F32: return "f32";
    case VectorCodes::F16: return "f16";
    case VectorCodes::Int8: return "int8";
  }
  return "?";
}

VectorCodes parse_vector_codes(const std::string& name) {
  for (const VectorCodes c : {VectorCodes::F32, VectorCodes::F16, VectorCodes::Int8})
    if (name == vector_codes_name(c)) return c;
  throw_error(ErrorKind::InvalidArgument, "unknown vector encoding '{}' (known: f32, f16, int8)", name);
}

VectorCodes automatic_vector_codes(VectorCodes current, std::size_t images, std::size_t int8_from) {
  return current == VectorCodes::F32 && images >= int8_from ? VectorCodes::Int8 : current;
}

namespace detail {

// Fabian Giesen's float_to_half_fast3_rtne.
std::uint16_t float_to_half(float value) {
  constexpr std::uint32_t f32_infinity = 255u << 23, f16_max = (127u + 16u) << 23;
  constexpr std::uint32_t denorm_magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  std::uint32_t f;
  std::memcpy(&f, &value, 4);
  const std::uint32_t sign = f & 0x80000000u;
  f ^= sign;
  std::uint16_t out;
  if (f >= f16_max) {
    out = f > f32_infinity ? 0x7e00 : 0x7c00;
  } else if (f < (113u << 23)) {  // a half subnormal or zero: let float addition round
    float ff, magic;
    std::memcpy(&ff, &f, 4);
    std::memcpy(&magic, &denorm_magic_bits, 4);
    ff += magic;
    std::memcpy(&f, &ff, 4);
    out = static_cast<std::uint16_t>(f - denorm_magic_bits);
  } else {
    const std::uint32_t mant_odd = (f >> 13) & 1;
    f += (static_cast<std::uint32_t>(15 - 127) << 23) + 0xfff;
    f += mant_odd;
    out = static_cast<std::uint16_t>(f >> 13);
  }
  return static_cast<std::uint16_t>(out | (sign >> 16));
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    const float v = std::ldexp(static_cast<float>(mant), -24);
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

float f16_dot_portable(const std::uint16_t* a, const std::uint16_t* b, std::size_t n) {
  float s = 0;
  for (std::size_t i = 0; i < n; ++i) s += half_to_float(a[i]) * half_to_float(b[i]);
  return s;
}

std::int32_t i8_dot_portable(const std::int8_t* a, const std::int8_t* b, std::size_t n) {
  std::int32_t s = 0;
  for (std::size_t i = 0; i < n; ++i) s += std::int32_t(a[i]) * std::int32_t(b[i]);
  return s;
}

// Per-function targets: the rest of the binary stays baseline x86-64, and these run only
// when CPUID says the instructions exist.
__attribute__((target("avx2,f16c,fma"))) float f16_dot_avx2(const std::uint16_t* a, const std::uint16_t* b,
                                                           std::size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    const __m256 a1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i + 8)));
    const __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i + 8)));
    acc0 = _mm256_fmadd_ps(a0, b0, acc0);
    acc1 = _mm256_fmadd_ps(a1, b1, acc1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc0 = _mm256_fmadd_ps(a0, b0, acc0);
  }
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  float sum = _mm_cvtss_f32(s);
  for (; i < n; ++i) sum += half_to_float(a[i]) * half_to_float(b[i]);
  return sum;
}

// GCC 12's AVX-512 headers trip its own -Wuninitialized (their _mm512_undefined_*
// placeholders, GCC bug 105593), reported where the intrinsics are inlined: silenced here only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC only; clang has no such group
#endif
__attribute__((target("avx512f"))) float f16_dot_avx512(const std::uint16_t* a, const std::uint16_t* b,
                                                       std::size_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    const __m512 b0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)));
    const __m512 a1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + 16)));
    const __m512 b1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i + 16)));
    acc0 = _mm512_fmadd_ps(a0, b0, acc0);
    acc1 = _mm512_fmadd_ps(a1, b1, acc1);
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 a0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    const __m512 b0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)));
    acc0 = _mm512_fmadd_ps(a0, b0, acc0);
  }
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += half_to_float(a[i]) * half_to_float(b[i]);
  return sum;
}

// Sign-extend int8 to int16, then multiply-add pairs into int32 (no overflow: at most
// 2 * 127 * 128 per pair, 65536 dims * 16384 in all).
__attribute__((target("avx2"))) std::int32_t i8_dot_avx2(const std::int8_t* a, const std::int8_t* b, std::size_t n) {
  __m256i acc = _mm256_setzero_si256();
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256i b16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a16, b16));
  }
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  std::int32_t sum = _mm_cvtsi128_si32(s);
  for (; i < n; ++i) sum += std::int32_t(a[i]) * std::int32_t(b[i]);
  return sum;
}

__attribute__((target("avx512f,avx512bw"))) std::int32_t i8_dot_avx512(const std::int8_t* a, const std::int8_t* b,
                                                                       std::size_t n) {
  __m512i acc = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i a16 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    const __m512i b16 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)));
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(a16, b16));
  }
  std::int32_t sum = _mm512_reduce_add_epi32(acc);
  for (; i < n; ++i) sum += std::int32_t(a[i]) * std::int32_t(b[i]);
  return sum;
}

#pragma GCC diagnostic pop

// Encoding kernels. The SIMD ones give the portable ones' bytes exactly: conversion and
// rounding are to nearest even in both, and the inputs are finite (load_index checks).
void f16_encode_portable(const float* v, std::size_t n, std::uint8_t* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint16_t h = float_to_half(v[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

void f16_decode_portable(const std::uint8_t* in, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, in + 2 * i, 2);
    out[i] = half_to_float(h);
  }
}

namespace {
// round(v * inv) clamped to +-127: the portable encoder, and the SIMD one's tail.
void i8_quantise(const float* v, std::size_t n, float inv, std::int8_t* out) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<std::int8_t>(std::clamp(std::nearbyint(v[i] * inv), -127.0f, 127.0f));
}
float i8_scale(float max_abs) { return max_abs > 0 ? max_abs / 127.0f : 0.0f; }
float i8_inverse_scale(float max_abs) { return max_abs > 0 ? 127.0f / max_abs : 0.0f; }
}  // namespace

float i8_encode_portable(const float* v, std::size_t n, std::int8_t* out) {
  float max_abs = 0;
  for (std::size_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::fabs(v[i]));
  i8_quantise(v, n, i8_inverse_scale(max_abs), out);
  return i8_scale(max_abs);
}

__attribute__((target("avx2,f16c"))) void f16_encode_avx2(const float* v, std::size_t n, std::uint8_t* out) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(v + i), _MM_FROUND_TO_NEAREST_INT));
  f16_encode_portable(v + i, n - i, out + 2 * i);
}

__attribute__((target("avx2,f16c"))) void f16_decode_avx2(const std::uint8_t* in, std::size_t n, float* out) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i))));
  f16_decode_portable(in + 2 * i, n - i, out + i);
}

__attribute__((target("avx2"))) float i8_encode_avx2(const float* v, std::size_t n, std::int8_t* out) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(v + i), abs_mask));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  float max_abs = _mm_cvtss_f32(h);
  for (; i < n; ++i) max_abs = std::max(max_abs, std::fabs(v[i]));
  const float inv = i8_inverse_scale(max_abs);
  const __m256 scale = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  auto quantise = [&](const float* p) {
    __m256 q = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(p), scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(q, lo), hi));
  };
  // 32 at a time: the packs work within 128-bit lanes, the permute puts the lanes back in order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (i = 0; i + 32 <= n; i += 32) {
    const __m256i ab = _mm256_packs_epi32(quantise(v + i), quantise(v + i + 8));
    const __m256i cd = _mm256_packs_epi32(quantise(v + i + 16), quantise(v + i + 24));
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), bytes);
  }
  i8_quantise(v + i, n - i, inv, out + i);
  return i8_scale(max_abs);
}

// F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c".
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
}
bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && cpu_has_f16c() && __builtin_cpu_supports("fma"); }
bool cpu_has_avx512() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"); }

namespace {

using F16Dot = float (*)(const std::uint16_t*, const std::uint16_t*, std::size_t);
using I8Dot = std::int32_t (*)(const std::int8_t*, const std::int8_t*, std::size_t);
using F16Encode = void (*)(const float*, std::size_t, std::uint8_t*);
using I8Encode = float (*)(const float*, std::size_t, std::int8_t*);
using F16Decode = void (*)(const std::uint8_t*, std::size_t, float*);
struct Kernels {
  F16Dot f16;
  I8Dot i8;
  const char* name;
  F16Encode f16_encode;
  I8Encode i8_encode;
  F16Decode f16_decode;
};
const Kernels& kernels() {
  static const Kernels k =
      cpu_has_avx512()
          ? Kernels{f16_dot_avx512, i8_dot_avx512, "avx512", f16_encode_avx2, i8_encode_avx2, f16_decode_avx2}
      : cpu_has_avx2()
          ? Kernels{f16_dot_avx2, i8_dot_avx2, "avx2", f16_encode_avx2, i8_encode_avx2, f16_decode_avx2}
          : Kernels{f16_dot_portable, i8_dot_portable, "portable", f16_encode_portable, i8_encode_portable,
                    f16_decode_portable};
  return k;
}

// What hnswlib hands back to the distance function: the dimension and the kernel.
struct Param {
  std::size_t dim;
  F16Dot f16;
  I8Dot i8;
};

float f32_distance(const void* a, const void* b, const void* p) {
  const auto* x = static_cast<const float*>(a);
  const auto* y = static_cast<const float*>(b);
  float s = 0;
  for (std::size_t i = 0, n = static_cast<const Param*>(p)->dim; i < n; ++i) s += x[i] * y[i];
  return 1.0f - s;
}
float f16_distance(const void* a, const void* b, const void* p) {
  const auto* param = static_cast<const Param*>(p);
  return 1.0f - param->f16(static_cast<const std::uint16_t*>(a), static_cast<const std::uint16_t*>(b), param->dim);
}
// int8 code: the float scale, then dim int8 values; the vector is scale * values.
float i8_distance(const void* a, const void* b, const void* p) {
  const auto* param = static_cast<const Param*>(p);
  float sa, sb;
  std::memcpy(&sa, a, 4);
  std::memcpy(&sb, b, 4);
  const std::int32_t dot = param->i8(static_cast<const std::int8_t*>(a) + 4, static_cast<const std::int8_t*>(b) + 4, param->dim);
  return 1.0f - sa * sb * static_cast<float>(dot);
}

class Encoding : public CodeEncoding {
 public:
  Encoding(VectorCodes codes, int dim) : codes_(codes), dim_(dim), param_{static_cast<std::size_t>(dim), kernels().f16, kernels().i8} {
    IMGSEARCH_CHECK(dim > 0 && dim <= (1 << 16), ErrorKind::InvalidArgument, "vector encoding: bad dimension {}", dim);
  }
  VectorCodes codes() const override { return codes_; }
  int dim() const override { return dim_; }
  // Rounded up to 4 bytes: hnswlib stores each node's code just before its next link list,
  // which it reads as u32s, so an odd dimension would misalign every link list after it.
  std::size_t code_size() const override {
    const std::size_t d = static_cast<std::size_t>(dim_);
    switch (codes_) {
      case VectorCodes::F32: return 4 * d;
      case VectorCodes::F16: return (2 * d + 3) / 4 * 4;
      case VectorCodes::Int8: return 4 + (d + 3) / 4 * 4;
    }
    return 0;
  }
  void encode(const float* v, std::uint8_t* code) const override {
    const std::size_t used = codes_ == VectorCodes::F16 ? 2 * std::size_t(dim_) : 4 + std::size_t(dim_);
    if (codes_ != VectorCodes::F32) std::memset(code + used, 0, code_size() - used);  // padding
    switch (codes_) {
      case VectorCodes::F32: std::memcpy(code, v, 4 * std::size_t(dim_)); return;
      case VectorCodes::F16: kernels().f16_encode(v, std::size_t(dim_), code); return;
      case VectorCodes::Int8: {
        const float scale = kernels().i8_encode(v, std::size_t(dim_), reinterpret_cast<std::int8_t*>(code + 4));
        std::memcpy(code, &scale, 4);
        return;
      }
    }
  }
  void decode(const std::uint8_t* code, float* v) const override {
    switch (codes_) {
      case VectorCodes::F32: std::memcpy(v, code, 4 * std::size_t(dim_)); return;
      case VectorCodes::F16: kernels().f16_decode(code, std::size_t(dim_), v); return;
      case VectorCodes::Int8: {
        float scale;
        std::memcpy(&scale, code, 4);
        for (int i = 0; i < dim_; ++i) v[i] = scale * static_cast<float>(static_cast<std::int8_t>(code[4 + i]));
        return;
      }
    }
  }
  float distance(const std::uint8_t* a, const std::uint8_t* b) const override { return hnsw_distance()(a, b, &param_); }
  CodeDistance hnsw_distance() const override {
    switch (codes_) {
      case VectorCodes::F32: return f32_distance;
      case VectorCodes::F16: return f16_distance;
      case VectorCodes::Int8: return i8_distance;
    }
    return f32_distance;
  }
  const void* hnsw_param() const override { return &param_; }

 private:
  VectorCodes codes_;
  int dim_;
  Param param_;
};

}  // namespace

const char* code_kernels_name() { return kernels().name; }
void f16_encode(const float* v, std::size_t n, std::uint8_t* out) { kernels().f16_encode(v, n, out); }
void f16_decode(const std::uint8_t* in, std::size_t n, float* out) { kernels().f16_decode(in, n, out); }

std::unique_ptr<CodeEncoding> make_code_encoding(VectorCodes codes, int dim) { return std::make_unique<Encoding>(codes, dim); }

}  // namespace detail

std::unique_ptr<VectorEncoding> make_vector_encoding(VectorCodes codes, int dim) {
  return detail::make_code_encoding(codes, dim);
}

}  // namespace imgsearch
