#include "imgsearch/thumbnail_match.h"

#include "imgsearch/error.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

namespace imgsearch {

namespace {


// The grey grid the borders are found on: fine enough to place a border within 1 %.
constexpr int kGridMax = 256;
// A border row or column: every cell within this many grey levels of the edge's level
// (flat bars survive JPEG q30 within 2-3 levels after averaging; sky and walls vary more).
constexpr float kBorderTolerance = 6.0f;
constexpr double kMaxTrim = 0.4;  // of each side, so a flat image is not trimmed to nothing
// Below this standard deviation (grey levels) a thumbnail is flat: NCC would be noise.
constexpr float kMinDeviation = 4.0f;

// The two thumbnail sizes there are (a template instance each).
void check_side(int side) {
  IMGSEARCH_CHECK(side == kCropThumbSide || side == kFineCropThumbSide, ErrorKind::InvalidArgument,
                  "crop thumbnail: side {} (only {} or {})", side, kCropThumbSide, kFineCropThumbSide);
}

// Box-averages the luminance into a gw x gh grid (gw <= width, gh <= height).
// A cell sums at most (width / gw + 1) x (height / gh + 1) luminances of <= 255000: within
// 32 bits up to 16,000 pixels a cell, 1 gigapixel at 256 x 256 cells.
const std::vector<float>& grey_grid(const Image& image, int gw, int gh) {
  const int w = image.width, h = image.height;
  std::vector<int> x_edge(gw + 1), y_edge(gh + 1);
  for (int c = 0; c <= gw; ++c) x_edge[c] = static_cast<int>(static_cast<long long>(c) * w / gw);
  for (int r = 0; r <= gh; ++r) y_edge[r] = static_cast<int>(static_cast<long long>(r) * h / gh);
  // One grid row at a time (gw <= w and gh <= h, so every cell has pixels): the buffers
  // are kept per thread, indexing decodes one image after another.
  thread_local std::vector<float> grid, inv_width;
  thread_local std::vector<std::uint32_t> row_sums;
  thread_local std::vector<int> cell_of;
  grid.resize(static_cast<std::size_t>(gw) * gh);
  row_sums.assign(static_cast<std::size_t>(gw), 0);
  cell_of.resize(static_cast<std::size_t>(w));
  inv_width.resize(static_cast<std::size_t>(gw));
  for (int c = 0; c < gw; ++c) {
    for (int x = x_edge[c]; x < x_edge[c + 1]; ++x) cell_of[x] = c;
    inv_width[c] = 1.0f / (1000.0f * (x_edge[c + 1] - x_edge[c]));
  }
  int row = 0;
  auto flush = [&](int r) {
    const float inv_height = 1.0f / float(y_edge[r + 1] - y_edge[r]);
    for (int c = 0; c < gw; ++c) {
      grid[static_cast<std::size_t>(r) * gw + c] = static_cast<float>(row_sums[c]) * inv_width[c] * inv_height;
      row_sums[c] = 0;
    }
  };
  for (int y = 0; y < h; ++y) {
    if (row + 1 < gh && y >= y_edge[row + 1]) flush(row++);
    const std::uint8_t* p = image.pixels.data() + static_cast<std::size_t>(y) * w * 3;
    for (int x = 0; x < w; ++x) row_sums[cell_of[x]] += 299u * p[3 * x] + 587u * p[3 * x + 1] + 114u * p[3 * x + 2];
  }
  flush(row);
  return grid;
}

// For each of `out` cells over [begin, begin + length) of a source axis: the source cells
// it overlaps and their share of it (area averaging; also upsamples, as a box filter).
struct AxisWeights {
  std::vector<int> first, count;
  std::vector<float> weight;  // count[i] weights from offset[i]
  std::vector<int> offset;
};

AxisWeights axis_weights(float begin, float length, int out, int limit) {
  AxisWeights a;
  const float step = length / out;
  for (int i = 0; i < out; ++i) {
    const float lo = begin + i * step, hi = lo + step;
    const int k0 = std::clamp(static_cast<int>(std::floor(lo)), 0, limit - 1);
    const int k1 = std::clamp(static_cast<int>(std::ceil(hi)), k0 + 1, limit);
    a.first.push_back(k0);
    a.count.push_back(k1 - k0);
    a.offset.push_back(static_cast<int>(a.weight.size()));
    for (int k = k0; k < k1; ++k) {
      const float overlap = std::min(hi, float(k + 1)) - std::max(lo, float(k));
      a.weight.push_back(std::max(0.0f, overlap) / step);
    }
  }
  return a;
}

// Applies an axis's weights to `n` lines of a grid: out[line][i] from src along the axis
// (`along` apart) of each line (`across` apart).
void resample_axis(const float* src, int along, int across, int n, const AxisWeights& a, float* out, int out_along,
                   int out_across) {
  const int out_n = static_cast<int>(a.first.size());
  for (int line = 0; line < n; ++line)
    for (int i = 0; i < out_n; ++i) {
      float s = 0;
      for (int k = 0; k < a.count[i]; ++k) s += src[line * across + (a.first[i] + k) * along] * a.weight[a.offset[i] + k];
      out[line * out_across + i * out_along] = s;
    }
}

// Area-resamples the rectangle (x0, y0, rw, rh) of a sw x sh grid to ow x oh, rows first.
void resample(const float* src, int sw, int sh, float x0, float y0, float rw, float rh, int ow, int oh, float* out) {
  const AxisWeights ax = axis_weights(x0, rw, ow, sw), ay = axis_weights(y0, rh, oh, sh);
  std::vector<float> rows(static_cast<std::size_t>(sh) * ow);
  resample_axis(src, 1, sw, sh, ax, rows.data(), 1, ow);
  resample_axis(rows.data(), ow, 1, ow, ay, out, ow, 1);
}

// A Side x Side thumbnail shrunk to w x w (w = Side/2..Side) by area averaging: each output
// cell covers at most 3 input cells per axis (Side / w <= 2), with the taps of each size
// computed once; rows first, then columns as row updates the compiler vectorises.
template <int Side>
void shrink(const float* src, int w, float* out) {
  constexpr int kSide = Side;
  constexpr int kTaps = 3;  // enough for w >= 16: a cell spans at most 2 input cells
  struct Taps {
    int first[kSide];
    float weight[kSide][kTaps];
  };
  static const std::vector<Taps> taps = [] {
    std::vector<Taps> t(kSide + 1);
    for (int n = kSide / 2; n <= kSide; ++n) {
      const AxisWeights a = axis_weights(0, kSide, n, kSide);
      for (int i = 0; i < n; ++i) {
        t[n].first[i] = std::min(a.first[i], kSide - kTaps);
        for (int k = 0; k < kTaps; ++k) t[n].weight[i][k] = 0;
        for (int k = 0; k < a.count[i] && k < kTaps; ++k) t[n].weight[i][a.first[i] + k - t[n].first[i]] = a.weight[a.offset[i] + k];
      }
    }
    return t;
  }();
  const Taps& t = taps[w];
  thread_local std::vector<float> tmp_buffer(kSide * kSide);  // tmp[y][i]
  float* tmp = tmp_buffer.data();
  for (int y = 0; y < kSide; ++y)
    for (int i = 0; i < w; ++i) {
      const float* p = src + y * kSide + t.first[i];
      float v = 0;
      for (int k = 0; k < kTaps; ++k) v += p[k] * t.weight[i][k];
      tmp[y * w + i] = v;
    }
  for (int i = 0; i < w; ++i) {
    float* __restrict row = out + i * w;
    for (int j = 0; j < w; ++j) row[j] = 0;
    for (int k = 0; k < kTaps; ++k) {
      const float c = t.weight[i][k];
      if (c == 0) continue;
      const float* __restrict in = tmp + (t.first[i] + k) * w;
      for (int j = 0; j < w; ++j) row[j] += c * in[j];
    }
  }
}

}  // namespace

std::vector<std::uint8_t> crop_thumbnail(const Image& image, int side) {
  check_side(side);
  const std::size_t pixels = static_cast<std::size_t>(side) * side;
  std::vector<std::uint8_t> thumb(pixels, 0);
  if (image.width <= 0 || image.height <= 0) return thumb;
  const int gw = std::min(image.width, kGridMax), gh = std::min(image.height, kGridMax);
  const std::vector<float>& g = grey_grid(image, gw, gh);
  auto at = [&](int r, int c) { return g[static_cast<std::size_t>(r) * gw + c]; };
  // A run of rows (or columns) at an edge, each uniform and at the first one's level.
  auto uniform_row = [&](int r, int c0, int c1, float level) {
    for (int c = c0; c < c1; ++c)
      if (std::fabs(at(r, c) - level) > kBorderTolerance) return false;
    return true;
  };
  auto uniform_col = [&](int c, int r0, int r1, float level) {
    for (int r = r0; r < r1; ++r)
      if (std::fabs(at(r, c) - level) > kBorderTolerance) return false;
    return true;
  };
  auto row_mean = [&](int r) {
    float s = 0;
    for (int c = 0; c < gw; ++c) s += at(r, c);
    return s / gw;
  };
  const int max_rows = static_cast<int>(gh * kMaxTrim), max_cols = static_cast<int>(gw * kMaxTrim);
  int top = 0, bottom = gh;  // kept rows [top, bottom)
  const float top_level = row_mean(0), bottom_level = row_mean(gh - 1);
  while (top < max_rows && uniform_row(top, 0, gw, top_level)) ++top;
  while (gh - bottom < max_rows && uniform_row(bottom - 1, 0, gw, bottom_level)) --bottom;
  int left = 0, right = gw;
  auto col_mean = [&](int c) {
    float s = 0;
    for (int r = top; r < bottom; ++r) s += at(r, c);
    return s / (bottom - top);
  };
  const float left_level = col_mean(0), right_level = col_mean(gw - 1);
  while (left < max_cols && uniform_col(left, top, bottom, left_level)) ++left;
  while (gw - right < max_cols && uniform_col(right - 1, top, bottom, right_level)) --right;

  std::vector<float> out(pixels);
  resample(g.data(), gw, gh, float(left), float(top), float(right - left), float(bottom - top), side, side, out.data());
  for (std::size_t i = 0; i < pixels; ++i) thumb[i] = static_cast<std::uint8_t>(std::clamp(std::lround(out[i]), 0L, 255L));
  return thumb;
}

CropThumbnail coarse_crop_thumbnail(const std::uint8_t* fine) {
  static_assert(kFineCropThumbSide == 2 * kCropThumbSide, "2x2 blocks");
  CropThumbnail thumb;
  for (int y = 0; y < kCropThumbSide; ++y)
    for (int x = 0; x < kCropThumbSide; ++x) {
      const std::uint8_t* p = fine + 2 * y * kFineCropThumbSide + 2 * x;
      thumb[y * kCropThumbSide + x] = static_cast<std::uint8_t>((p[0] + p[1] + p[kFineCropThumbSide] + p[kFineCropThumbSide + 1] + 2) / 4);
    }
  return thumb;
}

CropThumbnail crop_thumbnail(const Image& image) {
  const std::vector<std::uint8_t> t = crop_thumbnail(image, kCropThumbSide);
  CropThumbnail thumb;
  std::copy(t.begin(), t.end(), thumb.begin());
  return thumb;
}

namespace {

// Grey levels are matched as 16-bit integers scaled by Quant (products summed in 32 bits:
// 32 x 32 x 1020 x 1020 and 64 x 64 x 510 x 510 < 2^31), which the compiler turns into
// multiply-add vector instructions; the rounding (1/8 or 1/4 grey level) is far below
// JPEG noise.
template <int Side>
struct Geometry {
  static constexpr int kSide = Side;
  static constexpr int kPixels = Side * Side;
  static constexpr float kQuant = Side <= 32 ? 4.0f : 2.0f;
  static constexpr int kStride = Side + 8;  // outer rows padded, so a window row can be read 8 at a time
  static_assert(double(Side) * Side * (255 * kQuant) * (255 * kQuant) < 2147483647.0, "32-bit dot products");
};

// A w x w inner thumbnail, zero mean, rows padded with zeros to a multiple of 8.
template <int Side>
struct Inner {
  int w = 0, w8 = 0;
  float norm = 0;  // of the quantised values
  double sum = 0;  // of the quantised values (zero but for rounding)
  std::array<std::int16_t, Side * Side> v{};
};

template <int W8, int Stride>
std::int32_t window_dot(const std::int16_t* inner, const std::int16_t* outer, int rows) {
  std::int32_t acc = 0;
  for (int i = 0; i < rows; ++i) {
    const std::int16_t* a = inner + i * W8;
    const std::int16_t* b = outer + i * Stride;
    for (int j = 0; j < W8; ++j) acc += std::int32_t(a[j]) * b[j];
  }
  return acc;
}

// window_dot for w8 = 8, 16, ... Side, chosen at run time from a table made at compile time.
template <int Side, std::size_t... K>
std::int32_t window_dot_any(int w8, const std::int16_t* inner, const std::int16_t* outer, int rows,
                            std::index_sequence<K...>) {
  using Dot = std::int32_t (*)(const std::int16_t*, const std::int16_t*, int);
  static constexpr Dot table[] = {&window_dot<int(K + 1) * 8, Geometry<Side>::kStride>...};
  return table[w8 / 8 - 1](inner, outer, rows);
}

// One direction: an inner thumbnail slid over `outer`. Positions are in half pixels: the
// outer thumbnail is also kept shifted by half a pixel along x, y and both (mean of
// neighbours), so a crop whose edge falls between two thumbnail cells still aligns.
template <int Side>
struct Matcher {
  using G = Geometry<Side>;
  static constexpr int kSide = Side, kStride = G::kStride;
  const CropMatchOptions& options;
  float enough;
  using Integral = std::array<std::int64_t, (kSide + 1) * (kSide + 1)>;
  std::array<std::array<std::int16_t, kSide * kStride>, 4> shifted{};  // [dy * 2 + dx]
  std::array<Integral, 4> sum{}, sum2{};

