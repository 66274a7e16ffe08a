#include "test_helpers.h"

#include <imgsearch/error.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <random>
#include <set>

using namespace imgsearch;

namespace {

// Clustered unit vectors: what CNN embeddings look like to an ANN index.
std::vector<float> clustered_vectors(std::size_t n, int dim, int clusters, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centers(static_cast<std::size_t>(clusters) * dim);
  for (float& c : centers) c = normal(rng);
  std::vector<float> v(n * dim);
  for (std::size_t i = 0; i < n; ++i)
    for (int d = 0; d < dim; ++d) v[i * dim + d] = centers[(i % clusters) * dim + d] + 0.6f * normal(rng);
  return v;
}

std::vector<IndexEntry> entries_for(std::size_t first, std::size_t n) {
  std::vector<IndexEntry> e(n);
  for (std::size_t i = 0; i < n; ++i) {
    e[i].path = "/photos/" + std::to_string(first + i) + ".jpg";
    e[i].size = first + i;
    e[i].mtime_ns = static_cast<std::int64_t>(first + i) * 1000;
  }
  return e;
}

ModelInfo some_model() {
  ModelInfo m;
  m.name = "test";
  m.output_dim = 64;
  m.path = "/models/test.pt";
  m.content_hash = "0123456789abcdef";
  return m;
}

double recall_at_10(const ImageIndex& index, const std::vector<float>& queries, std::size_t nq, int ef) {
  std::size_t hit = 0;
  for (std::size_t q = 0; q < nq; ++q) {
    const float* v = queries.data() + q * index.dim();
    std::set<std::uint32_t> exact;
    for (const auto& h : index.search_exact(v, 10)) exact.insert(h.id);
    for (const auto& h : index.search(v, 10, ef)) hit += exact.count(h.id);
  }
  return static_cast<double>(hit) / (10.0 * nq);
}

}  // namespace

TEST_CASE("an index finds each vector first, with cosine 1, and agrees with brute force", "[index]") {
  const int dim = 64;
  const auto vecs = clustered_vectors(2000, dim, 20, 1);
  ImageIndex index(dim, HnswParams{}, some_model());
  // Added in three batches: the capacity has to grow twice.
  index.add(entries_for(0, 10), vecs.data(), 2);
  index.add(entries_for(10, 990), vecs.data() + 10 * dim, 2);
  index.add(entries_for(1000, 1000), vecs.data() + 1000 * dim, 2);
  REQUIRE(index.size() == 2000);

  for (std::size_t i = 0; i < 2000; i += 97) {
    const auto hits = index.search(index.vector(i), 5);
    REQUIRE(hits.size() == 5);
    CHECK(hits[0].id == i);
    CHECK(hits[0].score == Approx(1.0f).margin(1e-5));
    for (std::size_t r = 1; r < hits.size(); ++r) CHECK(hits[r].score <= hits[r - 1].score);
  }
  const auto queries = clustered_vectors(200, dim, 20, 2);
  std::vector<float> normalised = queries;
  for (std::size_t q = 0; q < 200; ++q) {
    double n = 0;
    for (int d = 0; d < dim; ++d) n += double(normalised[q * dim + d]) * normalised[q * dim + d];
    for (int d = 0; d < dim; ++d) normalised[q * dim + d] /= static_cast<float>(std::sqrt(n));
  }
  // Noise balls in 64-d are a hard case for any ANN; a wider beam must close the gap.
  const double narrow = recall_at_10(index, normalised, 200, 16);
  const double wide = recall_at_10(index, normalised, 200, 400);
  CHECK(wide >= 0.995);
  CHECK(wide >= narrow);
  // k larger than the index returns everything.
  ImageIndex small(dim, HnswParams{}, some_model());
  small.add(entries_for(0, 3), vecs.data(), 1);
  CHECK(small.search(vecs.data(), 10).size() == 3);
  CHECK(small.search_exact(vecs.data(), 10).size() == 3);
}

