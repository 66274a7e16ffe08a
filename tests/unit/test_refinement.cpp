// Post-processing stored with an index (refinement.h): augmentation and projection survive a
// save and load, stay equal to a full recomputation under add and remove, undo exactly, and
// hostile post-processing sections with valid checksums are refused by the loader.
#include "container_edit.h"
#include "expect_refused.h"
#include "test_helpers.h"

#include <imgsearch/error.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>
#include <imgsearch/refinement.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>

using namespace imgsearch;
using test::Container;

namespace {

constexpr int kDim = 12;

// Clustered vectors (8 centres) so that neighbourhoods mean something.
std::vector<float> clustered(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> centres(8 * kDim);
  for (float& v : centres) v = normal(rng);
  std::vector<float> out(n * kDim);
  for (std::size_t i = 0; i < n; ++i)
    for (int d = 0; d < kDim; ++d) out[i * kDim + d] = centres[(i % 8) * kDim + d] + 0.4f * normal(rng);
  return out;
}

std::vector<IndexEntry> entries(std::size_t first, std::size_t n) {
  std::vector<IndexEntry> e(n);
  for (std::size_t i = 0; i < n; ++i) e[i] = {"/img/" + std::to_string(first + i) + ".jpg", first + i, 1, {}, {}};
  return e;
}

ImageIndex empty_index() {
  HnswParams params;
  params.M = 8;
  params.ef_construction = 64;
  ModelInfo model;
  model.name = "unit";
  model.output_dim = kDim;
  return ImageIndex(kDim, params, model);
}

Projection some_projection(unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Projection p;
  p.in_dim = kDim;
  p.out_dim = 5;
  p.mean.assign(kDim, 0.05f);
  for (int i = 0; i < p.out_dim * kDim; ++i) p.matrix.push_back(normal(rng));
  p.description = "{}";
  return p;
}

// A learned head's shape (learn --method head) with random weights: 12 -> 9 hidden -> 5.
Projection some_head(unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Projection p = some_projection(seed);
  p.hidden = 9;
  p.matrix.clear();
  for (int i = 0; i < p.hidden * kDim; ++i) p.matrix.push_back(normal(rng));
  for (int i = 0; i < p.hidden; ++i) p.hidden_bias.push_back(0.3f * normal(rng));
  for (int i = 0; i < p.out_dim * p.hidden; ++i) p.output_matrix.push_back(normal(rng));
  for (int i = 0; i < p.out_dim; ++i) p.output_bias.push_back(0.1f * normal(rng));
  return p;
}

// Every search vector of `a` equals the one of the entry with the same path in `b`.
void check_same_vectors(const ImageIndex& a, const ImageIndex& b) {
  REQUIRE(a.size() == b.size());
  REQUIRE(a.dim() == b.dim());
  for (std::size_t i = 0; i < a.size(); ++i) {
    std::size_t j = 0;
    while (b.entry(j).path != a.entry(i).path) ++j;
    for (int d = 0; d < a.dim(); ++d) REQUIRE(a.vector(i)[d] == Approx(b.vector(j)[d]).margin(1e-5));
    for (int d = 0; d < a.model_dim(); ++d) REQUIRE(a.model_vector(i)[d] == Approx(b.model_vector(j)[d]).margin(1e-6));
  }
}

}  // namespace