  Matcher(const CropMatchOptions& o, float e) : options(o), enough(e) {}

  void set_outer(const float* o) {
    for (int v = 0; v < 4; ++v) {
      const int dx = v & 1, dy = v >> 1;
      auto& t = shifted[v];
      t.fill(0);
      for (int y = 0; y < kSide; ++y)
        for (int x = 0; x < kSide; ++x) {
          const int x1 = std::min(x + dx, kSide - 1), y1 = std::min(y + dy, kSide - 1);
          const float g = 0.25f * (o[y * kSide + x] + o[y * kSide + x1] + o[y1 * kSide + x] + o[y1 * kSide + x1]);
          t[y * kStride + x] = static_cast<std::int16_t>(g * G::kQuant + 0.5f);  // g >= 0
        }
      for (int y = 0; y < kSide; ++y) {
        std::int64_t row = 0, row2 = 0;
        for (int x = 0; x < kSide; ++x) {
          const std::int64_t g = t[y * kStride + x];
          row += g;
          row2 += g * g;
          sum[v][(y + 1) * (kSide + 1) + x + 1] = sum[v][y * (kSide + 1) + x + 1] + row;
          sum2[v][(y + 1) * (kSide + 1) + x + 1] = sum2[v][y * (kSide + 1) + x + 1] + row2;
        }
      }
    }
  }
  static std::int64_t box(const Integral& s, int x, int y, int w) {
    constexpr int W = kSide + 1;
    return s[(y + w) * W + x + w] - s[y * W + x + w] - s[(y + w) * W + x] + s[y * W + x];
  }
  // NCC of the zero-mean inner thumbnail against the window at (x2, y2) half pixels.
  float ncc(const Inner<Side>& in, int x2, int y2) const {
    const int v = (y2 & 1) * 2 + (x2 & 1), x = x2 >> 1, y = y2 >> 1, w = in.w;
    const double n = double(w) * w;
    const double s = double(box(sum[v], x, y, w)), s2 = double(box(sum2[v], x, y, w));
    const double var = s2 - s * s / n;
    if (var < n * (kMinDeviation * G::kQuant) * (kMinDeviation * G::kQuant)) return -1.0f;
    const std::int16_t* outer = shifted[v].data() + y * kStride + x;
    const std::int32_t cross =
        window_dot_any<Side>(in.w8, in.v.data(), outer, w, std::make_index_sequence<std::size_t(Side / 8)>{});
    return static_cast<float>((cross - in.sum * s / n) / (in.norm * std::sqrt(var)));
  }
  // Best over a grid of whole-pixel positions (half-pixel units in *bx, *by).
  float grid_best(const Inner<Side>& in, int* bx, int* by) const {
    const int range = kSide - in.w;  // whole-pixel positions 0..range on each axis
    const int p = std::min(options.positions, range + 1);
    float best = -2;
    for (int gy = 0; gy < p; ++gy)
      for (int gx = 0; gx < p; ++gx) {
        const int x = p > 1 ? (gx * range + (p - 1) / 2) / (p - 1) : range / 2;
        const int y = p > 1 ? (gy * range + (p - 1) / 2) / (p - 1) : range / 2;
        const float v = ncc(in, 2 * x, 2 * y);
        if (v > best) best = v, *bx = 2 * x, *by = 2 * y;
      }
    return best;
  }
  // A hill climb from (bx, by) with value `best`, in whole and then half pixels.
  float climb(const Inner<Side>& in, float best, int& bx, int& by) const {
    const int range = kSide - in.w;
    const bool all_tried = range + 1 <= options.positions;
    for (int step = 2; step >= (options.half_pixels ? 1 : 2); --step) {
      if (step == 2 && all_tried) continue;
      for (int moves = 0; moves < 2 * kSide && best < enough; ++moves) {
        float step_best = best;
        int sx = bx, sy = by;
        for (int dy = -step; dy <= step; dy += step)
          for (int dx = -step; dx <= step; dx += step) {
            const int x = bx + dx, y = by + dy;
            if ((dx == 0 && dy == 0) || x < 0 || y < 0 || x > 2 * range || y > 2 * range) continue;
            const float v = ncc(in, x, y);
            if (v > step_best) step_best = v, sx = x, sy = y;
          }
        if (sx == bx && sy == by) break;
        best = step_best, bx = sx, by = sy;
      }
    }
    return best;
  }
};

template <int Side>
std::vector<float> to_float(const std::uint8_t* t, float& deviation) {
  constexpr int kSide = Side, kPixels = Side * Side;
  std::vector<float> f(kPixels), g(kPixels);
  double s = 0, s2 = 0;
  for (int i = 0; i < kPixels; ++i) {
    f[i] = t[i];
    s += t[i];
    s2 += double(t[i]) * t[i];
  }
  {  // [1 2 1] / 4 each way, edges repeated: less aliasing when one side is shrunk (crops
     // of detailed photos, buildings: NCC 0.86-0.95 -> 0.94-0.99)
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x)
        g[y * kSide + x] = 0.25f * (f[y * kSide + std::max(x - 1, 0)] + 2 * f[y * kSide + x] + f[y * kSide + std::min(x + 1, kSide - 1)]);
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x)
        f[y * kSide + x] = 0.25f * (g[std::max(y - 1, 0) * kSide + x] + 2 * g[y * kSide + x] + g[std::min(y + 1, kSide - 1) * kSide + x]);
  }
  const double mean = s / kPixels;
  deviation = static_cast<float>(std::sqrt(std::max(0.0, s2 / kPixels - mean * mean)));
  return f;
}

