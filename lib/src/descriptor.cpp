#include "imgsearch/descriptor.h"

#include "imgsearch/error.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <sstream>

namespace imgsearch {

std::vector<int> default_rmac_scales() { return {448, 640, 800}; }

std::string Descriptor::name() const {
  if (pooled()) return "pooled";
  std::string out = "rmac:";
  for (std::size_t i = 0; i < scales.size(); ++i) out += (i ? "," : "") + std::to_string(scales[i]);
  return out;
}

Descriptor Descriptor::parse(const std::string& text) {
  Descriptor d;
  if (text == "pooled") return d;
  if (text != "rmac" && text.rfind("rmac:", 0) != 0)
    throw_error(ErrorKind::InvalidArgument, "unknown descriptor '{}' (expected pooled, rmac or rmac:S1,S2,...)", text);
  d.kind = DescriptorKind::Rmac;
  if (text == "rmac") {
    d.scales = default_rmac_scales();
    return d;
  }
  std::stringstream list(text.substr(5));
  std::string item;
  while (std::getline(list, item, ',')) {
    std::size_t used = 0;
    int s = 0;
    try {
      s = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || s < 16 || s > 2048)
      throw_error(ErrorKind::InvalidArgument, "descriptor '{}': each scale must be a whole number of pixels from 16 to 2048",
                  text);
    d.scales.push_back(s);
  }
  if (d.scales.empty() || d.scales.size() > 8)
    throw_error(ErrorKind::InvalidArgument, "descriptor '{}': give 1 to 8 scales", text);
  return d;
}

// A port of the region grid of Tolias et al.'s MATLAB code (and of its Python ports, which
// tests/bench/holidays_descriptors.py follows): `levels` levels of squares of side
// 2 * min(H, W) / (l + 1), with one extra square along the longer side chosen so that
// neighbours overlap by about 40 %.
std::vector<RmacRegion> rmac_regions(int height, int width, int levels) {
  std::vector<RmacRegion> regions;
  if (height <= 0 || width <= 0) return regions;
  const double overlap = 0.4;
  const double w = std::min(width, height);
  int best = 0;
  double best_error = 1e300;
  for (int i = 0; i < 6; ++i) {
    const int steps = i + 2;
    const double b = (std::max(width, height) - w) / (steps - 1);
    const double error = std::fabs((w * w - w * b) / (w * w) - overlap);
    if (error < best_error) best_error = error, best = i;
  }
  const int extra_w = height < width ? best + 1 : 0;
  const int extra_h = height > width ? best + 1 : 0;
  for (int l = 1; l <= levels; ++l) {
    const int wl = static_cast<int>(std::floor(2 * w / (l + 1)));
    if (wl == 0) continue;
    const double wl2 = std::floor(wl / 2.0 - 1);
    auto centres = [&](int extent, int extra) {
      std::vector<int> out;
      const int count = l + extra;
      const double b = count > 1 ? static_cast<double>(extent - wl) / (count - 1) : 0.0;
      for (int k = 0; k < count; ++k)
        out.push_back(std::clamp(static_cast<int>(std::floor(wl2 + k * b) - wl2), 0, std::max(0, extent - 1)));
      return out;
    };
    for (int y : centres(height, extra_h))
      for (int x : centres(width, extra_w)) regions.push_back({y, x, wl});
  }
  return regions;
}

namespace {

// 1 / |v| (the 1e-12 keeps an all-zero region, possible after a ReLU, at zero).
float inverse_norm(const std::vector<float>& v) {
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  return static_cast<float>(1.0 / (std::sqrt(norm) + 1e-12));
}

}  // namespace

void add_rmac(const float* map, int height, int width, int channels, float* sum) {
  const auto c = static_cast<std::size_t>(channels);
  std::vector<float> total(c, 0.0f), region(c);
  for (const RmacRegion& r : rmac_regions(height, width)) {
    std::fill(region.begin(), region.end(), -INFINITY);
    const int y1 = std::min(r.y + r.size, height), x1 = std::min(r.x + r.size, width);
    for (int y = r.y; y < y1; ++y)
      for (int x = r.x; x < x1; ++x) {
        const float* v = map + (static_cast<std::size_t>(y) * width + x) * c;
        for (std::size_t k = 0; k < c; ++k) region[k] = std::max(region[k], v[k]);
      }
    const float inv = inverse_norm(region);
    for (std::size_t k = 0; k < c; ++k) total[k] += region[k] * inv;
  }
  const float inv = inverse_norm(total);
  for (std::size_t k = 0; k < c; ++k) sum[k] += total[k] * inv;
}

}  // namespace imgsearch
