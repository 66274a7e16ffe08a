// 64-bit DCT perceptual hashes (pHash) of an image's luminance, for near-duplicate
// detection: robust to resizing, re-compression, blur, brightness/contrast/gamma and grey
// conversion, but not to crops. The hashes of the image's seven mirrored and rotated
// versions come from the same DCT (a flip only changes the signs of odd frequencies, a
// transpose swaps the axes), so they cost almost nothing extra.
#pragma once

#include "imgsearch/image.h"

#include <array>
#include <cstdint>

namespace imgsearch {

// The dihedral group: which way a copy may have been flipped or turned by 90 degrees.
enum class Orientation : int {
  Identity = 0,
  Mirror = 1,         // left-right
  Flip = 2,           // upside down
  Rotate180 = 3,
  Transpose = 4,      // along the main diagonal
  Rotate90 = 5,       // clockwise
  Rotate270 = 6,      // counter-clockwise
  AntiTranspose = 7,  // along the other diagonal
};
constexpr int kOrientations = 8;
const char* orientation_name(Orientation o);

// hashes[o] is the pHash of the image turned by orientation o.
using OrientedHashes = std::array<std::uint64_t, kOrientations>;

// Luminance (BT.601), box-averaged to 32x32, 2-D DCT-II, the 8x8 lowest frequencies;
// bit i (row-major over the 8x8 block) is set when that coefficient exceeds the median of
// the 63 non-DC ones. Bit 0 (DC) is always 0, so hashes carry 63 bits of information.
// Throws Error(InvalidArgument) on an empty image.
OrientedHashes perceptual_hashes(const Image& image);
inline std::uint64_t perceptual_hash(const Image& image) { return perceptual_hashes(image)[0]; }

inline int hamming_distance(std::uint64_t a, std::uint64_t b) { return __builtin_popcountll(a ^ b); }

}  // namespace imgsearch
