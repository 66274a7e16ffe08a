// dedup's crop signal: a 32x32 grey thumbnail of each image with its uniform borders
// (frames, letterbox bars) trimmed, stored in the index's optional DUPTHUMB section, and
// a matcher that slides one thumbnail, shrunk to 55-100 %, over the other and reports the
// best normalised cross-correlation. A 70-90 % crop of a photo, or the photo inside a
// screenshot, is such a window of the other image. docs/dedup.md.
#pragma once

#include "imgsearch/image.h"

#include <array>
#include <cstdint>
#include <vector>

namespace imgsearch {

constexpr int kCropThumbSide = 32;
constexpr int kCropThumbPixels = kCropThumbSide * kCropThumbSide;
using CropThumbnail = std::array<std::uint8_t, kCropThumbPixels>;
// The finer thumbnail dedup makes from the files for pairs the 32x32 one leaves in doubt.
constexpr int kFineCropThumbSide = 64;
constexpr int kFineCropThumbPixels = kFineCropThumbSide * kFineCropThumbSide;

// The luminance (BT.601) of `image` with uniform borders trimmed, area-averaged to 32x32
// (row-major). A border is a run of rows or columns at an edge whose every pixel is
// within a few grey levels of the edge's own level; at most 40 % of a side is trimmed.
CropThumbnail crop_thumbnail(const Image& image);
// The 32x32 thumbnail from the 64x64 one (the mean of each 2x2 block, rounded): the same
// area average, up to rounding, as crop_thumbnail(image) itself.
CropThumbnail coarse_crop_thumbnail(const std::uint8_t* fine);
// The same at side x side, side kCropThumbSide or kFineCropThumbSide (Error(InvalidArgument) else).
std::vector<std::uint8_t> crop_thumbnail(const Image& image, int side);

struct CropMatchOptions {
  float min_scale = 0.55f;  // smallest window, as a fraction of the other thumbnail's side (>= 0.5)
  int scales = 15;          // window sizes tried from 100 % down to min_scale
  int positions = 5;        // a positions x positions grid per size and direction...
  int refine = 3;           // ...and a local search from the best `refine` of those
  bool half_pixels = true;  // the local search ends in half-pixel steps
  bool rotations = false;   // also the inner thumbnail turned by 90, 180 and 270 degrees
};

struct CropMatch {
  float ncc = -1;      // best normalised cross-correlation found, -1..1 (-1: flat image)
  float scale = 0;     // the window's side over the thumbnail's
  bool a_inside_b = false;  // the first thumbnail was the window (a is the crop of b)
  int rotation = 0;    // quarter turns applied to the inner thumbnail
  int side = 0;        // where it was found: thumbnails `side` cells wide,
  int window = 0;      // a window `window` cells wide,
  int x2 = 0, y2 = 0;  // at (x2, y2) half cells in the outer thumbnail
};

// Best NCC of either thumbnail, shrunk, against a window of the other. Stops early once
// `enough` is reached (the answer is then at least `enough`, not necessarily the best).
// Thumbnails with almost no contrast (standard deviation under 4 grey levels) give -1.
CropMatch match_crop_thumbnails(const std::uint8_t* a, const std::uint8_t* b, const CropMatchOptions& options = {},
                                float enough = 2.0f);
// From `coarse`, a match of smaller thumbnails of the same two images, the best NCC of
// side x side ones near the same window (same direction and turn, a hill climb from the
// scaled position, window sizes within a cell or two). Far cheaper than a search.
CropMatch refine_crop_match(const std::uint8_t* a, const std::uint8_t* b, int side, const CropMatch& coarse,
                            const CropMatchOptions& options = {}, float enough = 2.0f);
// The NCC at the window `at` (a match of these two side x side thumbnails) once the
// `drop` fraction (0..0.5) of cells that disagree most is left out: a text band or a logo
// over one image covers part of the window. -1 when `at` is not a window of them.
float occluded_crop_ncc(const std::uint8_t* a, const std::uint8_t* b, int side, const CropMatch& at, float drop);
// The same for two side x side thumbnails (kCropThumbSide or kFineCropThumbSide).
CropMatch match_crop_thumbnails(const std::uint8_t* a, const std::uint8_t* b, int side, const CropMatchOptions& options,
                                float enough = 2.0f);

}  // namespace imgsearch