TEST_CASE("augmentation and projection under add and remove equal a full recomputation", "[refinement]") {
  const std::vector<float> v = clustered(300, 3);
  for (int project : {0, 1, 2}) {  // none, linear, a head
    INFO("projection " << project);
    auto projection = [project] { return project == 2 ? some_head(5) : some_projection(5); };
    ImageIndex incremental = empty_index();
    incremental.add(entries(0, 200), v.data(), 1);
    if (project) incremental.set_projection(projection(), 1);
    incremental.set_augmentation({4, 3.0f}, 1);
    incremental.add(entries(200, 100), v.data() + 200 * kDim, 1);
    incremental.remove_if([](const IndexEntry& e) { return e.size % 7 == 0; }, 1);
    // 43 of 300 nodes (14 %): tombstones, the re-augmented neighbours updated in place.
    CHECK(incremental.tombstones() == 43);
    CHECK(incremental.compactions() == 0);

    ImageIndex full = empty_index();
    full.add(entries(0, 300), v.data(), 1);
    full.remove_if([](const IndexEntry& e) { return e.size % 7 == 0; }, 1);
    if (project) full.set_projection(projection(), 1);
    full.set_augmentation({4, 3.0f}, 1);
    check_same_vectors(incremental, full);
    CHECK(incremental.dim() == (project ? 5 : kDim));

    // Saved and loaded: the same vectors, settings and rankings.
    test::TempDir dir;
    const std::string path = dir.file("r.index");
    incremental.set_query_expansion({3, 1.0f});
    save_index(incremental, path);
    const ImageIndex loaded = load_index(path);
    check_same_vectors(loaded, incremental);
    CHECK(loaded.tombstones() == 43);
    CHECK(loaded.augmentation().k == 4);
    CHECK(loaded.query_expansion().k == 3);
    CHECK(loaded.query_expansion().alpha == 1.0f);
    CHECK(loaded.projection().enabled() == (project > 0));
    CHECK(loaded.projection().hidden == (project == 2 ? 9 : 0));
    if (project == 2) {
      CHECK(loaded.projection().output_matrix == projection().output_matrix);
      CHECK(loaded.projection().hidden_bias == projection().hidden_bias);
      CHECK(loaded.projection().output_bias == projection().output_bias);
    }
    CHECK(loaded.augmentation_neighbours() == incremental.augmentation_neighbours());
    const auto a = refined_search(loaded, v.data() + 5 * kDim, nullptr, 10, 0, true, loaded.query_expansion());
    const auto b = refined_search(incremental, v.data() + 5 * kDim, nullptr, 10, 0, true, incremental.query_expansion());
    REQUIRE(a.size() == b.size());
    for (std::size_t r = 0; r < a.size(); ++r) CHECK(a[r].id == b[r].id);

    // A searcher's load leaves the model vectors in the file: read in place, the same;
    // a change copies them in first and ends equal to the in-memory load's.
    {
      IndexLoadOptions changing = search_load_options();
      changing.entries = IndexLoadOptions::Entries::Memory;  // eval's load: model vectors in the file, entries in memory
      ImageIndex in_file = load_index(path, changing);
      check_same_vectors(in_file, loaded);
      CHECK_FALSE(in_file.sections_left_out());  // nothing optional was in this file
      ImageIndex in_memory = load_index(path);
      in_file.add(entries(400, 10), v.data() + 40 * kDim, 1);
      in_memory.add(entries(400, 10), v.data() + 40 * kDim, 1);
      in_file.remove_if([](const IndexEntry& e) { return e.size % 5 == 0; }, 1);
      in_memory.remove_if([](const IndexEntry& e) { return e.size % 5 == 0; }, 1);
      check_same_vectors(in_file, in_memory);
      const std::string resaved = dir.file("resaved.index");
      save_index(load_index(path, changing), resaved);  // written from the mapping
      check_same_vectors(load_index(resaved), loaded);
    }

    // A long-running searcher (serve) reads them with pread: the same floats, and a file
    // truncated under it (written in place, not renamed) throws instead of faulting.
    {
      const std::string copy = dir.file("served.index");
      std::filesystem::copy_file(path, copy);
      const ImageIndex served = load_index(copy, search_load_options());
      for (std::size_t i = 0; i < served.size(); i += 37) {
        const std::vector<float> c = served.model_vector_copy(i);
        REQUIRE(c.size() == static_cast<std::size_t>(kDim));
        for (int d = 0; d < kDim; ++d) REQUIRE(c[d] == loaded.model_vector(i)[d]);
      }
      std::filesystem::resize_file(copy, 4096);
      CHECK_THROWS_WITH(served.model_vector_copy(served.size() - 1),
                        Catch::Matchers::Contains("truncated or changed since it was loaded"));
      CHECK(loaded.model_vector_copy(3) == std::vector<float>(loaded.model_vector(3), loaded.model_vector(3) + kDim));
    }

    // Undone: the model vectors are searched again, exactly.
    ImageIndex undone = load_index(path);
    undone.set_augmentation({}, 1);
    undone.set_projection({}, 1);
    CHECK(undone.dim() == kDim);
    for (std::size_t i = 0; i < undone.size(); ++i)
      for (int d = 0; d < kDim; ++d) REQUIRE(undone.vector(i)[d] == undone.model_vector(i)[d]);
  }
}

