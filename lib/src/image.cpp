#include "imgsearch/image.h"

#include "imgsearch/error.h"

#include <stb_image.h>
#include <turbojpeg.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace imgsearch {

namespace {

constexpr std::uint64_t kMaxFileBytes = 1ull << 30;  // 1 GiB: no photo is bigger

std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  // O_NONBLOCK: a FIFO named like an image must not block the run; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw_error(ErrorKind::Io, "{}: cannot open: {}", path, std::strerror(errno));
  std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* f) {
    ::close(*f);
    delete f;
  });
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_error(ErrorKind::Io, "{}: cannot stat: {}", path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw_error(ErrorKind::Io, "{}: is a directory", path);
  if (!S_ISREG(st.st_mode)) throw_error(ErrorKind::Io, "{}: not a regular file", path);
  if (static_cast<std::uint64_t>(st.st_size) > kMaxFileBytes)
    throw_error(ErrorKind::Decode, "{}: file too large ({} bytes)", path, st.st_size);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_error(ErrorKind::Io, "{}: read error: {}", path, std::strerror(errno));
    if (n == 0) throw_error(ErrorKind::Io, "{}: file shrank while being read", path);
    got += static_cast<std::size_t>(n);
  }
  return bytes;
}

bool is_jpeg(const std::uint8_t* data, std::size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}
std::uint32_t le32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) | (std::uint32_t(p[3]) << 24);
}
std::uint32_t le16(const std::uint8_t* p) { return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8); }

void check_pixel_limit(std::uint64_t width, std::uint64_t height, const DecodeOptions& options, const std::string& name) {
  if (width == 0 || height == 0) throw_error(ErrorKind::Decode, "{}: image has no pixels", name);
  if (height > options.max_pixels / width)  // width * height > max_pixels, without overflow
    throw_error(ErrorKind::Decode, "{}: {}x{} pixels exceeds the limit of {} pixels", name, width, height,
                options.max_pixels);
}

bool is_png(const std::uint8_t* data, std::size_t size) {
  return size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0;
}
bool is_gif(const std::uint8_t* data, std::size_t size) {
  return size >= 6 && (std::memcmp(data, "GIF87a", 6) == 0 || std::memcmp(data, "GIF89a", 6) == 0);
}
bool is_bmp(const std::uint8_t* data, std::size_t size) { return size >= 2 && data[0] == 'B' && data[1] == 'M'; }
bool is_webp(const std::uint8_t* data, std::size_t size) {
  return size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0;
}

// stb_image decodes a cut-off PNG, GIF or BMP without complaint, filling what is missing
// with zeros or garbage: a silently wrong embedding. These checks walk the container
// (no decompression) and refuse a file that ends before its image data does.

// Every chunk must lie inside the file, up to and including IEND.
// The pixel limit is checked first, from IHDR.
void check_png(const std::uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& name) {
  if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0)
    check_pixel_limit(be32(data + 16), be32(data + 20), options, name);
  std::size_t pos = 8;
  for (;;) {
    if (size - pos < 12)
      throw_error(ErrorKind::Decode, "{}: truncated PNG (the file ends before its IEND chunk)", name);
    const std::uint32_t length = be32(data + pos);
    if (length > size - pos - 12)
      throw_error(ErrorKind::Decode, "{}: truncated PNG (chunk '{}' at offset {} is cut short)", name,
                  std::string(reinterpret_cast<const char*>(data + pos + 4), 4), pos);
    if (std::memcmp(data + pos + 4, "IEND", 4) == 0) return;
    pos += 12 + std::size_t(length);
  }
}

