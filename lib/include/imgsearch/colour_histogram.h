// A colour histogram of a decoded image, computed at indexing time beside the CNN vector
// (stored in the index's optional COLRHIST section, docs/formats.md). ImageNet CNN
// features carry little colour; a learned projection can take the histogram as extra
// input (`learn --colour`, refinement.h) when the labels are about colour.
#pragma once

#include "imgsearch/image.h"

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace imgsearch {

// Hue x saturation x value bins for chromatic pixels, then grey levels for achromatic
// ones (low saturation or dark): 18 x 3 x 2 + 6.
constexpr int kColourHues = 18, kColourSaturations = 3, kColourValues = 2, kColourGreys = 6;
constexpr int kColourBins = kColourHues * kColourSaturations * kColourValues + kColourGreys;  // 114

// The bin a pixel falls in, or -1 for near-white (the product-photo background).
int colour_bin(std::uint8_t r, std::uint8_t g, std::uint8_t b);

// kColourBins floats summing to 1 (L1): the share of the image's pixels in each bin,
// sampled on a grid of at most about 128 x 128 pixels. Near-white pixels are left out
// (white studio backgrounds would otherwise dominate every histogram) unless they are
// nearly the whole image (a white object on white). Throws Error(InvalidArgument) for an
// empty image.
std::vector<float> colour_histogram(const Image& image);

// Histograms for files already indexed without them (no model involved): decodes each
// file with `options`, `threads` workers (0 = all cores); on_result runs on the calling
// thread, in completion order, with an empty error on success. Stops early when *cancel
// becomes true.
void compute_colour_histograms(const std::vector<std::string>& paths, const DecodeOptions& options, int threads,
                               const std::atomic<bool>* cancel,
                               const std::function<void(std::size_t index, const std::vector<float>& histogram,
                                                        const std::string& error)>& on_result);

}  // namespace imgsearch
