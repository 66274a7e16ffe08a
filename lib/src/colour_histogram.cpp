#include "imgsearch/colour_histogram.h"

#include "imgsearch/error.h"
#include "map_files.h"

#include <algorithm>
#include <cmath>

namespace imgsearch {

namespace {
// Near-white: every channel at least this bright (JPEG noise on a white studio backdrop
// stays above it).
constexpr int kWhiteMin = 232;
// Below this saturation, or this value, a pixel's hue means little: a grey level.
constexpr float kMinSaturation = 0.2f, kMinValue = 0.2f;
// A light, uniform border is the backdrop too (some studios shoot on light grey): pixels
// within this of its colour (per channel) are left out with the near-white ones.
constexpr int kBackdropTolerance = 12;
}  // namespace

int colour_bin(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  const int mx = std::max({r, g, b}), mn = std::min({r, g, b});
  if (mn >= kWhiteMin) return -1;
  const float v = mx / 255.0f;
  const float s = mx == 0 ? 0.0f : static_cast<float>(mx - mn) / mx;
  constexpr int kChromatic = kColourHues * kColourSaturations * kColourValues;
  if (s < kMinSaturation || v < kMinValue) return kChromatic + std::min(kColourGreys - 1, static_cast<int>(v * kColourGreys));
  float h;  // degrees, 0..360
  const float d = static_cast<float>(mx - mn);
  if (mx == r) h = 60.0f * std::fmod((g - b) / d + 6.0f, 6.0f);
  else if (mx == g) h = 60.0f * ((b - r) / d + 2.0f);
  else h = 60.0f * ((r - g) / d + 4.0f);
  const int hb = std::min(kColourHues - 1, static_cast<int>(h / (360.0f / kColourHues)));
  const int sb = std::min(kColourSaturations - 1, static_cast<int>((s - kMinSaturation) / (1 - kMinSaturation) * kColourSaturations));
  const int vb = std::min(kColourValues - 1, static_cast<int>((v - kMinValue) / (1 - kMinValue) * kColourValues));
  return (hb * kColourSaturations + sb) * kColourValues + vb;
}

namespace {
// The studio backdrop when the image's border is one light colour (white or light grey,
// allowing JPEG noise): its mean, or false when the border is busy or dark.
bool backdrop_colour(const Image& image, int step, int out[3]) {
  double sum[3] = {0, 0, 0};
  std::vector<const std::uint8_t*> border;
  const int w = image.width, h = image.height;
  auto at = [&](int x, int y) { return image.pixels.data() + (static_cast<std::size_t>(y) * w + x) * 3; };
  for (int x = 0; x < w; x += step) border.insert(border.end(), {at(x, 0), at(x, h - 1)});
  for (int y = 0; y < h; y += step) border.insert(border.end(), {at(0, y), at(w - 1, y)});
  for (const std::uint8_t* p : border)
    for (int c = 0; c < 3; ++c) sum[c] += p[c];
  for (int c = 0; c < 3; ++c) out[c] = static_cast<int>(std::lround(sum[c] / border.size()));
  if (std::min({out[0], out[1], out[2]}) < 170 || std::max({out[0], out[1], out[2]}) - std::min({out[0], out[1], out[2]}) > 20)
    return false;
  std::size_t close = 0;
  for (const std::uint8_t* p : border)
    close += std::max({std::abs(p[0] - out[0]), std::abs(p[1] - out[1]), std::abs(p[2] - out[2])}) <= kBackdropTolerance;
  return close >= 0.9 * border.size();
}
}  // namespace

std::vector<float> colour_histogram(const Image& image) {
  IMGSEARCH_CHECK(image.width > 0 && image.height > 0 &&
                      image.pixels.size() == static_cast<std::size_t>(image.width) * image.height * 3,
                  ErrorKind::InvalidArgument, "colour histogram: empty or inconsistent image");
  const double area = static_cast<double>(image.width) * image.height;
  const int step = std::max(1, static_cast<int>(std::lround(std::sqrt(area / (128.0 * 128.0)))));
  int backdrop[3];
  const bool has_backdrop = backdrop_colour(image, step, backdrop);
  std::vector<double> counts(kColourBins, 0.0);
  double kept = 0, white = 0;
  for (int y = step / 2; y < image.height; y += step) {
    const std::uint8_t* row = image.pixels.data() + static_cast<std::size_t>(y) * image.width * 3;
    for (int x = step / 2; x < image.width; x += step) {
      const std::uint8_t* p = row + static_cast<std::size_t>(x) * 3;
      int bin = colour_bin(p[0], p[1], p[2]);
      if (bin >= 0 && has_backdrop &&
          std::max({std::abs(p[0] - backdrop[0]), std::abs(p[1] - backdrop[1]), std::abs(p[2] - backdrop[2])}) <=
              kBackdropTolerance)
        bin = -1;
      if (bin < 0) {
        white += 1;
      } else {
        counts[static_cast<std::size_t>(bin)] += 1;
        kept += 1;
      }
    }
  }
  // A white object on white: the near-white pixels are the object.
  if (kept < 0.01 * (kept + white)) {
    counts[kColourBins - 1] += white;
    kept += white;
  }
  std::vector<float> out(kColourBins);
  for (int i = 0; i < kColourBins; ++i) out[i] = static_cast<float>(counts[i] / kept);
  return out;
}

void compute_colour_histograms(const std::vector<std::string>& paths, const DecodeOptions& options, int threads,
                               const std::atomic<bool>* cancel,
                               const std::function<void(std::size_t, const std::vector<float>&, const std::string&)>& on_result) {
  detail::map_files<std::vector<float>>(
      paths, threads, cancel,
      [&](const std::string& path, std::vector<float>& histogram) { histogram = colour_histogram(decode_image_file(path, options)); },
      on_result);
}

}  // namespace imgsearch