// The blocks up to and including the first image's data must lie inside the file.
void check_gif(const std::uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& name) {
  auto truncated = [&] { throw_error(ErrorKind::Decode, "{}: truncated GIF (the file ends inside its first frame)", name); };
  if (size < 13) truncated();
  check_pixel_limit(le16(data + 6), le16(data + 8), options, name);  // the logical screen
  std::size_t pos = 13;
  if (data[10] & 0x80) pos += 3 * (std::size_t(2) << (data[10] & 7));  // global colour table
  auto skip_sub_blocks = [&] {
    for (;;) {
      if (pos >= size) truncated();
      const std::size_t n = data[pos++];
      if (n == 0) return;
      pos += n;
    }
  };
  for (;;) {
    if (pos >= size) truncated();
    const std::uint8_t block = data[pos++];
    if (block == 0x21) {  // extension: label, then sub-blocks
      ++pos;
      skip_sub_blocks();
    } else if (block == 0x2C) {  // image descriptor
      if (size - pos < 9) truncated();
      const std::uint8_t flags = data[pos + 8];
      pos += 9;
      if (flags & 0x80) pos += 3 * (std::size_t(2) << (flags & 7));  // local colour table
      ++pos;                                                         // LZW minimum code size
      skip_sub_blocks();
      return;
    } else if (block == 0x3B) {
      throw_error(ErrorKind::Decode, "{}: GIF without any image", name);
    } else {
      throw_error(ErrorKind::Decode, "{}: corrupt GIF (unknown block 0x{:02x} at offset {})", name, block, pos - 1);
    }
  }
}

// Uncompressed pixel rows, or the size the header declares, must lie inside the file.
void check_bmp(const std::uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& name) {
  if (size < 26) throw_error(ErrorKind::Decode, "{}: truncated BMP (header cut short)", name);
  const std::uint64_t declared_size = le32(data + 2), offset = le32(data + 10), header = le32(data + 14);
  std::uint64_t width = 0, height = 0, bpp = 0, compression = 0;
  if (header == 12) {  // OS/2 BITMAPCOREHEADER
    width = le16(data + 18);
    height = le16(data + 20);
    bpp = le16(data + 24);
  } else {
    if (size < 34) throw_error(ErrorKind::Decode, "{}: truncated BMP (header cut short)", name);
    const auto w = static_cast<std::int32_t>(le32(data + 18)), h = static_cast<std::int32_t>(le32(data + 22));
    width = static_cast<std::uint64_t>(w < 0 ? -std::int64_t(w) : w);
    height = static_cast<std::uint64_t>(h < 0 ? -std::int64_t(h) : h);  // negative: top-down rows
    bpp = le16(data + 28);
    compression = le32(data + 30);
  }
  check_pixel_limit(width, height, options, name);
  std::uint64_t needed = declared_size;
  if ((compression == 0 || compression == 3 || compression == 6) && width > 0 && height > 0 && bpp > 0) {
    const std::uint64_t stride = (width * bpp + 31) / 32 * 4;
    needed = offset + stride * (height - 1) + (width * bpp + 7) / 8;  // last row's padding may be left out
  }
  if (needed > size)
    throw_error(ErrorKind::Decode, "{}: truncated BMP ({} bytes, the header needs {})", name, size, needed);
}

// Binary PNM (P5 grey, P6 RGB; the ones stb reads): the samples after the header.
bool is_pnm(const std::uint8_t* data, std::size_t size) {
  return size >= 3 && data[0] == 'P' && (data[1] == '5' || data[1] == '6');
}
void check_pnm(const std::uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& name) {
  std::size_t pos = 2;
  std::uint64_t fields[3] = {0, 0, 0};  // width, height, maxval
  for (std::uint64_t& field : fields) {
    for (;;) {  // whitespace and comments
      if (pos >= size) throw_error(ErrorKind::Decode, "{}: truncated PNM (header cut short)", name);
      if (data[pos] == '#') {
        while (pos < size && data[pos] != '\n' && data[pos] != '\r') ++pos;
      } else if (std::isspace(data[pos])) {
        ++pos;
      } else {
        break;
      }
    }
    if (!std::isdigit(data[pos])) throw_error(ErrorKind::Decode, "{}: corrupt PNM header", name);
    while (pos < size && std::isdigit(data[pos]) && field < (1ull << 32)) field = field * 10 + (data[pos++] - '0');
    if (pos >= size) throw_error(ErrorKind::Decode, "{}: truncated PNM (header cut short)", name);
  }
  ++pos;  // the one whitespace byte that ends the header
  check_pixel_limit(fields[0], fields[1], options, name);
  const std::uint64_t needed = fields[0] * fields[1] * (data[1] == '6' ? 3 : 1) * (fields[2] > 255 ? 2 : 1);
  if (size < pos || size - pos < needed)
    throw_error(ErrorKind::Decode, "{}: truncated PNM ({} bytes of samples, the header needs {})", name,
                size < pos ? 0 : size - pos, needed);
}

