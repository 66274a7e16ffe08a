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

// The luminance (BT.601) of `image` with uniform borders trimmed, area-averaged to 32x32
// (row-major). A border is a run of rows or columns at an edge whose every pixel is
// within a few grey levels of the edge's own level; at most 40 % of a side is trimmed.
CropThumbnail crop_thumbnail(const Image& image);

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
};

// Best NCC of either thumbnail, shrunk, against a window of the other. Stops early once
// `enough` is reached (the answer is then at least `enough`, not necessarily the best).
// Thumbnails with almost no contrast (standard deviation under 4 grey levels) give -1.
CropMatch match_crop_thumbnails(const std::uint8_t* a, const std::uint8_t* b, const CropMatchOptions& options = {},
                                float enough = 2.0f);

}  // namespace imgsearch