// A square w x w array turned by a quarter turn counter-clockwise.
void quarter_turn(const float* in, int w, float* out) {
  for (int y = 0; y < w; ++y)
    for (int x = 0; x < w; ++x) out[(w - 1 - x) * w + y] = in[y * w + x];
}

// The inner thumbnail `small` shrunk to w x w, turned `turn` quarters, zero mean, quantised.
// False when it is flat at that size.
template <int Side>
bool prepare_inner(const float* small, int w, int turn, Inner<Side>& inner) {
  constexpr float kQuant = Geometry<Side>::kQuant;
  std::array<float, Side * Side> resized, turned;
  shrink<Side>(small, w, resized.data());
  const int n = w * w;
  float mean = 0;
  for (int i = 0; i < n; ++i) mean += resized[i];
  mean /= n;
  for (int i = 0; i < n; ++i) resized[i] -= mean;
  const float* use = resized.data();
  for (int t = 0; t < turn; ++t) {
    quarter_turn(use, w, t % 2 ? resized.data() : turned.data());
    use = t % 2 ? resized.data() : turned.data();
  }
  inner.w = w;
  inner.w8 = (w + 7) / 8 * 8;
  inner.v.fill(0);
  double norm = 0;
  std::int32_t sum = 0;
  for (int y = 0; y < w; ++y)
    for (int x = 0; x < w; ++x) {
      // Rounded to nearest through a positive offset (a plain conversion truncates).
      const auto q = static_cast<std::int16_t>(static_cast<int>(use[y * w + x] * kQuant + 8192.5f) - 8192);
      inner.v[y * inner.w8 + x] = q;
      sum += q;
    }
  std::int64_t sum2 = 0;
  for (int i = 0; i < w * inner.w8; ++i) sum2 += std::int32_t(inner.v[i]) * inner.v[i];
  norm = double(sum2) - double(sum) * sum / (double(w) * w);  // of the values less their mean
  inner.sum = sum;
  inner.norm = static_cast<float>(std::sqrt(norm));
  return inner.norm >= kMinDeviation * kQuant * w;
}

