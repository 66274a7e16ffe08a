#include "test_helpers.h"

#include <imgsearch/extractor.h>
#include <imgsearch/image.h>
#include <imgsearch/preprocess.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <map>

using namespace imgsearch;

// The threaded pipeline gives every input exactly one result, the same vectors as
// embedding images one by one, and carries on past files that cannot be decoded.
TEST_CASE("the extraction pipeline matches one-by-one embedding and survives bad files", "[extractor]") {
  test::TempDir tmp;
  {
    std::ofstream(tmp.file("broken.jpg")) << "definitely not a jpeg";
  }
  std::vector<std::string> paths;
  for (int id : {100, 101, 102, 103, 104}) paths.push_back(test::corel("beaches/" + std::to_string(id) + ".jpg"));
  paths.insert(paths.begin() + 2, tmp.file("broken.jpg"));
  paths.push_back(tmp.file("does-not-exist.jpg"));
  for (int id : {300, 301, 302, 303, 304, 305, 306}) paths.push_back(test::corel("buses/" + std::to_string(id) + ".jpg"));

  ModelOptions options;
  options.overrides.mean = {0.5f, 0.5f, 0.5f};
  options.overrides.std = {0.5f, 0.5f, 0.5f};
  options.precision = Precision::Fp32;
  auto model = Model::load(test::mobilenet_path(), options);
  const int dim = model->output_dim();

  const int batch = GENERATE(1, 3, 8);
  const int threads = GENERATE(1, 2);
  ExtractOptions eo;
  eo.batch_size = batch;
  eo.threads = threads;
  std::map<std::size_t, std::vector<float>> vectors;
  std::map<std::size_t, std::string> errors;
  const std::size_t ok = extract_features(*model, paths, eo, [&](const ExtractResult& r) {
    REQUIRE(r.path == paths[r.input_index]);
    if (r.ok) {
      REQUIRE(vectors.count(r.input_index) == 0);
      vectors[r.input_index].assign(r.vector, r.vector + dim);
    } else {
      errors[r.input_index] = r.error;
    }
  });
  CHECK(ok == 12);
  CHECK(vectors.size() == 12);
  REQUIRE(errors.size() == 2);
  CHECK_THAT(errors[2], Catch::Contains("broken.jpg"));
  CHECK_THAT(errors[6], Catch::Contains("does-not-exist.jpg"));

  std::vector<float> input(3 * 224 * 224), single(dim);
  for (const auto& [i, v] : vectors) {
    preprocess(decode_image_file(paths[i]), model->info().preprocess, input.data());
    model->embed(input.data(), 1, single.data());
    INFO(paths[i]);
    CHECK(test::cosine(v.data(), single.data(), dim) >= 0.99999);
  }
}

TEST_CASE("a cancelled extraction stops early and reports only what it finished", "[extractor]") {
  std::vector<std::string> paths;
  for (int id = 0; id < 40; ++id) paths.push_back(test::corel("africans/" + std::to_string(id) + ".jpg"));
  ModelOptions options;
  options.precision = Precision::Fp32;
  auto model = Model::load(test::random_mobilenet_path(), options);
  std::atomic<bool> cancel{false};
  ExtractOptions eo;
  eo.batch_size = 4;
  eo.cancel = &cancel;
  std::size_t seen = 0;
  const std::size_t ok = extract_features(*model, paths, eo, [&](const ExtractResult& r) {
    ++seen;
    CHECK(r.ok);
    if (seen == 5) cancel = true;
  });
  CHECK(ok == seen);
  CHECK(seen >= 5);
  CHECK(seen < 40);
}