// TGA has no magic number; stb_image recognises it by a plausible header, and so does
// this. Uncompressed pixels must all be there; RLE packets are walked to the last pixel.
bool looks_like_tga(const std::uint8_t* data, std::size_t size) {
  if (size < 18 || data[1] > 1) return false;
  const int type = data[2];
  if (type != 1 && type != 2 && type != 3 && type != 9 && type != 10 && type != 11) return false;
  const int bpp = data[16];
  return le16(data + 12) > 0 && le16(data + 14) > 0 && (bpp == 8 || bpp == 15 || bpp == 16 || bpp == 24 || bpp == 32);
}
void check_tga(const std::uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& name) {
  const std::uint64_t width = le16(data + 12), height = le16(data + 14);
  check_pixel_limit(width, height, options, name);
  const std::uint64_t pixel_bytes = (std::uint64_t(data[16]) + 7) / 8;
  const std::uint64_t colormap_bytes = data[1] ? std::uint64_t(le16(data + 5)) * ((std::uint64_t(data[7]) + 7) / 8) : 0;
  std::uint64_t pos = 18 + std::uint64_t(data[0]) + colormap_bytes;
  const std::uint64_t pixels = width * height;
  std::uint64_t done = pixels;
  if (data[2] < 9) {
    pos += pixels * pixel_bytes;
  } else {
    for (done = 0; done < pixels;) {
      if (pos >= size) break;
      const std::uint8_t packet = data[pos++];
      const std::uint64_t count = (packet & 0x7F) + 1;
      pos += (packet & 0x80) ? pixel_bytes : count * pixel_bytes;
      done += count;
    }
  }
  if (pos > size || done < pixels) throw_error(ErrorKind::Decode, "{}: truncated TGA ({} bytes, the pixels need {})", name, size, pos);
}

// Offset of the first SOS marker, walking the segments the way libjpeg does (stray
// bytes between segments skipped); 0 when the walk fails.
std::size_t jpeg_first_scan(const std::uint8_t* data, std::size_t size) {
  std::size_t pos = 2;
  while (pos + 4 <= size) {
    if (data[pos] != 0xFF) {  // extraneous bytes before a marker
      ++pos;
      continue;
    }
    const std::uint8_t marker = data[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xDA) return pos;
    if (marker == 0xD9) return 0;
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
      pos += 2;
      continue;
    }
    const std::size_t length = (static_cast<std::size_t>(data[pos + 2]) << 8) | data[pos + 3];
    if (length < 2) return 0;
    pos += 2 + length;
  }
  return 0;
}

