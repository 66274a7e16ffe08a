#include "imgsearch/perceptual_hash.h"

#include "imgsearch/error.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace imgsearch {

namespace {

constexpr int kGrid = 32;  // the image is averaged down to kGrid x kGrid before the DCT
constexpr int kBand = 8;   // the kBand x kBand lowest frequencies make the hash

// Box-averages the luminance into a kGrid x kGrid grid; each cell covers at least one
// source pixel, so images smaller than the grid are sampled, not left with empty cells.
std::array<float, kGrid * kGrid> luminance_grid(const Image& image) {
  const int w = image.width, h = image.height;
  std::array<int, kGrid + 1> x_edge{}, y_edge{};
  for (int c = 0; c <= kGrid; ++c) {
    x_edge[c] = static_cast<int>(static_cast<long long>(c) * w / kGrid);
    y_edge[c] = static_cast<int>(static_cast<long long>(c) * h / kGrid);
  }
  auto span = [](const std::array<int, kGrid + 1>& edge, int c, int limit) {
    const int begin = std::min(edge[c], limit - 1);
    return std::pair<int, int>(begin, std::max(begin + 1, edge[c + 1]));
  };
  // Luminance in fixed point (x1000); rows are summed into cells column by column.
  std::vector<std::uint64_t> row_cells(static_cast<std::size_t>(h) * kGrid);
  std::vector<std::uint32_t> luma(static_cast<std::size_t>(w));
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* p = image.pixels.data() + static_cast<std::size_t>(y) * w * 3;
    for (int x = 0; x < w; ++x) luma[x] = 299u * p[3 * x] + 587u * p[3 * x + 1] + 114u * p[3 * x + 2];
    for (int c = 0; c < kGrid; ++c) {
      const auto [x0, x1] = span(x_edge, c, w);
      std::uint64_t sum = 0;
      for (int x = x0; x < x1; ++x) sum += luma[x];
      row_cells[static_cast<std::size_t>(y) * kGrid + c] = sum;
    }
  }
  std::array<float, kGrid * kGrid> grid{};
  for (int r = 0; r < kGrid; ++r) {
    const auto [y0, y1] = span(y_edge, r, h);
    for (int c = 0; c < kGrid; ++c) {
      const auto [x0, x1] = span(x_edge, c, w);
      std::uint64_t sum = 0;
      for (int y = y0; y < y1; ++y) sum += row_cells[static_cast<std::size_t>(y) * kGrid + c];
      grid[r * kGrid + c] = static_cast<float>(double(sum) / (1000.0 * (y1 - y0) * (x1 - x0)));
    }
  }
  return grid;
}

// The kBand x kBand lowest-frequency DCT-II coefficients; coef[u][v], u vertical, v horizontal.
using Band = std::array<std::array<double, kBand>, kBand>;

Band low_frequencies(const std::array<float, kGrid * kGrid>& grid) {
  static const auto basis = [] {
    std::array<std::array<double, kGrid>, kBand> b{};
    for (int u = 0; u < kBand; ++u)
      for (int x = 0; x < kGrid; ++x) b[u][x] = std::cos(M_PI * (2 * x + 1) * u / (2.0 * kGrid));
    return b;
  }();
  std::array<std::array<double, kBand>, kGrid> rows{};  // rows[y][v]
  for (int y = 0; y < kGrid; ++y)
    for (int v = 0; v < kBand; ++v) {
      double s = 0;
      for (int x = 0; x < kGrid; ++x) s += grid[y * kGrid + x] * basis[v][x];
      rows[y][v] = s;
    }
  Band coef{};
  for (int u = 0; u < kBand; ++u)
    for (int v = 0; v < kBand; ++v) {
      double s = 0;
      for (int y = 0; y < kGrid; ++y) s += rows[y][v] * basis[u][y];
      coef[u][v] = s;
    }
  return coef;
}

// The band of the image turned by `o`: a left-right flip negates odd horizontal
// frequencies, an upside-down flip odd vertical ones, a transpose swaps u and v.
Band oriented(const Band& c, Orientation o) {
  bool transpose = false, mirror = false, flip = false;
  switch (o) {
    case Orientation::Identity: break;
    case Orientation::Mirror: mirror = true; break;
    case Orientation::Flip: flip = true; break;
    case Orientation::Rotate180: mirror = flip = true; break;
    case Orientation::Transpose: transpose = true; break;
    case Orientation::Rotate90: transpose = mirror = true; break;   // clockwise = mirror(transpose)
    case Orientation::Rotate270: transpose = flip = true; break;    // counter-clockwise = flip(transpose)
    case Orientation::AntiTranspose: transpose = mirror = flip = true; break;
  }
  Band out{};
  for (int u = 0; u < kBand; ++u)
    for (int v = 0; v < kBand; ++v) {
      double value = transpose ? c[v][u] : c[u][v];
      if (mirror && (v & 1)) value = -value;
      if (flip && (u & 1)) value = -value;
      out[u][v] = value;
    }
  return out;
}

std::uint64_t hash_band(const Band& band) {
  std::array<double, kBand * kBand - 1> ac{};
  for (int i = 1; i < kBand * kBand; ++i) ac[i - 1] = band[i / kBand][i % kBand];
  std::array<double, kBand * kBand - 1> sorted = ac;
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  const double median = sorted[sorted.size() / 2];
  // A flat image has only rounding noise for AC terms: it hashes to 0, not to noise.
  const double noise = 1e-6 * (std::fabs(band[0][0]) + 1.0);
  std::uint64_t bits = 0;
  for (int i = 1; i < kBand * kBand; ++i)
    if (ac[i - 1] > median + noise) bits |= std::uint64_t(1) << i;
  return bits;
}

}  // namespace

const char* orientation_name(Orientation o) {
  switch (o) {
    case Orientation::Identity: return "identity";
    case Orientation::Mirror: return "mirror";
    case Orientation::Flip: return "flip";
    case Orientation::Rotate180: return "rot180";
    case Orientation::Transpose: return "transpose";
    case Orientation::Rotate90: return "rot90";
    case Orientation::Rotate270: return "rot270";
    case Orientation::AntiTranspose: return "antitranspose";
  }
  return "?";
}

OrientedHashes perceptual_hashes(const Image& image) {
  IMGSEARCH_CHECK(image.width > 0 && image.height > 0 &&
                      image.pixels.size() == static_cast<std::size_t>(image.width) * image.height * 3,
                  ErrorKind::InvalidArgument, "perceptual hash: empty or inconsistent image");
  const Band band = low_frequencies(luminance_grid(image));
  OrientedHashes hashes{};
  for (int o = 0; o < kOrientations; ++o) hashes[o] = hash_band(oriented(band, static_cast<Orientation>(o)));
  return hashes;
}

}  // namespace imgsearch