TEST_CASE("removals from a projected or augmented index leave tombstones, re-augment in place and compact past the threshold",
          "[refinement][tombstones]") {
  const std::vector<float> v = clustered(400, 11);
  auto first_gone = [](const IndexEntry& e) { return e.size % 20 == 3; };                     // 20 of 400: 5 %
  auto then_gone = [](const IndexEntry& e) { return e.size % 20 == 3 || e.size % 5 == 1; };  // 100: 25 %
  for (const auto& [project, augment] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    INFO("projection " << project << ", augmentation " << augment);
    auto post_process = [&, project = project, augment = augment](ImageIndex& index) {
      if (project) index.set_projection(some_projection(5), 1);
      if (augment) index.set_augmentation({4, 3.0f}, 1);
    };
    auto recomputed = [&](const std::function<bool(const IndexEntry&)>& gone) {
      ImageIndex full = empty_index();
      full.add(entries(0, 400), v.data(), 1);
      full.remove_if(gone, 1);
      post_process(full);
      return full;
    };
    ImageIndex index = empty_index();
    index.add(entries(0, 400), v.data(), 1);
    post_process(index);
    std::vector<std::vector<float>> before;  // search vectors by path order (= entry order)
    for (std::size_t i = 0; i < index.size(); ++i) before.emplace_back(index.vector(i), index.vector(i) + index.dim());

    REQUIRE(index.remove_if(first_gone, 1) == 20);
    CHECK(index.tombstones() == 20);
    CHECK(index.compactions() == 0);
    check_same_vectors(index, recomputed(first_gone));
    // With augmentation, the entries that lost a neighbour have new vectors; the others not.
    std::size_t changed = 0;
    for (std::size_t i = 0, old = 0; i < index.size(); ++i, ++old) {
      while (first_gone(entries(old, 1)[0])) ++old;
      bool same = true;
      for (int d = 0; d < index.dim(); ++d) same = same && index.vector(i)[d] == before[old][d];
      changed += !same;
    }
    if (augment) CHECK(changed > 0);
    else CHECK(changed == 0);
    // HNSW (not brute force) gives k results and never a removed entry, from removed
    // images' own vectors too.
    for (std::size_t q = 0; q < 400; q += 10) {
      const auto hits = refined_search(index, v.data() + q * kDim, nullptr, 30, 0, false, {});
      REQUIRE(hits.size() == 30);
      for (const auto& h : hits) REQUIRE(!first_gone(index.entry(h.id)));
    }
    // Saved and loaded with its tombstones: the same vectors and the same HNSW answers.
    test::TempDir dir;
    const std::string path = dir.file("t.index");
    save_index(index, path);
    ImageIndex loaded = load_index(path);
    CHECK(loaded.tombstones() == 20);
    check_same_vectors(loaded, index);
    for (std::size_t q = 0; q < 400; q += 37) {
      const auto a = index.search(index.vector(q % index.size()), 10);
      const auto b = loaded.search(loaded.vector(q % loaded.size()), 10);
      REQUIRE(a.size() == b.size());
      for (std::size_t r = 0; r < a.size(); ++r) CHECK(a[r].id == b[r].id);
    }

    // Past 20 % of the graph's nodes: compacted, still equal to a full recomputation.
    REQUIRE(loaded.remove_if(then_gone, 1) == 80);
    CHECK(loaded.compactions() == 1);
    CHECK(loaded.tombstones() == 0);
    check_same_vectors(loaded, recomputed(then_gone));
    const auto hits = refined_search(loaded, v.data() + 3 * kDim, nullptr, 20, 0, false, {});
    REQUIRE(hits.size() == 20);
    for (const auto& h : hits) CHECK(!then_gone(loaded.entry(h.id)));
  }
}

TEST_CASE("with augmentation, add's progress counts the re-linked neighbours too", "[refinement]") {
  const std::vector<float> v = clustered(300, 13);
  ImageIndex index = empty_index();
  index.add(entries(0, 250), v.data(), 1);
  index.set_augmentation({4, 3.0f}, 1);
  std::vector<std::pair<std::size_t, std::size_t>> seen;
  index.add(entries(250, 50), v.data() + 250 * kDim, 1, [&](std::size_t done, std::size_t total) {
    seen.emplace_back(done, total);
  });
  REQUIRE(seen.size() >= 2);
  const std::size_t total = seen.back().second;
  CHECK(total > 50);  // 50 new entries, and existing ones whose neighbourhood they entered
  for (const auto& [done, t] : seen) {
    CHECK(t == total);
    CHECK(done <= total);
  }
  CHECK(seen.front().first == 0);
  CHECK(seen.back().first == total);
  CHECK(std::find(seen.begin(), seen.end(), std::pair<std::size_t, std::size_t>{50, total}) != seen.end());
}