// EXIF orientation (tag 0x0112) from a JPEG's APP1 segment; 1 when absent or unreadable.
int jpeg_exif_orientation(const std::uint8_t* data, std::size_t size) {
  std::size_t pos = 2;
  while (pos + 4 <= size) {
    if (data[pos] != 0xFF) return 1;
    const std::uint8_t marker = data[pos + 1];
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
      pos += 2;
      continue;
    }
    if (marker == 0xFF) {  // fill byte
      pos += 1;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return 1;  // image data starts: no EXIF before it
    const std::size_t length = (static_cast<std::size_t>(data[pos + 2]) << 8) | data[pos + 3];
    if (length < 2 || pos + 2 + length > size) return 1;
    const std::uint8_t* seg = data + pos + 4;
    const std::size_t seg_len = length - 2;
    if (marker == 0xE1 && seg_len >= 14 && std::memcmp(seg, "Exif\0\0", 6) == 0) {
      const std::uint8_t* tiff = seg + 6;
      const std::size_t tiff_len = seg_len - 6;
      const bool little = tiff[0] == 'I' && tiff[1] == 'I';
      if (!little && !(tiff[0] == 'M' && tiff[1] == 'M')) return 1;
      auto u16 = [&](std::size_t off) -> std::uint32_t {
        return little ? (tiff[off] | (tiff[off + 1] << 8)) : ((tiff[off] << 8) | tiff[off + 1]);
      };
      auto u32 = [&](std::size_t off) -> std::uint32_t {
        return little ? (std::uint32_t(tiff[off]) | (std::uint32_t(tiff[off + 1]) << 8) |
                         (std::uint32_t(tiff[off + 2]) << 16) | (std::uint32_t(tiff[off + 3]) << 24))
                      : ((std::uint32_t(tiff[off]) << 24) | (std::uint32_t(tiff[off + 1]) << 16) |
                         (std::uint32_t(tiff[off + 2]) << 8) | std::uint32_t(tiff[off + 3]));
      };
      const std::uint32_t ifd = u32(4);
      if (ifd > tiff_len || tiff_len - ifd < 2) return 1;
      const std::uint32_t count = u16(ifd);
      for (std::uint32_t i = 0; i < count; ++i) {
        const std::size_t e = ifd + 2 + std::size_t(i) * 12;
        if (e + 12 > tiff_len) return 1;
        if (u16(e) == 0x0112) {
          const std::uint32_t value = u16(e + 8);
          return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
        }
      }
      return 1;
    }
    pos += 2 + length;
  }
  return 1;
}

// Applies an EXIF orientation so the image shows as a photo viewer would show it.
Image apply_orientation(Image in, int orientation) {
  if (orientation <= 1 || orientation > 8) return in;
  const int w = in.width, h = in.height;
  const bool swap = orientation >= 5;
  Image out;
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  out.pixels.resize(in.pixels.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = 0, sy = 0;  // source pixel for output (x, y)
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break;              // mirrored horizontally
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;      // rotated 180
        case 4: sx = x; sy = h - 1 - y; break;              // mirrored vertically
        case 5: sx = y; sy = x; break;                      // transposed
        case 6: sx = y; sy = h - 1 - x; break;              // rotated 90 CW to view
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;      // transversed
        case 8: sx = w - 1 - y; sy = x; break;              // rotated 90 CCW to view
      }
      std::memcpy(&out.pixels[(std::size_t(y) * out.width + x) * 3], &in.pixels[(std::size_t(sy) * w + sx) * 3], 3);
    }
  }
  return out;
}

