// Resampling is a port of Pillow's ImagingResample for 8-bit images with the BILINEAR
// filter (libImaging/Resample.c): the same coefficients, the same 22-bit fixed point,
// the same horizontal-then-vertical order with an 8-bit intermediate. That makes the
// resize bit-exact with what torchvision's Resize does to a PIL image, so embeddings
// match the Python pipelines the reference figures come from.
#include "imgsearch/preprocess.h"

#include "imgsearch/error.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace imgsearch {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

// For each output pixel in [out_begin, out_end): the first input pixel and the
// fixed-point weights of the input pixels it mixes.
struct Coefficients {
  int ksize = 0;
  std::vector<int> first;   // per output pixel
  std::vector<int> count;   // per output pixel
  std::vector<std::int32_t> weights;  // ksize per output pixel
};

Coefficients compute_coefficients(int in_size, int out_size, int out_begin, int out_end) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // bilinear support is 1
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const int n = out_end - out_begin;
  c.first.resize(n);
  c.count.resize(n);
  c.weights.assign(static_cast<std::size_t>(n) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int i = 0; i < n; ++i) {
    const int xx = out_begin + i;
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bilinear_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[x] / ww : k[x];
      c.weights[static_cast<std::size_t>(i) * c.ksize + x] =
          static_cast<std::int32_t>(w < 0 ? -0.5 + w * (1 << kPrecisionBits) : 0.5 + w * (1 << kPrecisionBits));
    }
    c.first[i] = xmin;
    c.count[i] = xmax;
  }
  return c;
}

inline std::uint8_t clip8(std::int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Resizes `in` to out_w x out_h but computes only the window [x0, x0+w) x [y0, y0+h)
// of the result: what a center crop keeps.
Image resample_window(const Image& in, int out_w, int out_h, int x0, int y0, int w, int h) {
  const Coefficients vert = compute_coefficients(in.height, out_h, y0, y0 + h);
  const Coefficients horiz = compute_coefficients(in.width, out_w, x0, x0 + w);
  // Input rows the vertical pass reads.
  const int row_begin = vert.first.front();
  int row_end = row_begin;
  for (int i = 0; i < h; ++i) row_end = std::max(row_end, vert.first[i] + vert.count[i]);

  // Horizontal pass over those rows, into an 8-bit intermediate as Pillow does.
  const int rows = row_end - row_begin;
  std::vector<std::uint8_t> tmp(static_cast<std::size_t>(rows) * w * 3);
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* src = in.pixels.data() + static_cast<std::size_t>(row_begin + y) * in.width * 3;
    std::uint8_t* dst = tmp.data() + static_cast<std::size_t>(y) * w * 3;
    for (int x = 0; x < w; ++x) {
      const std::int32_t* k = horiz.weights.data() + static_cast<std::size_t>(x) * horiz.ksize;
      const std::uint8_t* s = src + static_cast<std::size_t>(horiz.first[x]) * 3;
      std::int32_t r = 1 << (kPrecisionBits - 1), g = r, b = r;
      for (int j = 0; j < horiz.count[x]; ++j) {
        r += s[j * 3 + 0] * k[j];
        g += s[j * 3 + 1] * k[j];
        b += s[j * 3 + 2] * k[j];
      }
      dst[x * 3 + 0] = clip8(r);
      dst[x * 3 + 1] = clip8(g);
      dst[x * 3 + 2] = clip8(b);
    }
  }

  Image out;
  out.width = w;
  out.height = h;
  out.pixels.resize(static_cast<std::size_t>(w) * h * 3);
  const std::size_t stride = static_cast<std::size_t>(w) * 3;
  std::vector<std::int32_t> acc(stride);
  for (int y = 0; y < h; ++y) {
    const std::int32_t* k = vert.weights.data() + static_cast<std::size_t>(y) * vert.ksize;
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int j = 0; j < vert.count[y]; ++j) {
      const std::uint8_t* s = tmp.data() + static_cast<std::size_t>(vert.first[y] - row_begin + j) * stride;
      const std::int32_t kj = k[j];
      for (std::size_t i = 0; i < stride; ++i) acc[i] += s[i] * kj;
    }
    std::uint8_t* dst = out.pixels.data() + static_cast<std::size_t>(y) * stride;
    for (std::size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i]);
  }
  return out;
}

// torchvision's Resize(int): the shorter side becomes `shorter`, the longer one is
// truncated, not rounded.
void shorter_side_size(int width, int height, int shorter, int& out_w, int& out_h) {
  if (width <= height) {
    out_w = shorter;
    out_h = static_cast<int>(static_cast<std::int64_t>(shorter) * height / width);
  } else {
    out_h = shorter;
    out_w = static_cast<int>(static_cast<std::int64_t>(shorter) * width / height);
  }
  out_w = std::max(out_w, 1);
  out_h = std::max(out_h, 1);
}

}  // namespace