TEST_CASE("query expansion moves the query towards its best hits", "[refinement]") {
  const std::vector<float> v = clustered(200, 9);
  ImageIndex index = empty_index();
  index.add(entries(0, 200), v.data(), 1);
  const auto plain = refined_search(index, v.data(), nullptr, 20, 0, true, {});
  const auto expanded = refined_search(index, v.data(), nullptr, 20, 0, true, {5, 3.0f});
  REQUIRE(plain.size() == 20);
  REQUIRE(expanded.size() == 20);
  CHECK(plain[0].id == 0);
  // Same cluster (i % 8 == 0) for every hit of both: the clusters are well apart.
  for (const auto& h : expanded) CHECK(h.id % 8 == 0);
  CHECK_THROWS_AS(index.set_query_expansion({-1, 3.0f}), Error);
  CHECK_THROWS_AS(index.set_augmentation({2, std::numeric_limits<float>::quiet_NaN()}), Error);
}

TEST_CASE("hostile post-processing sections with valid checksums", "[refinement][hostile]") {
  test::TempDir dir;
  const std::string good = dir.file("good.index"), bad = dir.file("bad.index");
  const std::vector<float> v = clustered(50, 4);
  ImageIndex index = empty_index();
  index.add(entries(0, 50), v.data(), 1);
  index.set_projection(some_projection(2), 1);
  index.set_augmentation({3, 2.0f}, 1);
  index.set_query_expansion({2, 3.0f});
  save_index(index, good);
  const Container ok = Container::parse(test::read_bytes(good));
  auto expect = [&](const Container& c, const std::string& what) { test::expect_index_refused(c, bad, what); };
  Container c = ok;
  test::put<std::uint32_t>(c.section("AUGMENT").data, 8 + 4 * 7, 50);  // a neighbour id out of range
  expect(c, "has bad neighbour 50");
  c = ok;
  test::put<std::uint32_t>(c.section("AUGMENT").data, 8 + 4 * 3, 1);  // entry 1 lists itself
  expect(c, "entry 1 has bad neighbour 1");
  c = ok;
  test::put<std::uint32_t>(c.section("AUGMENT").data, 0, 5000);
  expect(c, "k 5000 out of range");
  c = ok;
  test::put<float>(c.section("AUGMENT").data, 4, std::numeric_limits<float>::infinity());
  expect(c, "alpha out of range");
  c = ok;
  c.section("AUGMENT").data.resize(c.section("AUGMENT").data.size() - 4);
  expect(c, "not 50 x 3 neighbours");
  c = ok;
  test::put<std::uint32_t>(c.section("QUERYEXP").data, 0, 0);
  expect(c, "corrupt section QUERYEXP: k 0 out of range");
  c = ok;
  test::put<std::uint32_t>(c.section("PROJECT").data, 4, 13);  // out_dim above in_dim
  expect(c, "does not fit 12-d vectors");
  c = ok;
  test::put<float>(c.section("PROJECT").data, c.section("PROJECT").data.size() - 4, std::numeric_limits<float>::quiet_NaN());
  expect(c, "projection matrix holds NaN or infinity");
  c = ok;
  c.section("PROJECT").data.resize(c.section("PROJECT").data.size() - 8);
  expect(c, "projection matrix too short");
  c = ok;
  test::put<std::uint32_t>(c.section("SRCHVECS").data, 0, 12);
  expect(c, "corrupt section SRCHVECS: dimension does not match the projection");
  c = ok;
  test::put<float>(c.section("SRCHVECS").data, 4 + 4 * 7, std::numeric_limits<float>::infinity());
  expect(c, "vector 1 holds NaN or infinity");
  c = ok;
  c.drop("SRCHVECS");
  expect(c, "missing section SRCHVECS");
}

