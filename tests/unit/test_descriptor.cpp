#include "test_helpers.h"

#include <imgsearch/descriptor.h>
#include <imgsearch/error.h>
#include <imgsearch/image.h>
#include <imgsearch/model.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <tuple>

using namespace imgsearch;

TEST_CASE("R-MAC regions follow the authors' grid and stay inside the map", "[descriptor]") {
  // 7 x 7 (a square map): 1 + 4 + 9 squares of sides 7, 4 and 3.
  const auto square = rmac_regions(7, 7);
  REQUIRE(square.size() == 14);
  CHECK(square[0].size == 7);
  CHECK(std::count_if(square.begin(), square.end(), [](const RmacRegion& r) { return r.size == 4; }) == 4);
  CHECK(std::count_if(square.begin(), square.end(), [](const RmacRegion& r) { return r.size == 3; }) == 9);
  // 19 x 25, MobileNetV2's map of a 600 x 800 photo: the grid of Tolias et al.'s code
  // (tests/bench/holidays_descriptors.py's port of it gives the same list).
  const std::vector<std::tuple<int, int, int>> expected{
      {0, 0, 19}, {0, 6, 19}, {0, 0, 12}, {0, 6, 12}, {0, 13, 12}, {7, 0, 12}, {7, 6, 12}, {7, 13, 12},
      {0, 0, 9},  {0, 5, 9},  {0, 10, 9}, {0, 16, 9}, {5, 0, 9},   {5, 5, 9},  {5, 10, 9}, {5, 16, 9},
      {10, 0, 9}, {10, 5, 9}, {10, 10, 9}, {10, 16, 9}};
  std::vector<std::tuple<int, int, int>> got;
  for (const auto& r : rmac_regions(19, 25)) got.emplace_back(r.y, r.x, r.size);
  CHECK(got == expected);
  // Portrait is landscape transposed.
  const auto portrait = rmac_regions(25, 19);
  REQUIRE(portrait.size() == expected.size());
  std::set<std::tuple<int, int, int>> transposed, want(expected.begin(), expected.end());
  for (const auto& r : portrait) transposed.emplace(r.x, r.y, r.size);
  CHECK(transposed == want);
  for (int h = 1; h <= 30; ++h)
    for (int w = 1; w <= 30; ++w) {
      const auto regions = rmac_regions(h, w);
      REQUIRE(!regions.empty());
      for (const auto& r : regions) {
        REQUIRE(r.size >= 1);
        REQUIRE(r.y >= 0);
        REQUIRE(r.x >= 0);
        REQUIRE(r.y + r.size <= h);
        REQUIRE(r.x + r.size <= w);
      }
    }
}

TEST_CASE("R-MAC max-pools regions, normalises each and the sum", "[descriptor]") {
  // 4 x 6 map, 3 channels: channel 0 peaks at one position, channel 1 is a constant
  // floor everywhere, channel 2 is zero.
  const int h = 4, w = 6, c = 3;
  std::vector<float> map(static_cast<std::size_t>(h) * w * c, 0.0f);
  for (int i = 0; i < h * w; ++i) map[i * c + 1] = 0.1f;
  map[(2 * w + 3) * c + 0] = 5.0f;
  std::vector<float> sum(c, 0.0f);
  add_rmac(map.data(), h, w, c, sum.data());
  const double norm = std::sqrt(sum[0] * sum[0] + sum[1] * sum[1] + sum[2] * sum[2]);
  CHECK(norm == Approx(1.0).epsilon(1e-5));
  CHECK(sum[2] == 0.0f);
  // The peak dominates every region that holds it, the floor the others.
  int with_peak = 0;
  const auto regions = rmac_regions(h, w);
  for (const auto& r : regions) with_peak += (r.y <= 2 && 2 < r.y + r.size && r.x <= 3 && 3 < r.x + r.size);
  REQUIRE(with_peak > 0);
  REQUIRE(with_peak < static_cast<int>(regions.size()));
  CHECK(sum[0] > 0.0f);
  CHECK(sum[1] > 0.0f);
  // Adding a second map adds its unit vector.
  add_rmac(map.data(), h, w, c, sum.data());
  CHECK(std::sqrt(sum[0] * sum[0] + sum[1] * sum[1]) == Approx(2.0).epsilon(1e-5));
}

