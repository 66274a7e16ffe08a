#include "test_helpers.h"

#include <imgsearch/duplicate_signals.h>
#include <imgsearch/error.h>
#include <imgsearch/image.h>
#include <imgsearch/perceptual_hash.h>
#include <imgsearch/preprocess.h>
#include <imgsearch/thumbnail.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>

using namespace imgsearch;

namespace {

// The image turned by `o`, pixel by pixel (what an editor writes).
Image turned(const Image& in, Orientation o) {
  const int w = in.width, h = in.height;
  const bool transpose = o == Orientation::Transpose || o == Orientation::Rotate90 || o == Orientation::Rotate270 ||
                         o == Orientation::AntiTranspose;
  Image out;
  out.width = transpose ? h : w;
  out.height = transpose ? w : h;
  out.pixels.resize(in.pixels.size());
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (o) {
        case Orientation::Identity: break;
        case Orientation::Mirror: sx = w - 1 - x; break;
        case Orientation::Flip: sy = h - 1 - y; break;
        case Orientation::Rotate180: sx = w - 1 - x; sy = h - 1 - y; break;
        case Orientation::Transpose: sx = y; sy = x; break;
        case Orientation::Rotate90: sx = y; sy = h - 1 - x; break;        // clockwise
        case Orientation::Rotate270: sx = w - 1 - y; sy = x; break;       // counter-clockwise
        case Orientation::AntiTranspose: sx = w - 1 - y; sy = h - 1 - x; break;
      }
      std::copy_n(&in.pixels[(static_cast<std::size_t>(sy) * w + sx) * 3], 3,
                  &out.pixels[(static_cast<std::size_t>(y) * out.width + x) * 3]);
    }
  return out;
}

Image edited(const Image& in, const std::function<std::uint8_t(std::uint8_t)>& f) {
  Image out = in;
  for (auto& p : out.pixels) p = f(p);
  return out;
}

Image grey(const Image& in) {
  Image out = in;
  for (std::size_t i = 0; i < out.pixels.size(); i += 3) {
    const auto y = static_cast<std::uint8_t>((299 * in.pixels[i] + 587 * in.pixels[i + 1] + 114 * in.pixels[i + 2]) / 1000);
    out.pixels[i] = out.pixels[i + 1] = out.pixels[i + 2] = y;
  }
  return out;
}

Image reencoded(const Image& in, int max_side, int quality) {
  const auto jpeg = make_thumbnail(in, {max_side, quality});
  return decode_image_memory(jpeg.data(), jpeg.size());
}

const char* kPhotos[] = {"africans/12.jpg", "beaches/105.jpg", "buildings/230.jpg", "buses/317.jpg",
                         "dinosaurs/428.jpg", "elephants/512.jpg", "flowers/640.jpg", "horses/715.jpg",
                         "mountains/850.jpg", "food/930.jpg"};

}  // namespace

TEST_CASE("the hash of a turned image is the matching oriented hash of the original", "[phash]") {
  for (const char* name : {"buses/317.jpg", "horses/715.jpg"}) {
    const Image photo = decode_image_file(test::corel(name));
    const OrientedHashes hashes = perceptual_hashes(photo);
    for (int o = 0; o < kOrientations; ++o) {
      const auto orientation = static_cast<Orientation>(o);
      INFO(name << " " << orientation_name(orientation));
      CHECK(hamming_distance(perceptual_hash(turned(photo, orientation)), hashes[o]) <= 2);
    }
    // A mirrored copy is far from the unturned hash: the orientations are needed.
    CHECK(hamming_distance(hashes[0], hashes[static_cast<int>(Orientation::Mirror)]) > 12);
  }
}

TEST_CASE("re-encoded, resized, brightened and grey copies hash close, other photos far", "[phash]") {
  std::vector<std::uint64_t> originals;
  for (const char* name : kPhotos) {
    const Image photo = decode_image_file(test::corel(name));
    const std::uint64_t h = perceptual_hash(photo);
    originals.push_back(h);
    INFO(name);
    CHECK((h & 1) == 0);  // the DC bit is never set
    CHECK(hamming_distance(h, perceptual_hash(reencoded(photo, 256, 20))) <= 6);
    CHECK(hamming_distance(h, perceptual_hash(reencoded(photo, 96, 60))) <= 6);
    CHECK(hamming_distance(h, perceptual_hash(resize_exact(photo, 128, 100))) <= 6);
    CHECK(hamming_distance(h, perceptual_hash(grey(photo))) <= 6);
    CHECK(hamming_distance(h, perceptual_hash(edited(photo, [](std::uint8_t v) {
                             return static_cast<std::uint8_t>(std::min(255, v * 13 / 10));
                           }))) <= 8);
  }
  for (std::size_t i = 0; i < originals.size(); ++i)
    for (std::size_t j = i + 1; j < originals.size(); ++j) {
      INFO(kPhotos[i] << " vs " << kPhotos[j]);
      CHECK(hamming_distance(originals[i], originals[j]) > 14);
    }
}

TEST_CASE("tiny and odd-sized images hash without error, empty images are refused", "[phash]") {
  Image one;
  one.width = one.height = 1;
  one.pixels = {10, 200, 30};
  CHECK(perceptual_hash(one) == 0);  // flat: no coefficient exceeds the median
  Image black;
  black.width = 40;
  black.height = 30;
  black.pixels.assign(40 * 30 * 3, 0);
  CHECK(perceptual_hash(black) == 0);
  Image strip;
  strip.width = 3;
  strip.height = 77;
  for (int i = 0; i < 3 * 77 * 3; ++i) strip.pixels.push_back(static_cast<std::uint8_t>(i * 37 % 251));
  CHECK((perceptual_hash(strip) & 1) == 0);
  CHECK_THROWS_AS(perceptual_hash(Image{}), Error);
}

TEST_CASE("content hashes: identical bytes match, one changed byte does not", "[phash]") {
  test::TempDir dir;
  const auto bytes = read_image_bytes(test::corel("buses/317.jpg"));
  auto copy = bytes;
  copy[copy.size() / 2] ^= 1;
  CHECK(content_hash(bytes.data(), bytes.size()) == content_hash_file(test::corel("buses/317.jpg")));
  CHECK(content_hash(bytes.data(), bytes.size()) != content_hash(copy.data(), copy.size()));
  DuplicateSignals s;
  const Image image = decode_with_signals(test::corel("buses/317.jpg"), {}, s);
  CHECK(s.present);
  CHECK(s.content_hash == content_hash(bytes.data(), bytes.size()));
  CHECK(s.phash == perceptual_hashes(image));
  CHECK_THROWS_AS(decode_with_signals(dir.file("missing.jpg"), {}, s), Error);
}