template <int Side>
CropMatch match(const std::uint8_t* a, const std::uint8_t* b, const CropMatchOptions& options, float enough) {
  constexpr int kSide = Side;
  CropMatch best;
  float dev_a = 0, dev_b = 0;
  const std::vector<float> fa = to_float<Side>(a, dev_a), fb = to_float<Side>(b, dev_b);
  if (dev_a < kMinDeviation || dev_b < kMinDeviation) return best;
  const int scales = std::max(1, options.scales);
  const int turns = options.rotations ? 4 : 1;
  // Coarse to fine: every size, direction and turn on a grid of positions; the best few
  // of those are then refined by a hill climb. On the heap: 0.3 MB a pair at 64 x 64.
  const std::array<std::unique_ptr<Matcher<Side>>, 2> matchers{std::make_unique<Matcher<Side>>(options, enough),
                                                                std::make_unique<Matcher<Side>>(options, enough)};
  matchers[0]->set_outer(fa.data());  // b inside a
  matchers[1]->set_outer(fb.data());  // a inside b
  struct Start {
    float value;
    int direction, w, turn, x, y;
  };
  std::vector<Start> starts;
  auto inner = std::make_unique<Inner<Side>>();
  auto consider = [&](const Start& st) {
    if (st.value > best.ncc) {
      best.ncc = st.value;
      best.scale = float(st.w) / kSide;
      best.a_inside_b = st.direction == 1;
      best.rotation = st.turn;
      best.side = kSide;
      best.window = st.w;
      best.x2 = st.x;
      best.y2 = st.y;
    }
  };
  for (int direction = 0; direction < 2; ++direction) {
    const float* small = direction == 0 ? fb.data() : fa.data();
    int previous_w = 0;
    for (int si = 0; si < scales; ++si) {
      const float s = scales == 1 ? 1.0f : 1.0f - si * (1.0f - options.min_scale) / (scales - 1);
      const int w = std::clamp(static_cast<int>(std::lround(s * kSide)), kSide / 2, kSide);
      if (w == previous_w) continue;  // two scales, one window size
      previous_w = w;
      for (int turn = 0; turn < turns; ++turn) {
        if (!prepare_inner<Side>(small, w, turn, *inner)) break;  // flat at this size
        Start st{-2, direction, w, turn, 0, 0};
        st.value = matchers[direction]->grid_best(*inner, &st.x, &st.y);
        consider(st);
        if (best.ncc >= enough) return best;
        starts.push_back(st);
      }
    }
  }
  const std::size_t refine = std::min<std::size_t>(starts.size(), static_cast<std::size_t>(std::max(1, options.refine)));
  std::partial_sort(starts.begin(), starts.begin() + refine, starts.end(),
                    [](const Start& x, const Start& y) { return x.value > y.value; });
  for (std::size_t k = 0; k < refine; ++k) {
    Start st = starts[k];
    prepare_inner<Side>(st.direction == 0 ? fb.data() : fa.data(), st.w, st.turn, *inner);
    st.value = matchers[st.direction]->climb(*inner, st.value, st.x, st.y);
    consider(st);
    if (best.ncc >= enough) break;
  }
  return best;
}

