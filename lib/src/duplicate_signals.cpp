#include "imgsearch/duplicate_signals.h"

#include "imgsearch/error.h"
#include "map_files.h"

#include <xxhash.h>

#include <algorithm>

namespace imgsearch {

std::uint64_t content_hash(const std::uint8_t* data, std::size_t size) { return XXH3_64bits(data, size); }

std::uint64_t content_hash_file(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_image_bytes(path);
  return content_hash(bytes.data(), bytes.size());
}

DuplicateSignals duplicate_signals(const std::uint8_t* file_bytes, std::size_t size, const Image& decoded) {
  DuplicateSignals s;
  s.present = true;
  s.content_hash = content_hash(file_bytes, size);
  s.phash = perceptual_hashes(decoded);
  s.fine_thumbnail = crop_thumbnail(decoded, kFineCropThumbSide);
  const CropThumbnail thumb = coarse_crop_thumbnail(s.fine_thumbnail.data());
  s.thumbnail.assign(thumb.begin(), thumb.end());
  return s;
}

Image decode_with_signals(const std::string& path, const DecodeOptions& options, DuplicateSignals& signals) {
  const std::vector<std::uint8_t> bytes = read_image_bytes(path);
  Image image = decode_image_memory(bytes.data(), bytes.size(), options, path);
  signals = duplicate_signals(bytes.data(), bytes.size(), image);
  return image;
}

void compute_duplicate_signals(const std::vector<std::string>& paths, const DecodeOptions& options, int threads,
                               const std::atomic<bool>* cancel,
                               const std::function<void(std::size_t, const DuplicateSignals&, const std::string&)>& on_result) {
  detail::map_files<DuplicateSignals>(
      paths, threads, cancel,
      [&](const std::string& path, DuplicateSignals& signals) { decode_with_signals(path, options, signals); }, on_result);
}

}  // namespace imgsearch
