// The compact encodings behind `index --vectors` (imgsearch/vector_encoding.h) and their
// SIMD dot-product kernels. hnswlib may be included by one translation unit only
// (index_graph.h), so the hnswlib space is a thin adapter in index.cpp over CodeEncoding's
// distance function and parameter.
#pragma once

#include "imgsearch/vector_encoding.h"

#include <cstddef>
#include <cstdint>

namespace imgsearch::detail {

// hnswlib's DISTFUNC<float>: (code a, code b, parameter).
using CodeDistance = float (*)(const void*, const void*, const void*);

class CodeEncoding : public VectorEncoding {
 public:
  // The function and parameter hnswlib calls on two codes: 1 - dot.
  virtual CodeDistance hnsw_distance() const = 0;
  virtual const void* hnsw_param() const = 0;
};
std::unique_ptr<CodeEncoding> make_code_encoding(VectorCodes codes, int dim);

// IEEE half precision, round to nearest even (overflow to infinity; the vectors encoded
// are unit length, so it never overflows).
std::uint16_t float_to_half(float f);
float half_to_float(std::uint16_t h);

// Kernels, exposed for the tests that compare them: each SIMD one may be called only when
// its cpu_has_*() is true. n is any length (tails are handled).
float f16_dot_portable(const std::uint16_t* a, const std::uint16_t* b, std::size_t n);
float f16_dot_avx2(const std::uint16_t* a, const std::uint16_t* b, std::size_t n);    // AVX2 + F16C + FMA
float f16_dot_avx512(const std::uint16_t* a, const std::uint16_t* b, std::size_t n);  // AVX-512F
std::int32_t i8_dot_portable(const std::int8_t* a, const std::int8_t* b, std::size_t n);
std::int32_t i8_dot_avx2(const std::int8_t* a, const std::int8_t* b, std::size_t n);    // AVX2
std::int32_t i8_dot_avx512(const std::int8_t* a, const std::int8_t* b, std::size_t n);  // AVX-512F + BW
// Encoding kernels: f16 rounds to nearest even; int8 writes round(v * 127 / max|v|) and
// returns the scale max|v| / 127 (0 for a zero vector). The AVX2 ones give the same bytes.
void f16_encode_portable(const float* v, std::size_t n, std::uint8_t* out);  // 2n bytes, little-endian halves
void f16_encode_avx2(const float* v, std::size_t n, std::uint8_t* out);  // AVX2 + F16C
float i8_encode_portable(const float* v, std::size_t n, std::int8_t* out);
float i8_encode_avx2(const float* v, std::size_t n, std::int8_t* out);  // AVX2
void f16_decode_portable(const std::uint8_t* in, std::size_t n, float* out);
void f16_decode_avx2(const std::uint8_t* in, std::size_t n, float* out);  // F16C
// The fastest of each this CPU has: what index files with binary16 rows are written and
// read with (docs/formats.md, "rows").
void f16_encode(const float* v, std::size_t n, std::uint8_t* out);
void f16_decode(const std::uint8_t* in, std::size_t n, float* out);
bool cpu_has_avx2();    // AVX2, F16C and FMA
bool cpu_has_avx512();  // AVX-512F and BW
// The kernel set chosen at run time: "avx512", "avx2" or "portable".
const char* code_kernels_name();

}  // namespace imgsearch::detail