TEST_CASE("rows are normalised on the way in, zero vectors are refused", "[index]") {
  ImageIndex index(4, HnswParams{}, some_model());
  const std::vector<float> v = {3, 0, 0, 4, 0, 0, 0, 0};
  REQUIRE_THROWS_AS(index.add(entries_for(0, 2), v.data()), Error);
  index.add(entries_for(0, 1), v.data());
  CHECK(index.vector(0)[0] == Approx(0.6f));
  CHECK(index.vector(0)[3] == Approx(0.8f));
}

TEST_CASE("remove_if drops entries and keeps the rest searchable", "[index]") {
  const int dim = 32;
  const auto vecs = clustered_vectors(500, dim, 5, 3);
  ImageIndex index(dim, HnswParams{8, 100, 50}, some_model());
  index.add(entries_for(0, 500), vecs.data(), 2);
  const std::vector<float> kept_vector(index.vector(1), index.vector(1) + dim);
  const std::size_t removed = index.remove_if([](const IndexEntry& e) { return e.size % 2 == 0; }, 2);
  CHECK(removed == 250);
  REQUIRE(index.size() == 250);
  for (std::size_t i = 0; i < index.size(); ++i) REQUIRE(index.entry(i).size % 2 == 1);
  // Entry "1" is now id 0 and still finds itself with its own vector.
  CHECK(index.entry(0).path == "/photos/1.jpg");
  const auto hits = index.search(kept_vector.data(), 1);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].id == 0);
  CHECK(index.remove_if([](const IndexEntry&) { return false; }) == 0);
}

TEST_CASE("save and load round-trip everything, and searches give the same answers", "[index][io]") {
  const int dim = 48;
  const auto vecs = clustered_vectors(800, dim, 8, 4);
  ImageIndex index(dim, HnswParams{12, 80, 40}, some_model());
  index.add(entries_for(0, 800), vecs.data(), 2);
  test::TempDir tmp;
  const std::string path = tmp.file("a.index");
  save_index(index, path);
  const ImageIndex loaded = load_index(path);
  REQUIRE(loaded.size() == 800);
  CHECK(loaded.dim() == dim);
  CHECK(loaded.params().M == 12);
  CHECK(loaded.params().ef_construction == 80);
  CHECK(loaded.params().ef_search == 40);
  CHECK(loaded.model().content_hash == "0123456789abcdef");
  CHECK(loaded.model().path == "/models/test.pt");
  for (std::size_t i = 0; i < 800; ++i) {
    REQUIRE(loaded.entry(i).path == index.entry(i).path);
    REQUIRE(loaded.entry(i).size == index.entry(i).size);
    REQUIRE(loaded.entry(i).mtime_ns == index.entry(i).mtime_ns);
    REQUIRE(std::equal(loaded.vector(i), loaded.vector(i) + dim, index.vector(i)));
  }
  for (std::size_t q = 0; q < 800; q += 37) {
    const auto a = index.search(index.vector(q), 10);
    const auto b = loaded.search(index.vector(q), 10);
    REQUIRE(a.size() == b.size());
    for (std::size_t r = 0; r < a.size(); ++r) CHECK(a[r].id == b[r].id);
  }
  // A loaded index keeps growing.
  ImageIndex grown = load_index(path);
  const auto more = clustered_vectors(100, dim, 8, 9);
  grown.add(entries_for(800, 100), more.data(), 2);
  REQUIRE(grown.size() == 900);
  CHECK(grown.search(vecs.data() + 5 * dim, 1)[0].id == 5);
  CHECK(grown.search(grown.vector(850), 1)[0].id == 850);

  // An empty index round-trips too.
  ImageIndex empty(dim, HnswParams{}, some_model());
  save_index(empty, tmp.file("empty.index"));
  CHECK(load_index(tmp.file("empty.index")).size() == 0);
}