TEST_CASE("a head projection computes W2 relu(W (x - mean) + b1) + b2, normalised", "[refinement][head]") {
  const std::vector<float> v = clustered(40, 6);
  ImageIndex index = empty_index();
  index.add(entries(0, 40), v.data(), 1);
  const Projection p = some_head(7);
  index.set_projection(p, 1);
  REQUIRE(index.dim() == 5);
  for (std::size_t i = 0; i < 40; i += 3) {
    std::vector<float> x(v.begin() + i * kDim, v.begin() + (i + 1) * kDim);
    double norm = 0;
    for (float f : x) norm += double(f) * f;
    for (float& f : x) f = static_cast<float>(f / std::sqrt(norm));
    std::vector<double> h(9), y(5);
    for (int j = 0; j < 9; ++j) {
      double s = p.hidden_bias[j];
      for (int d = 0; d < kDim; ++d) s += double(p.matrix[j * kDim + d]) * (x[d] - p.mean[d]);
      h[j] = std::max(s, 0.0);
    }
    double out_norm = 0;
    for (int o = 0; o < 5; ++o) {
      y[o] = p.output_bias[o];
      for (int j = 0; j < 9; ++j) y[o] += double(p.output_matrix[o * 9 + j]) * h[j];
      out_norm += y[o] * y[o];
    }
    const std::vector<float> q = to_search_space(index, v.data() + i * kDim, nullptr);
    REQUIRE(q.size() == 5);
    for (int o = 0; o < 5; ++o) {
      CHECK(q[o] == Approx(y[o] / std::sqrt(out_norm)).margin(1e-5));
      CHECK(index.vector(i)[o] == Approx(q[o]).margin(1e-5));
    }
  }
  // Sizes that do not agree are refused before anything changes.
  Projection bad = p;
  bad.output_bias.pop_back();
  CHECK_THROWS_WITH(index.set_projection(bad, 1), Catch::Matchers::Contains("inconsistent sizes"));
  bad = p;
  bad.out_dim = 10;  // above the hidden units
  CHECK_THROWS_WITH(index.set_projection(bad, 1), Catch::Matchers::Contains("inconsistent sizes"));
  bad = p;
  bad.hidden_bias[2] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(index.set_projection(bad, 1), Catch::Matchers::Contains("non-finite hidden bias"));
  CHECK(index.dim() == 5);
}

TEST_CASE("hostile head projections with valid checksums", "[refinement][head][hostile]") {
  test::TempDir dir;
  const std::string good = dir.file("good.index"), bad = dir.file("bad.index");
  const std::vector<float> v = clustered(30, 8);
  ImageIndex index = empty_index();
  index.add(entries(0, 30), v.data(), 1);
  index.set_projection(some_head(3), 1);
  save_index(index, good);
  const Container ok = Container::parse(test::read_bytes(good));
  {
    Container copy = ok;
    const auto& m = copy.section("META").data;
    const auto meta = nlohmann::json::parse(m.begin(), m.end());
    CHECK(meta["requires"] == nlohmann::json({"projection", "projection_head"}));
  }
  auto expect = [&](const Container& c, const std::string& what) { test::expect_index_refused(c, bad, what); };
  // PROJECT: u32 in_dim, u32 out_dim, u32 length + "{}", u32 hidden, then the floats.
  constexpr std::size_t kHidden = 4 + 4 + 4 + 2;
  Container c = ok;
  test::put<std::uint32_t>(c.section("PROJECT").data, kHidden, 0);
  expect(c, "projection head has 0 hidden units");
  c = ok;
  test::put<std::uint32_t>(c.section("PROJECT").data, kHidden, kMaxHiddenUnits + 1);
  expect(c, "hidden units");
  c = ok;
  test::put<std::uint32_t>(c.section("PROJECT").data, kHidden, 4);  // fewer than out_dim 5
  expect(c, "does not fit 12-d vectors");
  c = ok;
  test::put<float>(c.section("PROJECT").data, c.section("PROJECT").data.size() - 4, std::numeric_limits<float>::infinity());
  expect(c, "projection output bias holds NaN or infinity");
  c = ok;
  c.section("PROJECT").data.resize(c.section("PROJECT").data.size() - 4 * 5 - 8);
  expect(c, "projection output matrix too short");
  c = ok;
  c.section("PROJECT").data.resize(c.section("PROJECT").data.size() + 4);
  expect(c, "PROJECT");
  // Without the requirement, a reader would take the hidden count for the mean: the
  // sizes no longer add up and the file is refused, never misread.
  c = ok;
  {
    auto& m = c.section("META").data;
    auto meta = nlohmann::json::parse(m.begin(), m.end());
    meta["requires"] = {"projection"};
    const std::string text = meta.dump();
    m.assign(text.begin(), text.end());
  }
  expect(c, "PROJECT");
  // A head without a projection section.
  c = ok;
  c.drop("PROJECT");
  expect(c, "");
}
