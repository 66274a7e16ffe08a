#include "test_helpers.h"

#include <imgsearch/image.h>
#include <imgsearch/model.h>
#include <imgsearch/preprocess.h>

#include <catch2/catch.hpp>

#include <fstream>

using namespace imgsearch;

namespace {

std::vector<std::string> reference_paths() {
  std::ifstream in(test::shared("models/mobilenet_v2/reference_embeddings.txt"));
  std::vector<std::string> paths;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) paths.push_back(line);
  return paths;
}

}  // namespace

// The C++ pipeline (decode, antialiased resize, crop, normalise, model) reproduces the
// Python torchvision + PIL reference embeddings of the real MobileNetV2.
TEST_CASE("embeddings match the torchvision reference", "[preprocess][model]") {
  const auto paths = reference_paths();
  REQUIRE(paths.size() == 20);
  std::size_t rows = 0, cols = 0;
  const auto reference = test::read_npy_f32(test::shared("models/mobilenet_v2/reference_embeddings.npy"), rows, cols);
  REQUIRE(rows == 20);
  REQUIRE(cols == 1280);

  const auto precision = GENERATE(Precision::Fp32, Precision::Auto);
  ModelOptions options;
  options.overrides.mean = {0.5f, 0.5f, 0.5f};
  options.overrides.std = {0.5f, 0.5f, 0.5f};
  options.precision = precision;
  auto model = Model::load(test::mobilenet_path(), options);
  REQUIRE(model->output_dim() == 1280);
  const auto& cfg = model->info().preprocess;
  std::vector<float> input(3 * 224 * 224), output(1280);
  double worst = 1.0;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const Image image = decode_image_file(test::corel(paths[i]));
    preprocess(image, cfg, input.data());
    model->embed(input.data(), 1, output.data());
    const double c = test::cosine(output.data(), reference.data() + i * cols, cols);
    INFO(paths[i] << " cosine " << c << " precision " << to_string(model->precision()));
    CHECK(c >= 0.995);
    worst = std::min(worst, c);
  }
  // fp32 with a bit-exact resize should be far closer than the 0.995 bar.
  if (model->precision() == Precision::Fp32) CHECK(worst >= 0.9999);
}

TEST_CASE("resize follows torchvision's shorter-side rule and keeps a flat image flat", "[preprocess]") {
  Image img;
  img.width = 400;
  img.height = 300;
  img.pixels.assign(400 * 300 * 3, 77);
  const Image r = resize_shorter_side(img, 256);
  CHECK(r.width == 341);  // int(256 * 400 / 300), truncated like torchvision
  CHECK(r.height == 256);
  for (auto p : r.pixels) REQUIRE(p == 77);

  PreprocessConfig cfg;
  cfg.mean = {0.5f, 0.5f, 0.5f};
  cfg.std = {0.5f, 0.5f, 0.5f};
  std::vector<float> out(3 * 224 * 224);
  preprocess(img, cfg, out.data());
  for (float v : out) REQUIRE(v == Approx(77 / 127.5 - 1).margin(1e-5));
}

TEST_CASE("center crop keeps the middle of a wide image", "[preprocess]") {
  // Left third black, middle white, right third black: after resize and crop of a
  // 3:1 image only the white middle survives.
  Image img;
  img.width = 768;
  img.height = 256;
  img.pixels.assign(768 * 256 * 3, 0);
  for (int y = 0; y < 256; ++y)
    for (int x = 256; x < 512; ++x)
      for (int c = 0; c < 3; ++c) img.pixels[(y * 768 + x) * 3 + c] = 255;
  PreprocessConfig cfg;
  cfg.mean = {0, 0, 0};
  cfg.std = {1, 1, 1};
  std::vector<float> out(3 * 224 * 224);
  preprocess(img, cfg, out.data());
  for (float v : out) REQUIRE(v == Approx(1.0f));
}