Image decode_jpeg(const std::uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& name) {
  std::unique_ptr<void, int (*)(tjhandle)> handle(tjInitDecompress(), &tjDestroy);
  if (!handle) throw_error(ErrorKind::Decode, "{}: cannot initialise the JPEG decoder", name);
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  // A warning (e.g. "extraneous bytes before marker", common in real photos and accepted
  // by PIL) makes tjDecompressHeader3 return -1 too, with the header read all the same.
  if (tjDecompressHeader3(handle.get(), data, static_cast<unsigned long>(size), &width, &height, &subsamp, &colorspace) !=
          0 &&
      (tjGetErrorCode(handle.get()) == TJERR_FATAL || width <= 0 || height <= 0))
    throw_error(ErrorKind::Decode, "{}: not a valid JPEG: {}", name, tjGetErrorStr2(handle.get()));
  // libjpeg-turbo fills the rows of a cut-off file with grey and only warns; and it reports
  // only its first warning, which may be a harmless one. So look for the end-of-image
  // marker after the first scan ourselves (FF D9 cannot occur inside entropy-coded data;
  // an EXIF thumbnail's own FF D9 lies before the first scan).
  if (const std::size_t scan = jpeg_first_scan(data, size); scan > 0) {
    static const std::uint8_t kEoi[2] = {0xFF, 0xD9};
    if (std::search(data + scan, data + size, kEoi, kEoi + 2) == data + size)
      throw_error(ErrorKind::Decode, "{}: truncated JPEG (no end-of-image marker)", name);
  }
  check_pixel_limit(static_cast<std::uint64_t>(width), static_cast<std::uint64_t>(height), options, name);

  // DCT-domain downscaling: decoding at 1/2, 1/4 or 1/8 is far cheaper than decoding at
  // full size and resizing, when the result is shrunk a lot anyway.
  int out_w = width, out_h = height;
  if (options.min_shorter_side > 0) {
    int count = 0;
    const tjscalingfactor* factors = tjGetScalingFactors(&count);
    const int shorter = std::min(width, height);
    int best = shorter;
    for (int i = 0; i < count; ++i) {
      if (factors[i].num >= factors[i].denom) continue;
      const int scaled = TJSCALED(shorter, factors[i]);
      if (scaled >= options.min_shorter_side && scaled < best) {
        best = scaled;
        out_w = TJSCALED(width, factors[i]);
        out_h = TJSCALED(height, factors[i]);
      }
    }
  }

  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  const int channels = cmyk ? 4 : 3;
  std::vector<std::uint8_t> buffer(std::size_t(out_w) * out_h * channels);
  const int rc = tjDecompress2(handle.get(), data, static_cast<unsigned long>(size), buffer.data(), out_w, 0, out_h,
                               cmyk ? TJPF_CMYK : TJPF_RGB, 0);
  if (rc != 0) {
    const char* why = tjGetErrorStr2(handle.get());
    // Benign warnings ("extraneous bytes before marker") are common in real photos and
    // PIL accepts them too. A truncated file is different: libjpeg-turbo fills the
    // missing rows with grey, which would silently give a wrong embedding.
    if (tjGetErrorCode(handle.get()) == TJERR_FATAL) throw_error(ErrorKind::Decode, "{}: cannot decode JPEG: {}", name, why);
    if (std::strstr(why, "Premature end") != nullptr) throw_error(ErrorKind::Decode, "{}: truncated JPEG", name);
  }
  Image image;
  image.width = out_w;
  image.height = out_h;
  if (!cmyk) {
    image.pixels = std::move(buffer);
  } else {
    // Adobe-style (inverted) CMYK, as written by Photoshop: R = C*K/255 and so on.
    image.pixels.resize(std::size_t(out_w) * out_h * 3);
    for (std::size_t i = 0, n = std::size_t(out_w) * out_h; i < n; ++i) {
      const unsigned k = buffer[i * 4 + 3];
      for (int c = 0; c < 3; ++c) image.pixels[i * 3 + c] = static_cast<std::uint8_t>((buffer[i * 4 + c] * k + 127) / 255);
    }
  }
  if (options.apply_exif_orientation) image = apply_orientation(std::move(image), jpeg_exif_orientation(data, size));
  return image;
}

