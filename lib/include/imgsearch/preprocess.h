// Preprocessing: an RGB image to the normalised CHW float tensor a model expects.
#pragma once

#include "imgsearch/image.h"

#include <array>
#include <vector>

namespace imgsearch {

struct PreprocessConfig {
  int resize = 256;      // shorter side is resized to this (antialiased bilinear, as PIL)
  int input_size = 224;  // then a centered square crop of this size
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
  float pixel_scale = 255.0f;  // pixels are divided by this before mean/std
};

// Shorter side to `shorter`, keeping the aspect ratio as torchvision's Resize(int) does.
// Antialiased bilinear (a triangle filter widened by the scale factor), like PIL's
// Image.resize(BILINEAR), which is what torchvision applies to PIL images.
Image resize_shorter_side(const Image& image, int shorter);
Image resize_exact(const Image& image, int width, int height);

// The whole image with its longer side resized to `longer_side` (aspect kept, sizes
// rounded as PIL's resize((round(w * s), round(h * s)))), normalised as preprocess() does:
// appends 3 * height * width floats (C, H, W) to `out` and sets height and width.
void preprocess_whole(const Image& image, int longer_side, const PreprocessConfig& config, std::vector<float>& out,
                      int& height, int& width);

// Writes 3 * input_size * input_size floats, channel-major (C, H, W), into `out`.
void preprocess(const Image& image, const PreprocessConfig& config, float* out);

}  // namespace imgsearch