TEST_CASE("a failed save leaves the previous index intact", "[index][io]") {
  test::TempDir tmp;
  const int dim = 16;
  const auto vecs = clustered_vectors(50, dim, 2, 5);
  ImageIndex index(dim, HnswParams{}, some_model());
  index.add(entries_for(0, 50), vecs.data(), 1);
  const std::string path = tmp.file("keep.index");
  save_index(index, path);
  // Saving into a directory that does not exist fails without touching anything.
  REQUIRE_THROWS_AS(save_index(index, tmp.file("missing/dir.index")), Error);
  CHECK(load_index(path).size() == 50);
  // No temporary files are left behind.
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path)) files += e.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("removing 1 % leaves tombstones instead of rebuilding, and removed entries are never returned",
          "[index][tombstones]") {
  const int dim = 32;
  const std::size_t n = 2000;
  const auto vecs = clustered_vectors(n, dim, 20, 11);
  ImageIndex index(dim, HnswParams{8, 100, 50}, some_model());
  index.add(entries_for(0, n), vecs.data(), 2);
  const std::vector<float> vector_of_1234(index.vector(1234), index.vector(1234) + dim);
  // Every 100th image goes: 1 %.
  const std::size_t removed = index.remove_if([](const IndexEntry& e) { return e.size % 100 == 0; }, 2);
  REQUIRE(removed == 20);
  CHECK(index.compactions() == 0);  // no rebuild
  CHECK(index.tombstones() == 20);
  CHECK(index.graph_nodes() == n);
  REQUIRE(index.size() == n - 20);
  // Ids stay dense and in order, vectors follow their entries, each survivor finds itself.
  for (std::size_t i = 0; i < index.size(); ++i) REQUIRE(index.entry(i).size % 100 != 0);
  CHECK(index.entry(1234 - 13).path == "/photos/1234.jpg");
  CHECK(std::equal(vector_of_1234.begin(), vector_of_1234.end(), index.vector(1234 - 13)));
  for (std::size_t i = 0; i < index.size(); i += 97) {
    const auto hits = index.search(index.vector(i), 1);
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].id == i);
  }
  // A removed image's own vector finds other images, never a removed one, and k of them.
  for (std::size_t old = 0; old < n; old += 100) {
    const auto hits = index.search(vecs.data() + old * dim, 50, 200);
    REQUIRE(hits.size() == 50);
    for (const auto& h : hits) {
      REQUIRE(h.id < index.size());
      REQUIRE(index.entry(h.id).size % 100 != 0);
    }
  }
  // Asking for everything returns every survivor exactly once.
  const auto all = index.search(vecs.data(), static_cast<int>(n));
  REQUIRE(all.size() == index.size());
  std::set<std::uint32_t> distinct;
  for (const auto& h : all) distinct.insert(h.id);
  CHECK(distinct.size() == index.size());
  // Adding after removals: new entries get the next ids and are found.
  const auto more = clustered_vectors(50, dim, 20, 12);
  index.add(entries_for(n, 50), more.data(), 2);
  REQUIRE(index.size() == n - 20 + 50);
  CHECK(index.tombstones() == 20);
  CHECK(index.search(more.data() + 7 * dim, 1)[0].id == n - 20 + 7);
  CHECK(recall_at_10(index, vecs, 100, 64) > 0.9);
}

TEST_CASE("past the threshold the graph is compacted: tombstones are dropped", "[index][tombstones]") {
  const int dim = 16;
  const std::size_t n = 1000;
  const auto vecs = clustered_vectors(n, dim, 10, 13);
  ImageIndex index(dim, HnswParams{8, 60, 40}, some_model());
  index.add(entries_for(0, n), vecs.data(), 2);
  // 15 % of the nodes: below the 20 % threshold.
  index.remove_if([](const IndexEntry& e) { return e.size < 150; }, 2);
  CHECK(index.compactions() == 0);
  CHECK(index.tombstones() == 150);
  // Another 10 %: 250 of 1000 nodes would be tombstones, past 20 %: compacted.
  index.remove_if([](const IndexEntry& e) { return e.size < 250; }, 2);
  CHECK(index.compactions() == 1);
  CHECK(index.tombstones() == 0);
  CHECK(index.graph_nodes() == 750);
  REQUIRE(index.size() == 750);
  CHECK(index.entry(0).path == "/photos/250.jpg");
  for (std::size_t i = 0; i < index.size(); i += 50) CHECK(index.search(index.vector(i), 1)[0].id == i);
  CHECK(recall_at_10(index, vecs, 100, 64) > 0.9);
  // Removing everything leaves an empty index that takes new entries.
  CHECK(index.remove_if([](const IndexEntry&) { return true; }) == 750);
  CHECK(index.size() == 0);
  CHECK(index.tombstones() == 0);
  CHECK(index.search(vecs.data(), 5).empty());
  index.add(entries_for(0, 10), vecs.data(), 1);
  CHECK(index.search(vecs.data() + 3 * dim, 1)[0].id == 3);
}