// From a match found on thumbnails `coarse.side` cells wide: the same direction and turn,
// window sizes within `slack` cells of the coarse one scaled up, each climbed from the
// coarse position scaled up. A grid search at 64 x 64 misses many true crops (its
// starting points lie outside the narrower peaks); starting from the coarse answer does not.
template <int Side>
CropMatch refine(const std::uint8_t* a, const std::uint8_t* b, const CropMatch& coarse, const CropMatchOptions& options,
                 float enough) {
  constexpr int kSide = Side;
  CropMatch best;
  if (coarse.side <= 0 || coarse.window <= 0) return best;
  float dev_a = 0, dev_b = 0;
  const std::vector<float> fa = to_float<Side>(a, dev_a), fb = to_float<Side>(b, dev_b);
  if (dev_a < kMinDeviation || dev_b < kMinDeviation) return best;
  const int direction = coarse.a_inside_b ? 1 : 0;
  auto matcher = std::make_unique<Matcher<Side>>(options, enough);
  matcher->set_outer(direction == 0 ? fa.data() : fb.data());
  auto inner = std::make_unique<Inner<Side>>();
  const float* small = direction == 0 ? fb.data() : fa.data();
  const double factor = double(kSide) / coarse.side;
  const int centre = static_cast<int>(std::lround(coarse.window * factor));
  const int slack = static_cast<int>(std::ceil(factor)) + 1;
  for (int w = std::max(kSide / 2, centre - slack); w <= std::min(kSide, centre + slack); ++w) {
    if (!prepare_inner<Side>(small, w, coarse.rotation, *inner)) continue;
    const int range2 = 2 * (kSide - w);
    // The coarse window's centre, kept: a larger window starts a little up and left.
    const double cx = (coarse.x2 / 2.0 + coarse.window / 2.0) * factor - w / 2.0;
    const double cy = (coarse.y2 / 2.0 + coarse.window / 2.0) * factor - w / 2.0;
    int x = std::clamp(static_cast<int>(std::lround(2 * cx)), 0, range2);
    int y = std::clamp(static_cast<int>(std::lround(2 * cy)), 0, range2);
    const float start = matcher->ncc(*inner, x, y);
    const float value = matcher->climb(*inner, start, x, y);
    if (value > best.ncc) {
      best.ncc = value;
      best.scale = float(w) / kSide;
      best.a_inside_b = coarse.a_inside_b;
      best.rotation = coarse.rotation;
      best.side = kSide;
      best.window = w;
      best.x2 = x;
      best.y2 = y;
    }
    if (best.ncc >= enough) break;
  }
  return best;
}