Image decode_webp(const std::uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& name) {
  WebPBitstreamFeatures features;
  const VP8StatusCode status = WebPGetFeatures(data, size, &features);
  if (status == VP8_STATUS_NOT_ENOUGH_DATA) throw_error(ErrorKind::Decode, "{}: truncated WebP", name);
  if (status != VP8_STATUS_OK) throw_error(ErrorKind::Decode, "{}: not a valid WebP (libwebp status {})", name, int(status));
  check_pixel_limit(static_cast<std::uint64_t>(features.width), static_cast<std::uint64_t>(features.height), options, name);
  Image image;
  if (features.has_animation) {
    // The first frame, composed on the canvas (like GIF: imgsearch embeds one picture).
    WebPAnimDecoderOptions anim_options;
    if (!WebPAnimDecoderOptionsInit(&anim_options)) throw_error(ErrorKind::Decode, "{}: libwebp version mismatch", name);
    anim_options.color_mode = MODE_RGBA;
    anim_options.use_threads = 0;
    const WebPData webp_data{data, size};
    std::unique_ptr<WebPAnimDecoder, void (*)(WebPAnimDecoder*)> decoder(WebPAnimDecoderNew(&webp_data, &anim_options),
                                                                          &WebPAnimDecoderDelete);
    std::uint8_t* rgba = nullptr;
    int timestamp = 0;
    WebPAnimInfo info;
    if (!decoder || !WebPAnimDecoderGetInfo(decoder.get(), &info) ||
        info.canvas_width != static_cast<std::uint32_t>(features.width) ||
        info.canvas_height != static_cast<std::uint32_t>(features.height) ||
        !WebPAnimDecoderGetNext(decoder.get(), &rgba, &timestamp))
      throw_error(ErrorKind::Decode, "{}: cannot decode animated WebP (truncated or corrupt)", name);
    image.width = features.width;
    image.height = features.height;
    const std::size_t n = std::size_t(image.width) * image.height;
    image.pixels.resize(n * 3);
    for (std::size_t i = 0; i < n; ++i) std::memcpy(&image.pixels[i * 3], rgba + i * 4, 3);
    return image;
  }
  image.width = features.width;
  image.height = features.height;
  image.pixels.resize(std::size_t(image.width) * image.height * 3);
  // Like PIL, alpha is dropped, not composited. Incomplete data is an error here, never
  // a partly grey picture: WebPDecode only succeeds on a complete bitstream.
  if (WebPDecodeRGBInto(data, size, image.pixels.data(), image.pixels.size(), image.width * 3) == nullptr)
    throw_error(ErrorKind::Decode, "{}: cannot decode WebP (truncated or corrupt)", name);
  return image;
}

Image decode_with_stb(const std::uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& name) {
  if (size > static_cast<std::size_t>(INT32_MAX)) throw_error(ErrorKind::Decode, "{}: file too large", name);
  int width = 0, height = 0, channels = 0;
  const int len = static_cast<int>(size);
  if (!stbi_info_from_memory(data, len, &width, &height, &channels)) {
    const char* why = stbi_failure_reason();
    throw_error(ErrorKind::Decode, "{}: not a supported image ({})", name, why ? why : "unknown format");
  }
  check_pixel_limit(static_cast<std::uint64_t>(width), static_cast<std::uint64_t>(height), options, name);
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, len, &width, &height, &channels, 3),
                                                   &stbi_image_free);
  if (!pixels) {
    const char* why = stbi_failure_reason();
    throw_error(ErrorKind::Decode, "{}: cannot decode: {}", name, why ? why : "unknown error");
  }
  Image image;
  image.width = width;
  image.height = height;
  image.pixels.assign(pixels.get(), pixels.get() + std::size_t(width) * height * 3);
  return image;
}

}  // namespace

Image decode_image_memory(const std::uint8_t* data, std::size_t size, const DecodeOptions& options,
                          const std::string& name) {
  if (size == 0) throw_error(ErrorKind::Decode, "{}: empty file", name);
  if (is_jpeg(data, size)) return decode_jpeg(data, size, options, name);
  if (is_webp(data, size)) return decode_webp(data, size, options, name);
  if (is_png(data, size)) check_png(data, size, options, name);
  if (is_gif(data, size)) check_gif(data, size, options, name);
  if (is_bmp(data, size)) check_bmp(data, size, options, name);
  if (is_pnm(data, size)) check_pnm(data, size, options, name);
  if (!is_png(data, size) && !is_gif(data, size) && !is_bmp(data, size) && !is_pnm(data, size) &&
      looks_like_tga(data, size))
    check_tga(data, size, options, name);
  return decode_with_stb(data, size, options, name);
}

Image decode_image_file(const std::string& path, const DecodeOptions& options) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return decode_image_memory(bytes.data(), bytes.size(), options, path);
}

std::vector<std::uint8_t> read_image_bytes(const std::string& path) { return read_file_bytes(path); }

bool has_image_extension(const std::string& path) {
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return false;
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const char* const kExtensions[] = {"jpg", "jpeg", "jpe", "png", "bmp", "gif", "webp", "tga", "pnm", "ppm", "pgm"};
  for (const char* e : kExtensions)
    if (ext == e) return true;
  return false;
}

}  // namespace imgsearch