TEST_CASE("descriptor names parse and print back", "[descriptor]") {
  CHECK(Descriptor::parse("pooled").pooled());
  const Descriptor rmac = Descriptor::parse("rmac");
  CHECK(rmac.kind == DescriptorKind::Rmac);
  CHECK(rmac.scales == default_rmac_scales());
  CHECK(rmac.name() == "rmac:448,640,800");
  CHECK(Descriptor::parse(rmac.name()) == rmac);
  CHECK(Descriptor::parse("rmac:512").scales == std::vector<int>{512});
  for (const char* bad : {"", "gem", "rmac:", "rmac:0", "rmac:15", "rmac:4096", "rmac:448,,640", "rmac:448x",
                          "rmac:1,2,3,4,5,6,7,8,9", "RMAC"})
    CHECK_THROWS_AS(Descriptor::parse(bad), Error);
  CHECK_THROWS_WITH(Descriptor::parse("gem"), Catch::Contains("unknown descriptor 'gem'"));
}

// The real MobileNetV2: R-MAC vectors are the feature map's channels, unit length, and
// rank another photo of the same Holidays scene above the photos of other scenes.
TEST_CASE("the R-MAC descriptor runs the model's feature map on the whole image", "[descriptor][model]") {
  ModelOptions options;
  options.overrides.mean = {0.5f, 0.5f, 0.5f};
  options.overrides.std = {0.5f, 0.5f, 0.5f};
  options.overrides.descriptor = Descriptor::parse("rmac:320,448");
  options.precision = Precision::Fp32;
  options.threads = 2;
  // A descriptor made in code is checked like a parsed one.
  ModelOptions no_scales = options;
  no_scales.overrides.descriptor = Descriptor{DescriptorKind::Rmac, {}};
  CHECK_THROWS_WITH(Model::load(test::mobilenet_path(), no_scales), Catch::Contains("bad descriptor"));
  no_scales.overrides.descriptor = Descriptor{DescriptorKind::Rmac, {448, 4096}};
  CHECK_THROWS_WITH(Model::load(test::mobilenet_path(), no_scales), Catch::Contains("bad descriptor rmac:448,4096"));
  auto model = Model::load(test::mobilenet_path(), options);
  CHECK(model->info().descriptor.name() == "rmac:320,448");
  REQUIRE(model->output_dim() == 1280);
  CHECK(model->min_decode_shorter_side() == 896);

  const Image photo = decode_image_file(test::shared("datasets/holidays300/images/100000.jpg"));
  const ModelInput in = model->prepare(photo);
  REQUIRE(in.planes.size() == 2);
  // The whole image, longer side at each scale, aspect kept.
  for (std::size_t s = 0; s < 2; ++s) {
    const ModelInput::Plane& p = in.planes[s];
    CHECK(std::max(p.height, p.width) == model->info().descriptor.scales[s]);
    CHECK(std::abs(static_cast<double>(p.width) / p.height - static_cast<double>(photo.width) / photo.height) < 0.01);
  }
  std::vector<float> v(1280);
  model->embed({&in}, v.data());
  CHECK(test::cosine(v.data(), v.data(), 1280) == Approx(1.0).epsilon(1e-5));
  // Pooled-batch entry point refuses: its inputs are crops.
  std::vector<float> crop(3 * 224 * 224, 0.0f);
  CHECK_THROWS_WITH(model->embed(crop.data(), 1, v.data()), Catch::Contains("takes prepared inputs"));

  // Two scenes of two photos each, and two photos of other scenes, embedded in one call:
  // each of the four finds its mate first.
  std::vector<ModelInput> inputs;
  for (const char* name : {"100000", "100001", "100100", "100101", "100200", "100300"})
    inputs.push_back(model->prepare(decode_image_file(test::shared(std::string("datasets/holidays300/images/") + name + ".jpg"))));
  std::vector<const ModelInput*> pointers;
  for (const auto& i : inputs) pointers.push_back(&i);
  std::vector<float> all(pointers.size() * 1280);
  model->embed(pointers, all.data());
  // Same-size photos share a forward pass; each vector is still its own.
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    std::vector<float> one(1280);
    model->embed({&inputs[i]}, one.data());
    CHECK(test::cosine(one.data(), &all[i * 1280], 1280) > 0.99999);
  }
  for (std::size_t q = 0; q < 4; ++q) {
    const double mate = test::cosine(&all[q * 1280], &all[(q ^ 1) * 1280], 1280);
    for (std::size_t o = 0; o < 6; ++o)
      if (o / 2 != q / 2) CHECK(mate > test::cosine(&all[q * 1280], &all[o * 1280], 1280));
  }
}