Image resize_exact(const Image& image, int width, int height) {
  IMGSEARCH_CHECK(width > 0 && height > 0 && image.width > 0 && image.height > 0, ErrorKind::InvalidArgument,
                  "resize: bad size {}x{} -> {}x{}", image.width, image.height, width, height);
  if (width == image.width && height == image.height) return image;
  return resample_window(image, width, height, 0, 0, width, height);
}

Image resize_shorter_side(const Image& image, int shorter) {
  int w = 0, h = 0;
  shorter_side_size(image.width, image.height, shorter, w, h);
  return resize_exact(image, w, h);
}

namespace {

// Pixel value v of channel c, normalised: v * scale[c] + bias[c].
struct ChannelAffine {
  float scale[3], bias[3];
};
ChannelAffine channel_affine(const PreprocessConfig& config) {
  ChannelAffine a;
  for (int c = 0; c < 3; ++c) {
    a.scale[c] = 1.0f / (config.pixel_scale * config.std[c]);
    a.bias[c] = -config.mean[c] / config.std[c];
  }
  return a;
}

}  // namespace

void preprocess_whole(const Image& image, int longer_side, const PreprocessConfig& config, std::vector<float>& out,
                      int& height, int& width) {
  IMGSEARCH_CHECK(longer_side > 0 && image.width > 0 && image.height > 0, ErrorKind::InvalidArgument,
                  "preprocess: bad sizes");
  const double s = static_cast<double>(longer_side) / std::max(image.width, image.height);
  width = std::max(1, static_cast<int>(std::nearbyint(image.width * s)));
  height = std::max(1, static_cast<int>(std::nearbyint(image.height * s)));
  const Image resized = resize_exact(image, width, height);
  const std::size_t plane = static_cast<std::size_t>(width) * height;
  const std::size_t start = out.size();
  out.resize(start + 3 * plane);
  const ChannelAffine affine = channel_affine(config);
  for (int c = 0; c < 3; ++c) {
    float* dst = out.data() + start + c * plane;
    for (std::size_t i = 0; i < plane; ++i) dst[i] = resized.pixels[i * 3 + c] * affine.scale[c] + affine.bias[c];
  }
}

void preprocess(const Image& image, const PreprocessConfig& config, float* out) {
  const int size = config.input_size;
  IMGSEARCH_CHECK(size > 0 && config.resize > 0, ErrorKind::InvalidArgument, "preprocess: bad sizes");
  IMGSEARCH_CHECK(image.width > 0 && image.height > 0, ErrorKind::InvalidArgument, "preprocess: empty image");
  int rw = 0, rh = 0;
  shorter_side_size(image.width, image.height, config.resize, rw, rh);

  // torchvision's CenterCrop: offsets rounded half-to-even (Python's round); a crop
  // larger than the image pads with zeros.
  const int top = static_cast<int>(std::nearbyint((rh - size) / 2.0));
  const int left = static_cast<int>(std::nearbyint((rw - size) / 2.0));
  const int y0 = std::max(top, 0), x0 = std::max(left, 0);
  const int y1 = std::min(top + size, rh), x1 = std::min(left + size, rw);

  Image window;
  if (rw == image.width && rh == image.height) {
    window.width = x1 - x0;
    window.height = y1 - y0;
    window.pixels.resize(static_cast<std::size_t>(window.width) * window.height * 3);
    for (int y = 0; y < window.height; ++y)
      std::copy_n(image.pixels.data() + (static_cast<std::size_t>(y0 + y) * image.width + x0) * 3,
                  static_cast<std::size_t>(window.width) * 3, window.pixels.data() + static_cast<std::size_t>(y) * window.width * 3);
  } else {
    window = resample_window(image, rw, rh, x0, y0, x1 - x0, y1 - y0);
  }

  const ChannelAffine affine = channel_affine(config);
  const float* scale = affine.scale;
  const float* bias = affine.bias;
  const std::size_t plane = static_cast<std::size_t>(size) * size;
  for (int c = 0; c < 3; ++c) {
    float* dst = out + c * plane;
    const float pad = bias[c];  // a zero pixel, normalised
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        const int wy = y + top - y0, wx = x + left - x0;
        float v = pad;
        if (wy >= 0 && wy < window.height && wx >= 0 && wx < window.width)
          v = window.pixels[(static_cast<std::size_t>(wy) * window.width + wx) * 3 + c] * scale[c] + bias[c];
        dst[static_cast<std::size_t>(y) * size + x] = v;
      }
    }
  }
}

}  // namespace imgsearch