template <int Side>
float occluded(const std::uint8_t* a, const std::uint8_t* b, const CropMatch& at, float drop) {
  constexpr int kSide = Side;
  if (at.side != kSide || at.window < kSide / 2 || at.window > kSide) return -1.0f;
  float dev_a = 0, dev_b = 0;
  const std::vector<float> fa = to_float<Side>(a, dev_a), fb = to_float<Side>(b, dev_b);
  if (dev_a < kMinDeviation || dev_b < kMinDeviation) return -1.0f;
  const int w = at.window, range2 = 2 * (kSide - w);
  if (at.x2 < 0 || at.y2 < 0 || at.x2 > range2 || at.y2 > range2) return -1.0f;
  const std::vector<float>& outer = at.a_inside_b ? fb : fa;
  const std::vector<float>& small = at.a_inside_b ? fa : fb;
  std::vector<float> inner(static_cast<std::size_t>(kSide) * kSide), turned(inner.size());
  shrink<Side>(small.data(), w, inner.data());
  for (int t = 0; t < at.rotation % 4; ++t) {
    quarter_turn(inner.data(), w, turned.data());
    std::copy(turned.begin(), turned.begin() + w * w, inner.begin());
  }
  // The window as the matcher saw it: half-pixel positions average the neighbouring cells.
  const int x0 = at.x2 >> 1, y0 = at.y2 >> 1, dx = at.x2 & 1, dy = at.y2 & 1;
  const int n = w * w;
  std::vector<double> p(n), q(n);
  for (int y = 0; y < w; ++y)
    for (int x = 0; x < w; ++x) {
      const int ox = x0 + x, oy = y0 + y;
      const int ox1 = std::min(ox + dx, kSide - 1), oy1 = std::min(oy + dy, kSide - 1);
      p[y * w + x] = inner[y * w + x];
      q[y * w + x] = 0.25 * (outer[oy * kSide + ox] + outer[oy * kSide + ox1] + outer[oy1 * kSide + ox] + outer[oy1 * kSide + ox1]);
    }
  auto ncc_of = [&](const std::vector<char>& keep) {
    double sp = 0, sq = 0, m = 0;
    for (int i = 0; i < n; ++i)
      if (keep[i]) sp += p[i], sq += q[i], ++m;
    if (m < 2) return -1.0;
    const double mp = sp / m, mq = sq / m;
    double pp = 0, qq = 0, pq = 0;
    for (int i = 0; i < n; ++i)
      if (keep[i]) pp += (p[i] - mp) * (p[i] - mp), qq += (q[i] - mq) * (q[i] - mq), pq += (p[i] - mp) * (q[i] - mq);
    const double floor = m * kMinDeviation * kMinDeviation;
    if (pp < floor || qq < floor) return -1.0;
    return pq / std::sqrt(pp * qq);
  };
  std::vector<char> keep(n, 1);
  // Each cell's disagreement once both sides are standardised; the worst `drop` go.
  double sp = 0, sq = 0;
  for (int i = 0; i < n; ++i) sp += p[i], sq += q[i];
  const double mp = sp / n, mq = sq / n;
  double pp = 0, qq = 0;
  for (int i = 0; i < n; ++i) pp += (p[i] - mp) * (p[i] - mp), qq += (q[i] - mq) * (q[i] - mq);
  if (pp <= 0 || qq <= 0) return -1.0f;
  const double sdp = std::sqrt(pp / n), sdq = std::sqrt(qq / n);
  // Whole rows or whole columns: an overlay is a band or a block, while the cells where two
  // different photos disagree are everywhere (dropping single cells lifted those too).
  const int lines = std::clamp(static_cast<int>(std::lround(double(drop) * w)), 0, w / 2);
  double best = ncc_of(keep);
  for (int axis = 0; axis < 2 && lines > 0; ++axis) {
    std::vector<std::pair<double, int>> residual(w);
    for (int l = 0; l < w; ++l) residual[l] = {0.0, l};
    for (int y = 0; y < w; ++y)
      for (int x = 0; x < w; ++x) {
        const int i = y * w + x;
        const double r = (p[i] - mp) / sdp - (q[i] - mq) / sdq;
        residual[axis == 0 ? y : x].first += r * r;
      }
    std::partial_sort(residual.begin(), residual.begin() + lines, residual.end(),
                      [](const auto& x, const auto& y) { return x.first > y.first; });
    std::fill(keep.begin(), keep.end(), 1);
    for (int k = 0; k < lines; ++k)
      for (int j = 0; j < w; ++j) keep[axis == 0 ? residual[k].second * w + j : j * w + residual[k].second] = 0;
    best = std::max(best, ncc_of(keep));
  }
  return static_cast<float>(best);
}

}  // namespace

float occluded_crop_ncc(const std::uint8_t* a, const std::uint8_t* b, int side, const CropMatch& at, float drop) {
  check_side(side);
  return side == kCropThumbSide ? occluded<kCropThumbSide>(a, b, at, drop) : occluded<kFineCropThumbSide>(a, b, at, drop);
}

CropMatch refine_crop_match(const std::uint8_t* a, const std::uint8_t* b, int side, const CropMatch& coarse,
                            const CropMatchOptions& options, float enough) {
  check_side(side);
  return side == kCropThumbSide ? refine<kCropThumbSide>(a, b, coarse, options, enough)
                                : refine<kFineCropThumbSide>(a, b, coarse, options, enough);
}

CropMatch match_crop_thumbnails(const std::uint8_t* a, const std::uint8_t* b, const CropMatchOptions& options,
                                float enough) {
  return match<kCropThumbSide>(a, b, options, enough);
}

CropMatch match_crop_thumbnails(const std::uint8_t* a, const std::uint8_t* b, int side, const CropMatchOptions& options,
                                float enough) {
  check_side(side);
  return side == kCropThumbSide ? match<kCropThumbSide>(a, b, options, enough) : match<kFineCropThumbSide>(a, b, options, enough);
}

}  // namespace imgsearch
