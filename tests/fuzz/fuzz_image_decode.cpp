// libFuzzer harness: decode_image_memory() on arbitrary bytes (JPEG through libjpeg-turbo
// with DCT scaling and EXIF orientation, everything else through stb_image, WebP where
// built in). The pixel limit is lowered so that the fuzzer's memory limit measures leaks
// and over-allocation, not legitimately large images.
#include <imgsearch/error.h>
#include <imgsearch/image.h>

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  imgsearch::DecodeOptions options;
  options.max_pixels = 1u << 22;
  // The last byte picks the decode variant, so both paths get exercised.
  if (size > 0 && (data[size - 1] & 1)) options.min_shorter_side = 32;
  try {
    const imgsearch::Image image = imgsearch::decode_image_memory(data, size, options, "fuzz-input");
    if (image.width <= 0 || image.height <= 0 ||
        image.pixels.size() != static_cast<std::size_t>(image.width) * image.height * 3 ||
        static_cast<std::uint64_t>(image.width) * image.height > options.max_pixels)
      std::abort();
    volatile std::uint8_t sink = image.pixels[image.pixels.size() - 1];
    (void)sink;
  } catch (const imgsearch::Error& e) {
    if (e.kind() != imgsearch::ErrorKind::Decode && e.kind() != imgsearch::ErrorKind::Format) {
      std::fprintf(stderr, "unexpected error kind: %s\n", e.what());
      std::abort();
    }
  }
  return 0;
}
