// What the duplicate signals add to indexing, per image: the decode extraction does
// anyway, then the content hash of the bytes, the perceptual hashes of the pixels and
// the crop signal's border-trimmed thumbnails (DUPTHUMB, DUPTHM64).
// Built and run by tests/bench/dedup.sh; prints one line of milliseconds per image.
#include <imgsearch/duplicate_signals.h>
#include <imgsearch/image.h>
#include <imgsearch/perceptual_hash.h>
#include <imgsearch/thumbnail_match.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: signal_cost FILE_LIST MIN_SHORTER_SIDE\n");
    return 2;
  }
  std::vector<std::string> files;
  std::ifstream list(argv[1]);
  for (std::string line; std::getline(list, line);)
    if (!line.empty()) files.push_back(line);
  imgsearch::DecodeOptions decode;
  decode.min_shorter_side = std::stoi(argv[2]);
  using clock = std::chrono::steady_clock;
  double read_decode = 0, content = 0, phash = 0, thumb = 0, thumb32 = 0;
  std::uint64_t sink = 0;
  for (const std::string& f : files) {
    const auto t0 = clock::now();
    const auto bytes = imgsearch::read_image_bytes(f);
    const imgsearch::Image image = imgsearch::decode_image_memory(bytes.data(), bytes.size(), decode, f);
    const auto t1 = clock::now();
    sink ^= imgsearch::content_hash(bytes.data(), bytes.size());
    const auto t2 = clock::now();
    sink ^= imgsearch::perceptual_hashes(image)[0];
    const auto t3 = clock::now();
    // What index keeps: the 64x64 thumbnail and the 32x32 one made from it.
    const std::vector<std::uint8_t> fine = imgsearch::crop_thumbnail(image, imgsearch::kFineCropThumbSide);
    sink ^= imgsearch::coarse_crop_thumbnail(fine.data())[17];
    const auto t4 = clock::now();
    sink ^= imgsearch::crop_thumbnail(image)[17];  // the 32x32 alone, as before the 64x64 one
    const auto t5 = clock::now();
    thumb += std::chrono::duration<double, std::milli>(t4 - t3).count();
    thumb32 += std::chrono::duration<double, std::milli>(t5 - t4).count();
    read_decode += std::chrono::duration<double, std::milli>(t1 - t0).count();
    content += std::chrono::duration<double, std::milli>(t2 - t1).count();
    phash += std::chrono::duration<double, std::milli>(t3 - t2).count();
  }
  const double n = files.empty() ? 1 : double(files.size());
  std::printf("images %zu read+decode_ms %.4f content_hash_ms %.4f phash_ms %.4f crop_thumbnails_ms %.4f (32x32 alone %.4f) (sink %llu)\n",
              files.size(), read_decode / n, content / n, phash / n, thumb / n, thumb32 / n, static_cast<unsigned long long>(sink & 1));
  return 0;
}
