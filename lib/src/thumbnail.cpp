#include "imgsearch/thumbnail.h"

#include "imgsearch/error.h"
#include "imgsearch/preprocess.h"

// Debian's libstb.so holds the implementation: never define STB_IMAGE_WRITE_IMPLEMENTATION.
#include <stb_image_write.h>

#include <algorithm>
#include <cmath>

namespace imgsearch {

namespace {

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<std::uint8_t>*>(context);
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  out->insert(out->end(), bytes, bytes + size);
}

}  // namespace

std::vector<std::uint8_t> make_thumbnail(const Image& image, const ThumbnailOptions& options) {
  IMGSEARCH_CHECK(image.width > 0 && image.height > 0, ErrorKind::InvalidArgument, "thumbnail: empty image");
  IMGSEARCH_CHECK(options.max_side >= 1 && options.quality >= 1 && options.quality <= 100, ErrorKind::InvalidArgument,
                  "thumbnail: max_side must be positive and quality in 1..100");
  const int longer = std::max(image.width, image.height);
  const Image* src = &image;
  Image resized;
  if (longer > options.max_side) {
    const double scale = static_cast<double>(options.max_side) / longer;
    const int w = std::max(1, static_cast<int>(std::lround(image.width * scale)));
    const int h = std::max(1, static_cast<int>(std::lround(image.height * scale)));
    resized = resize_exact(image, w, h);
    src = &resized;
  }
  std::vector<std::uint8_t> jpeg;
  const int ok = stbi_write_jpg_to_func(append_bytes, &jpeg, src->width, src->height, 3, src->pixels.data(),
                                        options.quality);
  IMGSEARCH_CHECK(ok != 0 && !jpeg.empty(), ErrorKind::Io, "thumbnail: JPEG encoding of a {}x{} image failed",
                  src->width, src->height);
  return jpeg;
}

std::vector<std::uint8_t> thumbnail_file(const std::string& path, const ThumbnailOptions& options) {
  DecodeOptions decode;
  decode.min_shorter_side = options.max_side;
  const Image image = decode_image_file(path, decode);
  try {
    return make_thumbnail(image, options);
  } catch (const Error& e) {
    throw_error(e.kind(), "{}: {}", path, e.what());
  }
}

std::string base64_encode(const std::uint8_t* data, std::size_t size) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t v = (std::uint32_t(data[i]) << 16) | (std::uint32_t(data[i + 1]) << 8) | data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (size - i == 1) {
    const std::uint32_t v = std::uint32_t(data[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (size - i == 2) {
    const std::uint32_t v = (std::uint32_t(data[i]) << 16) | (std::uint32_t(data[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string jpeg_data_uri(const std::vector<std::uint8_t>& jpeg) {
  return "data:image/jpeg;base64," + base64_encode(jpeg.data(), jpeg.size());
}

}  // namespace imgsearch
