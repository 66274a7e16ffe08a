// Image decoding: files and memory buffers to 8-bit RGB pixels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace imgsearch {

// 8-bit RGB, row-major, interleaved, no padding.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> pixels;  // width * height * 3
};

struct DecodeOptions {
  // Images declaring more pixels than this are refused before any pixel buffer is
  // allocated: a 30000x30000 PNG is a few kilobytes on disk and 2.7 GB decoded.
  std::uint64_t max_pixels = 100'000'000;
  // When set, JPEGs may be decoded at a reduced DCT scale (1/2, 1/4, 1/8) as long as
  // the shorter side stays >= min_shorter_side. 0 decodes at full size.
  int min_shorter_side = 0;
  // Apply the EXIF orientation tag, as photo viewers do.
  bool apply_exif_orientation = true;
};

// Supported containers: JPEG (libjpeg-turbo; CMYK and progressive too; EXIF orientation
// applied), WebP (libwebp; still images), PNG (8 and 16 bit, grey, palette, alpha), BMP,
// GIF (first frame) and whatever else stb_image reads. Alpha is dropped, not composited,
// as PIL's convert("RGB") does. A file that ends before its image data does (truncated
// JPEG, PNG without IEND, GIF cut inside its first frame, BMP/TGA/PNM shorter than
// their pixels, incomplete WebP) is an error, never a partly grey picture. Images declaring more than
// options.max_pixels pixels are refused from their header, before any pixel buffer is
// allocated. Only regular files are read (a FIFO is refused, never waited on).
// Throws Error(ErrorKind::Decode or Io) whose message starts with the file name.
Image decode_image_file(const std::string& path, const DecodeOptions& options = {});
Image decode_image_memory(const std::uint8_t* data, std::size_t size, const DecodeOptions& options = {},
                          const std::string& name_for_errors = "<memory>");

// The whole file, for decode_image_memory (regular files only, at most 1 GiB).
// Throws Error(Io or Decode) whose message starts with the file name.
std::vector<std::uint8_t> read_image_bytes(const std::string& path);

// True when the file name has an extension imgsearch treats as an image.
bool has_image_extension(const std::string& path);

}  // namespace imgsearch
