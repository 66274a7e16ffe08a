// learn --method head: a small network trained with LibTorch on the labelled images
// (learn.h), stored as a projection with a hidden layer (refinement.h).
#include <imgsearch/error.h>
#include <imgsearch/evaluation.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>
#include <imgsearch/learn.h>
#include <imgsearch/refinement.h>

#include "test_helpers.h"

#include "photo_index.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <random>
#include <string>

using namespace imgsearch;

namespace {

constexpr int kDim = 16;

// Labels no linear map can separate: the sign of x0 * x1 (XOR of two quadrants), hidden
// among 14 dimensions of stronger noise, so the raw cosine ranks by the noise too. LDA's
// 1-d projection for two labels cannot rank by it.
std::vector<float> xor_vectors(std::size_t n, unsigned seed, Labels& labels) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> side(0.5f, 1.5f);
  std::vector<float> v(n * kDim);
  labels.assign(n, "");
  for (std::size_t i = 0; i < n; ++i) {
    float* row = v.data() + i * kDim;
    const float a = (i & 1 ? 1 : -1) * side(rng), b = (i & 2 ? 1 : -1) * side(rng);
    row[0] = a;
    row[1] = b;
    for (int d = 2; d < kDim; ++d) row[d] = normal(rng);
    labels[i] = a * b > 0 ? "same" : "opposite";
  }
  return v;
}

ImageIndex make_index(const std::vector<float>& v) { return test::photo_index(v, kDim); }

// Over the held-out images, the share of each one's 10 nearest held-out images (exact
// search in the index's space) with its label.
double held_out_precision(const ImageIndex& index, const Labels& labels, double holdout, std::uint64_t seed) {
  std::size_t same = 0, total = 0;
  for (std::size_t i = 0; i < index.size(); ++i) {
    if (!is_held_out(index.entry(i).path, holdout, seed)) continue;
    const std::vector<float> q = to_search_space(index, index.model_vector(i), nullptr);
    std::size_t taken = 0;
    for (const SearchHit& h : index.search_exact(q.data(), static_cast<int>(index.size()))) {
      if (h.id == i || !is_held_out(index.entry(h.id).path, holdout, seed)) continue;
      same += labels[h.id] == labels[i];
      if (++taken == 10) break;
    }
    total += taken;
  }
  return double(same) / double(total);
}

}  // namespace

TEST_CASE("learn --method head learns labels no linear projection can, on images it never saw", "[learn][head]") {
  Labels labels;
  const std::vector<float> v = xor_vectors(600, 1, labels);
  LearnOptions options;
  options.holdout = 0.3;
  options.seed = 4;
  options.threads = 1;
  options.dim = 8;
  options.hidden = 32;
  options.epochs = 300;

  ImageIndex raw = make_index(v);
  const double before = held_out_precision(raw, labels, options.holdout, options.seed);
  ImageIndex lda = make_index(v);
  learn_projection(lda, labels, options);
  const double linear = held_out_precision(lda, labels, options.holdout, options.seed);

  ImageIndex head = make_index(v);
  options.method = LearnMethod::Head;
  options.description = R"({"method": "head"})";
  const LearnReport r = learn_projection(head, labels, options);
  const double learned = held_out_precision(head, labels, options.holdout, options.seed);
  INFO("P@10 on the held-out images: raw " << before << ", LDA " << linear << ", head " << learned);
  CHECK(r.labels == 2);
  CHECK(r.held_out > 120);
  CHECK(r.held_out < 240);
  CHECK(r.fitted == 600 - r.held_out);
  CHECK(r.out_dim == 8);
  CHECK(head.dim() == 8);
  CHECK(head.projection().hidden == 32);
  CHECK(head.projection().in_dim == kDim);
  CHECK(lda.dim() == 1);  // two labels: one discriminant
  CHECK(before < 0.7);
  CHECK(linear < 0.7);
  CHECK(learned > 0.9);
  CHECK(learned > before + 0.15);

  // Seeded: the same fit again gives the same weights, another seed others.
  ImageIndex again = make_index(v);
  learn_projection(again, labels, options);
  CHECK(again.projection().matrix == head.projection().matrix);
  CHECK(again.projection().output_matrix == head.projection().output_matrix);

  // Saved and loaded, and applied to an image added afterwards.
  test::TempDir dir;
  const std::string path = dir.file("head.index");
  save_index(head, path);
  ImageIndex loaded = load_index(path);
  CHECK(loaded.projection().hidden == 32);
  CHECK(nlohmann::json::parse(loaded.projection().description) == nlohmann::json{{"method", "head"}, {"epochs", 300}});
  std::vector<IndexEntry> extra(1);
  extra[0].path = "/photos/extra.jpg";
  loaded.add(extra, v.data() + 5 * kDim, 1);
  const std::vector<float> q = to_search_space(loaded, v.data() + 5 * kDim, nullptr);
  const std::vector<SearchHit> hits = loaded.search_exact(q.data(), 2);
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].score > 0.9999f);
  CHECK((loaded.entry(hits[0].id).path == "/photos/extra.jpg" || loaded.entry(hits[0].id).path == "/photos/5.jpg"));

  // What it refuses.
  ImageIndex other = make_index(v);
  options.hidden = 0;
  CHECK_THROWS_WITH(learn_projection(other, labels, options), Catch::Matchers::Contains("--hidden must be in"));
  options.hidden = 32;
  options.epochs = -1;
  CHECK_THROWS_WITH(learn_projection(other, labels, options), Catch::Matchers::Contains("--epochs must be in"));
  // Auto: at least kMinHeadSteps batches; 420 images are 2 batches of 256.
  options.epochs = 0;
  const LearnReport automatic = learn_projection(other, labels, options);
  CHECK(automatic.epochs == kMinHeadSteps / 2);
}
