// How an index stores the vectors its graph searches (`index --vectors`): float32 as the
// model gives them, or a compact code (FAISS-style: a fixed-size code per vector and a
// distance computed on codes). With a compact code the graph ranks candidates on codes and
// the final beam is rescored with the exact float32 vectors of the index file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace imgsearch {

enum class VectorCodes {
  F32,   // float32, 4 bytes a dimension (the default; files as before)
  F16,   // IEEE half precision, 2 bytes a dimension
  Int8,  // symmetric per-vector scale: a float scale, then one int8 a dimension
};

// "f32", "f16", "int8".
const char* vector_codes_name(VectorCodes codes);
// Parses a name vector_codes_name() gives; throws Error(InvalidArgument) otherwise.
VectorCodes parse_vector_codes(const std::string& name);

// `index --vectors auto`, the default: float32 rows until an index reaches `int8_from`
// images, int8 codes from there (docs/benchmarks.md, "The default encoding"). Returns the
// encoding an index with `current` codes should have at `images` images. It never goes
// back (an index that shrinks keeps int8) and leaves f16 alone; an encoding a user chose
// is the caller's to keep (ImageIndex::vector_codes_chosen).
constexpr std::size_t kDefaultInt8FromImages = 50000;
VectorCodes automatic_vector_codes(VectorCodes current, std::size_t images,
                                   std::size_t int8_from = kDefaultInt8FromImages);

class VectorEncoding {
 public:
  virtual ~VectorEncoding() = default;
  virtual VectorCodes codes() const = 0;
  std::string name() const { return vector_codes_name(codes()); }
  virtual int dim() const = 0;
  virtual std::size_t code_size() const = 0;  // bytes per vector
  // `v`: dim() floats, L2-normalised (any finite values are accepted).
  virtual void encode(const float* v, std::uint8_t* code) const = 0;
  virtual void decode(const std::uint8_t* code, float* v) const = 0;
  // 1 - the inner product of the two vectors the codes stand for (hnswlib's InnerProduct
  // distance), by the fastest kernel this CPU has (AVX-512, AVX2+F16C, or portable).
  virtual float distance(const std::uint8_t* a, const std::uint8_t* b) const = 0;
};

std::unique_ptr<VectorEncoding> make_vector_encoding(VectorCodes codes, int dim);

}  // namespace imgsearch
