// What `imgsearch dedup` compares, computed once per image at indexing time from the
// bytes and pixels the extraction already has: the file's content hash (exact copies) and
// the perceptual hashes of the image in its eight orientations (edited, mirrored and
// rotated copies). Stored in the index's optional DUPSIGS section (docs/formats.md).
#pragma once

#include "imgsearch/image.h"
#include "imgsearch/perceptual_hash.h"
#include "imgsearch/thumbnail_match.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace imgsearch {

struct DuplicateSignals {
  bool present = false;            // false for entries indexed before signals existed
  std::uint64_t content_hash = 0;  // XXH3-64 of the file's bytes
  OrientedHashes phash{};          // phash[o]: the image turned by orientation o
  // The crop signal (thumbnail_match.h): kCropThumbPixels grey levels, border-trimmed;
  // empty for entries indexed before it existed (DUPTHUMB section).
  std::vector<std::uint8_t> thumbnail;
  // The same at 64x64 (kFineCropThumbSide), which settles the pairs the 32x32 one leaves in
  // doubt (60 % crops); empty for entries indexed before it existed (DUPTHM64 section).
  std::vector<std::uint8_t> fine_thumbnail;
};

// XXH3-64 of a buffer / of a file's bytes (Error(Io) naming the file).
std::uint64_t content_hash(const std::uint8_t* data, std::size_t size);
std::uint64_t content_hash_file(const std::string& path);

DuplicateSignals duplicate_signals(const std::uint8_t* file_bytes, std::size_t size, const Image& decoded);

// Reads the file once, decodes it and computes its signals from the same bytes and pixels.
// Throws Error(Decode/Io) naming the file.
Image decode_with_signals(const std::string& path, const DecodeOptions& options, DuplicateSignals& signals);

// Signals for files already indexed without them (no model involved): `threads` decode
// workers (0 = all cores); on_result runs on the calling thread, in completion order, with
// an empty error on success. Stops early when *cancel becomes true.
void compute_duplicate_signals(const std::vector<std::string>& paths, const DecodeOptions& options, int threads,
                               const std::atomic<bool>* cancel,
                               const std::function<void(std::size_t index, const DuplicateSignals&,
                                                        const std::string& error)>& on_result);

}  // namespace imgsearch
