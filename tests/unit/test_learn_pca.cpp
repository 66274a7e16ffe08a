// learn_pca: a projection without labels onto the directions holding most of the
// vectors' energy (learn.h).
#include <imgsearch/error.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>
#include <imgsearch/learn.h>
#include <imgsearch/refinement.h>

#include "photo_index.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <unistd.h>

using namespace imgsearch;

namespace {

constexpr int kDim = 96;
constexpr int kRank = 8;

// Unit vectors that lie close to an 8-d subspace of 96-d space, in 40 clusters, with a
// little noise in every direction.
std::vector<float> low_rank_vectors(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::mt19937 basis_rng(1234);  // the same subspace for every seed
  std::vector<float> basis(kRank * kDim);
  for (float& b : basis) b = normal(basis_rng);
  std::vector<float> centres(40 * kRank);
  for (float& c : centres) c = normal(basis_rng);
  std::vector<float> v(n * kDim);
  for (std::size_t i = 0; i < n; ++i) {
    float* row = v.data() + i * kDim;
    for (int r = 0; r < kRank; ++r) {
      const float c = centres[(i % 40) * kRank + r] + 0.3f * normal(rng);
      for (int d = 0; d < kDim; ++d) row[d] += c * basis[r * kDim + d];
    }
    double norm = 0;
    for (int d = 0; d < kDim; ++d) {
      row[d] += 0.05f * normal(rng);
      norm += double(row[d]) * row[d];
    }
    for (int d = 0; d < kDim; ++d) row[d] = static_cast<float>(row[d] / std::sqrt(norm));
  }
  return v;
}

ImageIndex make_index(const std::vector<float>& v) { return test::photo_index(v, kDim); }

}  // namespace

TEST_CASE("learn_pca keeps the neighbours of vectors near a subspace and saves memory", "[learn][pca]") {
  const std::vector<float> v = low_rank_vectors(2000, 1);
  ImageIndex index = make_index(v);
  const ImageIndex raw = make_index(v);
  LearnOptions options;
  options.dim = kRank;
  options.threads = 1;
  options.description = R"({"method":"pca"})";
  const LearnReport r = learn_pca(index, options);
  CHECK(r.images == 2000);
  CHECK(r.fitted == 2000);
  CHECK(r.in_dim == kDim);
  CHECK(r.out_dim == kRank);
  CHECK(r.energy_kept > 0.95);
  CHECK(r.energy_kept <= 1.0);
  CHECK(r.vector_bytes_after * kDim == r.vector_bytes_before * kRank);
  CHECK(index.dim() == kRank);
  CHECK(index.model_dim() == kDim);
  REQUIRE(index.projection().enabled());
  CHECK(std::all_of(index.projection().mean.begin(), index.projection().mean.end(), [](float m) { return m == 0; }));
  // The rows are orthonormal: a rotation followed by a cut.
  const std::vector<float>& w = index.projection().matrix;
  for (int a = 0; a < kRank; ++a)
    for (int b = 0; b < kRank; ++b) {
      double s = 0;
      for (int d = 0; d < kDim; ++d) s += double(w[a * kDim + d]) * w[b * kDim + d];
      CHECK(s == Approx(a == b ? 1.0 : 0.0).margin(1e-4));
    }

  // New queries, as `query` searches them: the projected graph's candidates, ranked again
  // by the model vectors, so the scores are the raw cosines and the top-10 the raw one's.
  CHECK(index.projection().rescore);
  const std::vector<float> queries = low_rank_vectors(100, 2);
  double found = 0, found_projected = 0;
  for (int q = 0; q < 100; ++q) {
    const float* query = queries.data() + q * kDim;
    std::set<std::uint32_t> truth;
    for (const SearchHit& h : raw.search_exact(query, 10)) truth.insert(h.id);
    for (const SearchHit& h : refined_search(index, query, nullptr, 10, 0, false, {})) {
      found += truth.count(h.id);
      double cosine = 0;
      for (int d = 0; d < kDim; ++d) cosine += double(query[d]) * index.model_vector(h.id)[d];
      REQUIRE(h.score == Approx(cosine).margin(1e-5));
    }
    const std::vector<float> projected = to_search_space(index, query, nullptr);
    for (const SearchHit& h : index.search_exact(projected.data(), 10)) found_projected += truth.count(h.id);
  }
  INFO("recall@10 against the raw exact search: rescored " << found / 1000 << ", projected alone " << found_projected / 1000);
  CHECK(found / 1000 >= 0.98);
  CHECK(found >= found_projected);

  // Stored and loaded like any projection.
  char name[] = "/tmp/imgsearch-pca-XXXXXX";
  const int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  close(fd);
  save_index(index, name);
  const ImageIndex loaded = load_index(name);
  std::remove(name);
  CHECK(loaded.dim() == kRank);
  CHECK(loaded.projection().matrix == w);
  CHECK(nlohmann::json::parse(loaded.projection().description)["method"] == "pca");
  CHECK(loaded.projection().rescore);
  const auto a = refined_search(loaded, queries.data(), nullptr, 10, 0, false, {});
  const auto b = refined_search(index, queries.data(), nullptr, 10, 0, false, {});
  REQUIRE(a.size() == b.size());
  for (std::size_t r = 0; r < a.size(); ++r) CHECK(a[r].id == b[r].id);

  // With query expansion the expanded query lives only in the projected space: scored
  // there, not rescored by the model vectors.
  const auto expanded = refined_search(index, queries.data(), nullptr, 10, 0, true, {3, 1.0f});
  std::vector<float> first_hits_query(kRank);
  const std::vector<float> projected = to_search_space(index, queries.data(), nullptr);
  expand_query(index, projected.data(), index.search_exact(projected.data(), 10), 3, 1.0f, first_hits_query.data());
  for (const SearchHit& h : expanded) {
    double in_projected_space = 0;
    for (int d = 0; d < kRank; ++d) in_projected_space += double(first_hits_query[d]) * index.vector(h.id)[d];
    CHECK(h.score == Approx(in_projected_space).margin(1e-5));
  }
}

TEST_CASE("learn_pca fits on a seeded sample and refuses what it cannot do", "[learn][pca]") {
  const std::vector<float> v = low_rank_vectors(1500, 3);
  LearnOptions options;
  options.dim = 4;
  options.threads = 1;
  options.max_fit_images = 300;
  options.seed = 5;
  ImageIndex a = make_index(v), b = make_index(v), c = make_index(v);
  CHECK(learn_pca(a, options).fitted == 300);
  CHECK(learn_pca(b, options).fitted == 300);
  CHECK(a.projection().matrix == b.projection().matrix);
  options.seed = 6;
  CHECK(learn_pca(c, options).energy_kept > 0.5);
  CHECK(c.projection().matrix != a.projection().matrix);

  ImageIndex d = make_index(v);
  options.dim = kDim;
  CHECK_THROWS_WITH(learn_pca(d, options), Catch::Matchers::Contains("--dim must be in 1..95"));
  options.dim = 0;
  CHECK_THROWS_AS(learn_pca(d, options), Error);
  CHECK_FALSE(d.projection().enabled());
  ImageIndex one = make_index(std::vector<float>(v.begin(), v.begin() + kDim));
  options.dim = 4;
  CHECK_THROWS_WITH(learn_pca(one, options), Catch::Matchers::Contains("at least 2 are needed"));
}