TEST_CASE("tombstones survive save and load, and the file says a reader needs them", "[index][io][tombstones]") {
  const int dim = 24;
  const std::size_t n = 600;
  const auto vecs = clustered_vectors(n, dim, 6, 14);
  ImageIndex index(dim, HnswParams{8, 80, 40}, some_model());
  index.add(entries_for(0, n), vecs.data(), 2);
  index.remove_if([](const IndexEntry& e) { return e.size % 10 == 3; }, 2);
  REQUIRE(index.tombstones() == 60);
  test::TempDir tmp;
  const std::string path = tmp.file("t.index");
  save_index(index, path);
  ImageIndex loaded = load_index(path);
  REQUIRE(loaded.size() == index.size());
  CHECK(loaded.tombstones() == 60);
  for (std::size_t i = 0; i < loaded.size(); ++i) {
    REQUIRE(loaded.entry(i).path == index.entry(i).path);
    REQUIRE(std::equal(loaded.vector(i), loaded.vector(i) + dim, index.vector(i)));
  }
  // The same graph: the same answers, never a removed entry.
  for (std::size_t q = 0; q < n; q += 13) {
    const auto a = index.search(vecs.data() + q * dim, 10);
    const auto b = loaded.search(vecs.data() + q * dim, 10);
    REQUIRE(a.size() == 10);
    REQUIRE(b.size() == 10);
    for (std::size_t r = 0; r < a.size(); ++r) {
      CHECK(a[r].id == b[r].id);
      CHECK(loaded.entry(b[r].id).size % 10 != 3);
    }
  }
  // The loaded index keeps removing without a rebuild and round-trips again.
  loaded.remove_if([](const IndexEntry& e) { return e.size % 10 == 7; }, 2);
  CHECK(loaded.compactions() == 0);
  CHECK(loaded.tombstones() == 120);
  save_index(loaded, path);
  const ImageIndex again = load_index(path);
  CHECK(again.tombstones() == 120);
  CHECK(again.size() == n - 120);
  // compact() rebuilds on request; the file then needs no tombstone support (version 1).
  loaded.compact(2);
  CHECK(loaded.tombstones() == 0);
  CHECK(loaded.compactions() == 1);
  save_index(loaded, path);
  CHECK(load_index(path).tombstones() == 0);
  std::ifstream file(path, std::ios::binary);
  char header[12] = {};
  file.read(header, sizeof header);
  CHECK(header[8] == 1);  // the container's version (docs/formats.md)
}

TEST_CASE("add reports its linking progress, one call at a time, ending at the total", "[index]") {
  const int dim = 8;
  const std::size_t n = 3000;
  const auto vecs = clustered_vectors(n, dim, 4, 15);
  ImageIndex index(dim, HnswParams{8, 40, 40}, some_model());
  std::vector<std::size_t> seen;
  std::atomic<int> calls_at_once{0};
  int most_at_once = 0;
  index.add(entries_for(0, n), vecs.data(), 2, [&](std::size_t done, std::size_t total) {
    most_at_once = std::max(most_at_once, ++calls_at_once);
    REQUIRE(total == n);
    seen.push_back(done);  // not thread-safe by itself: the index serialises the calls
    --calls_at_once;
  });
  REQUIRE(seen.size() >= 3);
  CHECK(seen.front() == 0);  // linking starts
  CHECK(most_at_once == 1);
  CHECK(*std::max_element(seen.begin(), seen.end()) == n);
  CHECK(index.size() == n);
}
