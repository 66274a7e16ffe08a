// Small JPEG thumbnails, made by the library (not links to the originals), so that an HTML
// page that embeds them works wherever it is copied.
#pragma once

#include "imgsearch/image.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace imgsearch {

struct ThumbnailOptions {
  int max_side = 160;  // the longer side is shrunk to this (never enlarged)
  int quality = 80;    // JPEG quality, 1..100
};

// Shrinks (antialiased, keeping the aspect ratio) and encodes as baseline JPEG.
std::vector<std::uint8_t> make_thumbnail(const Image& image, const ThumbnailOptions& options = {});
// Decodes the file (JPEGs at a reduced DCT scale where that is enough) and makes its
// thumbnail. Throws Error(Decode/Io) naming the file.
std::vector<std::uint8_t> thumbnail_file(const std::string& path, const ThumbnailOptions& options = {});

// RFC 4648 base64, with padding.
std::string base64_encode(const std::uint8_t* data, std::size_t size);
// "data:image/jpeg;base64,..." for an <img src>.
std::string jpeg_data_uri(const std::vector<std::uint8_t>& jpeg);

}  // namespace imgsearch
