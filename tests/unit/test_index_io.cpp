// Index files from elsewhere: truncated, bit-flipped, wrong magic, future version, and
// hostile files with VALID checksums (container_edit.h) that must be caught by the
// structural checks. Every case must throw imgsearch::Error(Format) naming the file:
// never crash, read out of bounds (the ASan build runs these) or allocate absurdly.
#include "container_edit.h"
#include "test_helpers.h"

#include <imgsearch/error.h>
#include <imgsearch/features_file.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <set>

using namespace imgsearch;
using test::Bytes;
using test::Container;
using test::Graph;

namespace {

constexpr int kDim = 16;

ModelInfo test_model() {
  ModelInfo m;
  m.name = "unit-test";
  m.weights = "random";
  m.output_dim = kDim;
  m.path = "/nowhere/unit-test.pt";
  m.content_hash = "0123456789abcdef";
  return m;
}

// An index of n random unit vectors; M = 4 so that the graph has several levels.
ImageIndex make_index(std::size_t n, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> vectors(n * kDim);
  for (float& v : vectors) v = normal(rng);
  std::vector<IndexEntry> entries(n);
  for (std::size_t i = 0; i < n; ++i) {
    entries[i].path = "/photos/img" + std::to_string(i) + ".jpg";
    entries[i].size = 1000 + i;
    entries[i].mtime_ns = static_cast<std::int64_t>(i) * 1'000'000'007;
  }
  HnswParams params;
  params.M = 4;
  params.ef_construction = 40;
  ImageIndex index(kDim, params, test_model());
  index.add(entries, vectors.data(), 1);
  return index;
}

// Loading `path` must fail with a Format error whose message names the file.
void expect_format_error(const std::string& path, const std::string& what = "") {
  try {
    load_index(path);
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.kind() == ErrorKind::Format);
    CHECK(std::string(e.what()).rfind(path + ": ", 0) == 0);
    if (!what.empty()) CHECK_THAT(e.what(), Catch::Matchers::Contains(what));
    return;
  }
  FAIL("loading " << path << " did not throw (" << what << ")");
}

struct Fixture {
  test::TempDir dir;
  std::string good = dir.file("good.index");
  std::string bad = dir.file("bad.index");
  Bytes bytes;
  Fixture() {
    save_index(make_index(300), good);
    bytes = test::read_bytes(good);
  }
  // Writes `c` to the bad file and expects a Format error mentioning `what`.
  void expect_rejected(const Container& c, const std::string& what) {
    c.save(bad);
    expect_format_error(bad, what);
  }
};

std::string meta_with(const Container& c, const std::function<void(nlohmann::json&)>& edit) {
  const Bytes& m = const_cast<Container&>(c).section("META").data;
  nlohmann::json j = nlohmann::json::parse(m.begin(), m.end());
  edit(j);
  return j.dump();
}

Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

}  // namespace

TEST_CASE("index round trip keeps entries, vectors and search results", "[index_io]") {
  test::TempDir dir;
  const ImageIndex index = make_index(500);
  save_index(index, dir.file("a.index"));
  const ImageIndex loaded = load_index(dir.file("a.index"));
  REQUIRE(loaded.size() == index.size());
  REQUIRE(loaded.dim() == kDim);
  CHECK(loaded.model().content_hash == "0123456789abcdef");
  CHECK(loaded.params().M == 4);
  for (std::size_t i = 0; i < index.size(); i += 37) {
    CHECK(loaded.entry(i).path == index.entry(i).path);
    CHECK(loaded.entry(i).size == index.entry(i).size);
    CHECK(loaded.entry(i).mtime_ns == index.entry(i).mtime_ns);
    CHECK(std::memcmp(loaded.vector(i), index.vector(i), sizeof(float) * kDim) == 0);
    const auto a = index.search(index.vector(i), 10, 100);
    const auto b = loaded.search(loaded.vector(i), 10, 100);
    REQUIRE(a.size() == b.size());
    for (std::size_t k = 0; k < a.size(); ++k) CHECK(a[k].id == b[k].id);
    CHECK(b[0].id == i);
  }
  // The restored graph is usable for adding more (hnswlib state is complete).
  ImageIndex grown = load_index(dir.file("a.index"));
  const ImageIndex more = make_index(50, 99);
  std::vector<IndexEntry> entries(more.entries());
  for (auto& e : entries) e.path += ".more";
  std::vector<float> vectors;
  for (std::size_t i = 0; i < more.size(); ++i) vectors.insert(vectors.end(), more.vector(i), more.vector(i) + kDim);
  grown.add(entries, vectors.data(), 1);
  CHECK(grown.size() == 550);
  CHECK(grown.search(more.vector(3), 1, 100)[0].id == 503);
}

TEST_CASE("an index loaded for searching only reads its entries back from the file", "[index_io]") {
  test::TempDir dir;
  // Block edges (16 records a block) and paths of every length up to a long one.
  for (const std::size_t n : {1, 16, 17, 333}) {
    for (const VectorCodes codes : {VectorCodes::F32, VectorCodes::Int8}) {
      CAPTURE(n, vector_codes_name(codes));
      std::mt19937 rng(static_cast<unsigned>(n));
      std::normal_distribution<float> normal;
      std::vector<float> vectors(n * kDim);
      for (float& v : vectors) v = normal(rng);
      std::vector<IndexEntry> entries(n);
      for (std::size_t i = 0; i < n; ++i) {
        entries[i].path = "/photos/" + std::string(i % 300, 'x') + "/\xc3\xa9t\xc3\xa9 " + std::to_string(i) + ".jpg";
        entries[i].size = 1000 + 7 * i;
        entries[i].mtime_ns = -static_cast<std::int64_t>(i) * 1'000'000'007;
      }
      HnswParams params;
      params.M = 4;
      ImageIndex built(kDim, params, test_model(), codes);
      built.add(entries, vectors.data(), 1);
      const std::string path = dir.file("search-only.index");
      save_index(built, path);
      const ImageIndex whole = load_index(path);
      const ImageIndex searched = load_index(path, query_load_options());
      CHECK(whole.changeable());
      CHECK_FALSE(searched.changeable());
      // serve's load leaves them in the file only where its searches read the file anyway
      // (int8 rescores from it); an f32 index stays wholly in memory.
      CHECK(load_index(path, search_load_options()).changeable() == (codes == VectorCodes::F32));
      REQUIRE(searched.size() == n);
      for (std::size_t i = 0; i < n; ++i) {
        const IndexEntry e = searched.entry_info(i);
        REQUIRE(e.path == entries[i].path);
        CHECK(e.size == entries[i].size);
        CHECK(e.mtime_ns == entries[i].mtime_ns);
        CHECK(searched.path(i) == whole.entry(i).path);
      }
      for (std::size_t i = 0; i < n; i += 11) {
        const auto a = whole.search(whole.vector(i), 5, 50);
        const auto b = searched.search(searched.vector(i), 5, 50);
        REQUIRE(a.size() == b.size());
        for (std::size_t k = 0; k < a.size(); ++k) CHECK((a[k].id == b[k].id && a[k].score == b[k].score));
      }
      CHECK_THROWS_WITH(searched.entry_info(n), Catch::Contains("no entry"));
    }
  }
}

TEST_CASE("an index loaded for searching only refuses changes and saves", "[index_io]") {
  test::TempDir dir;
  const std::string path = dir.file("a.index");
  save_index(make_index(40), path);
  ImageIndex searched = load_index(path, query_load_options());
  auto refused = [&](const std::function<void()>& change) {
    try {
      change();
      FAIL("not refused");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::InvalidArgument);
      CHECK_THAT(e.what(), Catch::Contains("loaded for searching only"));
    }
  };
  const std::vector<float> v(searched.vector(0), searched.vector(0) + kDim);
  refused([&] { (void)searched.entry(0); });
  refused([&] { (void)searched.entries(); });
  refused([&] { searched.add({IndexEntry{"/photos/new.jpg", 1, 1, {}, {}}}, v.data(), 1); });
  refused([&] { searched.remove_if([](const IndexEntry&) { return true; }, 1); });
  refused([&] { searched.set_signals(0, DuplicateSignals{}); });
  refused([&] { searched.set_vector_codes(VectorCodes::F16, 1); });
  refused([&] { save_index(searched, dir.file("b.index")); });
  CHECK_FALSE(std::filesystem::exists(dir.file("b.index")));
  // Still searchable after every refusal, nothing changed.
  CHECK(searched.size() == 40);
  CHECK(searched.search(v.data(), 1)[0].id == 0);
  CHECK(searched.path(0) == "/photos/img0.jpg");
}

TEST_CASE("an index rewritten in place under a search-only reader gives an I/O error, not a wrong path", "[index_io]") {
  test::TempDir dir;
  const std::string path = dir.file("a.index"), other = dir.file("other.index");
  save_index(make_index(100), path);
  ImageIndex other_index = make_index(100, 3);
  other_index.remove_if([](const IndexEntry& e) { return e.path == "/photos/img0.jpg"; }, 1);  // shifts every path
  save_index(other_index, other);
  const ImageIndex searched = load_index(path, query_load_options());
  CHECK(searched.path(50) == "/photos/img50.jpg");
  // `cp` over it: same inode, new bytes (imgsearch's own saves replace the file instead).
  std::filesystem::copy_file(other, path, std::filesystem::copy_options::overwrite_existing);
  try {
    (void)searched.path(50);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Io);
    CHECK_THAT(e.what(), Catch::StartsWith(path) && Catch::Contains("changed since it was loaded"));
  }
  // Truncated: the block is no longer there to read.
  std::filesystem::resize_file(path, 100);
  CHECK_THROWS_WITH(searched.path(99), Catch::Contains("changed since it was loaded"));
}

TEST_CASE("an empty index and a one-entry index load", "[index_io]") {
  test::TempDir dir;
  save_index(ImageIndex(kDim, HnswParams{}, test_model()), dir.file("empty.index"));
  CHECK(load_index(dir.file("empty.index")).size() == 0);
  save_index(make_index(1), dir.file("one.index"));
  const ImageIndex one = load_index(dir.file("one.index"));
  REQUIRE(one.size() == 1);
  CHECK(one.search(one.vector(0), 5)[0].id == 0);
}

TEST_CASE("a truncated index is refused at every offset", "[index_io][hostile]") {
  Fixture f;
  const std::size_t size = f.bytes.size();
  std::vector<std::size_t> cuts;
  for (std::size_t n = 0; n < 256 && n < size; ++n) cuts.push_back(n);  // every offset in the header
  for (std::size_t n = 256; n < size; n += std::max<std::size_t>(1, size / 400)) cuts.push_back(n);
  for (std::size_t n = size - 16; n < size; ++n) cuts.push_back(n);
  for (const std::size_t n : cuts) {
    test::write_bytes(f.bad, Bytes(f.bytes.begin(), f.bytes.begin() + static_cast<std::ptrdiff_t>(n)));
    INFO("truncated to " << n << " of " << size << " bytes");
    expect_format_error(f.bad);
  }
}

TEST_CASE("a single flipped byte anywhere in the header or a section is caught", "[index_io][hostile]") {
  Fixture f;
  const Container c = Container::parse(f.bytes);
  const std::size_t header = Container::header_bytes(c.sections.size());
  std::vector<std::pair<std::size_t, std::string>> where;
  for (std::size_t i = 0; i < header; ++i) where.emplace_back(i, "header");
  for (const auto& s : c.sections) {
    const std::size_t off = Container::offset_of(f.bytes, s.tag);
    const std::size_t step = std::max<std::size_t>(1, s.data.size() / 97);
    for (std::size_t i = 0; i < s.data.size(); i += step) where.emplace_back(off + i, s.tag);
    where.emplace_back(off + s.data.size() - 1, s.tag);
  }
  for (const auto& [pos, tag] : where) {
    for (const std::uint8_t mask : {0x01, 0x80, 0xFF}) {
      Bytes b = f.bytes;
      b[pos] ^= mask;
      test::write_bytes(f.bad, b);
      INFO("byte " << pos << " (" << tag << ") ^= " << int(mask));
      expect_format_error(f.bad);
    }
  }
}

TEST_CASE("wrong magic, a features file, a future version and a zero version are refused", "[index_io][hostile]") {
  Fixture f;
  Bytes b = f.bytes;
  std::memcpy(b.data(), "NOTANIDX", 8);
  test::write_bytes(f.bad, b);
  expect_format_error(f.bad, "not an imgsearch index (wrong magic)");

  FeatureSet features;
  features.dim = 2;
  features.model = test_model();
  features.vectors = {1, 0};
  features.paths = {"/a.jpg"};
  write_features_file(f.bad, features);
  expect_format_error(f.bad, "not an imgsearch index (wrong magic)");

  test::write_bytes(f.bad, to_bytes("hello, this is a text file and not an index at all\n"));
  expect_format_error(f.bad, "not an imgsearch index");
  test::write_bytes(f.bad, Bytes{});
  expect_format_error(f.bad, "too short");

  for (const std::uint32_t version : {3u, 1000u, 0xFFFFFFFFu, 0u}) {
    Bytes v = f.bytes;
    test::put(v, 8, version);
    Container::fix_header_checksum(v);
    test::write_bytes(f.bad, v);
    INFO("version " << version);
    expect_format_error(f.bad, "format version " + std::to_string(version) + " is not supported");
  }
}

TEST_CASE("a missing index file is an Io error naming it", "[index_io]") {
  test::TempDir dir;
  try {
    load_index(dir.file("nope.index"));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Io);
    CHECK_THAT(e.what(), Catch::Matchers::StartsWith(dir.file("nope.index")));
  }
  try {
    load_index(dir.path.string());
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Io);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("not a regular file"));
  }
}

TEST_CASE("hostile table with valid header checksum", "[index_io][hostile]") {
  Fixture f;
  const auto n = test::get<std::uint32_t>(f.bytes, 12);
  REQUIRE(n == 4);
  SECTION("section count above the limit") {
    Bytes b = f.bytes;
    test::put<std::uint32_t>(b, 12, 65);
    test::write_bytes(f.bad, b);
    expect_format_error(f.bad, "section count 65");
  }
  SECTION("section count beyond the file") {
    Bytes b(f.bytes.begin(), f.bytes.begin() + 200);
    test::put<std::uint32_t>(b, 12, 64);
    test::write_bytes(f.bad, b);
    expect_format_error(f.bad, "truncated header");
  }
  SECTION("section offset or size outside the file") {
    for (const std::uint64_t off : {std::uint64_t(0), std::uint64_t(f.bytes.size()) + 1, ~std::uint64_t(0) - 7}) {
      Bytes b = f.bytes;
      test::put(b, 16 + 8, off);
      Container::fix_header_checksum(b);
      test::write_bytes(f.bad, b);
      INFO("offset " << off);
      expect_format_error(f.bad, "lies outside the file");
    }
    for (const std::uint64_t size : {std::uint64_t(f.bytes.size()), ~std::uint64_t(0)}) {
      Bytes b = f.bytes;
      test::put(b, 16 + 16, size);
      Container::fix_header_checksum(b);
      test::write_bytes(f.bad, b);
      INFO("size " << size);
      expect_format_error(f.bad, "lies outside the file");
    }
  }
  SECTION("a section's checksum") {
    Bytes b = f.bytes;
    test::put<std::uint64_t>(b, 16 + 3 * 32 + 24, 12345);
    Container::fix_header_checksum(b);
    test::write_bytes(f.bad, b);
    expect_format_error(f.bad, "checksum mismatch in section GRAPH");
  }
}

TEST_CASE("hostile sections with valid checksums: metadata", "[index_io][hostile]") {
  Fixture f;
  const Container good = Container::parse(f.bytes);
  auto with_meta = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& what) {
    Container c = good;
    c.section("META").data = to_bytes(meta_with(good, edit));
    INFO(what);
    f.expect_rejected(c, what);
  };
  with_meta([](auto& j) { j["count"] = 301; }, "vector section size does not match 301");
  // A version-2 file that needs a feature this build does not know is refused, not misread.
  {
    Container c = good;
    c.version = 2;
    c.section("META").data = to_bytes(meta_with(good, [](auto& j) { j["requires"] = {"warp-drive"}; }));
    f.expect_rejected(c, "written by a newer imgsearch (needs feature 'warp-drive')");
    c.section("META").data = to_bytes(meta_with(good, [](auto& j) { j["requires"] = nlohmann::json::array(); }));
    test::write_bytes(f.bad, c.serialize());
    CHECK(load_index(f.bad).size() == load_index(f.good).size());
  }
  with_meta([](auto& j) { j["count"] = 299; }, "vector section size does not match 299");
  with_meta([](auto& j) { j["count"] = 1ull << 40; }, "count out of range");
  with_meta([](auto& j) { j["count"] = 4294967280ull; }, "vector section size does not match");
  with_meta([](auto& j) { j["count"] = -1; }, "count out of range");
  with_meta([](auto& j) { j["count"] = 1e300; }, "count must be an integer");
  with_meta([](auto& j) { j["count"] = "300"; }, "count must be an integer");
  with_meta([](auto& j) { j["dim"] = 0; }, "dim out of range");
  with_meta([](auto& j) { j["dim"] = 32; }, "vector section size does not match");
  with_meta([](auto& j) { j["dim"] = 1 << 20; }, "dim out of range");
  with_meta([](auto& j) { j["dim"] = 8; }, "vector section size does not match");
  with_meta([](auto& j) { j["metric"] = "l2"; }, "unsupported metric");
  with_meta([](auto& j) { j["dtype"] = "float16"; }, "unsupported metric or dtype");
  with_meta([](auto& j) { j["hnsw"]["M"] = 1; }, "bad HNSW parameters");
  with_meta([](auto& j) { j["hnsw"]["M"] = 100000; }, "bad HNSW parameters");
  with_meta([](auto& j) { j["hnsw"]["M"] = 1e20; }, "M must be an integer");
  with_meta([](auto& j) { j["hnsw"]["ef_search"] = -5; }, "ef_search out of range");
  with_meta([](auto& j) { j.erase("hnsw"); }, "bad metadata");
  with_meta([](auto& j) { j.erase("model"); }, "bad metadata");
  with_meta([](auto& j) { j["model"]["input_size"] = 1e300; }, "input_size");
  with_meta([](auto& j) { j["model"]["input_size"] = 100000; }, "input_size out of range");
  with_meta([](auto& j) { j["model"]["input_size"] = 8; }, "bad input size");
  with_meta([](auto& j) { j["model"]["mean"] = {1, 2}; }, "mean must be 3 numbers");
  with_meta([](auto& j) { j["model"]["std"] = {1, 0, 1}; }, "bad mean/std");
  with_meta([](auto& j) { j["model"]["mean"] = {1e300, 0, 1}; }, "mean out of range");
  // A smaller M than the graph was built with: link counts exceed the capacity.
  with_meta([](auto& j) { j["hnsw"]["M"] = 2; }, "links, more than");

  Container c = good;
  c.section("META").data = to_bytes("not json at all");
  f.expect_rejected(c, "bad metadata");
  c.section("META").data = to_bytes(std::string(100000, '[') + std::string(100000, ']'));
  f.expect_rejected(c, "nested more than");
  c.section("META").data = {};
  f.expect_rejected(c, "bad metadata");
}

TEST_CASE("hostile sections with valid checksums: vectors and entries", "[index_io][hostile]") {
  Fixture f;
  const Container good = Container::parse(f.bytes);
  {
    Container c = good;
    c.section("VECS").data.resize(c.section("VECS").data.size() - 4);
    f.expect_rejected(c, "vector section size does not match");
    c = good;
    c.section("VECS").data.push_back(0);
    f.expect_rejected(c, "vector section size does not match");
    c = good;
    test::put(c.section("VECS").data, 4 * (kDim * 17 + 3), std::numeric_limits<float>::quiet_NaN());
    f.expect_rejected(c, "vector 17 holds NaN or infinity");
    c = good;
    test::put(c.section("VECS").data, 0, std::numeric_limits<float>::infinity());
    f.expect_rejected(c, "vector 0 holds NaN or infinity");
    c = good;
    c.drop("VECS");
    f.expect_rejected(c, "missing section VECS");
  }
  {
    Container c = good;
    test::put<std::uint32_t>(c.section("ENTRIES").data, 0, 0xFFFFFFFFu);  // first path's length
    f.expect_rejected(c, "string length 4294967295 too large");
    c = good;
    test::put<std::uint32_t>(c.section("ENTRIES").data, 0, 60000);
    f.expect_rejected(c, "corrupt section ENTRIES");
    c = good;
    c.section("ENTRIES").data.resize(c.section("ENTRIES").data.size() - 1);
    f.expect_rejected(c, "unexpected end");
    c = good;
    c.section("ENTRIES").data.resize(1000);
    f.expect_rejected(c, "entry section too short for 300 entries");
    c = good;
    c.section("ENTRIES").data.insert(c.section("ENTRIES").data.end(), 20, 0);
    f.expect_rejected(c, "unexpected trailing bytes");
    c = good;
    c.drop("ENTRIES");
    f.expect_rejected(c, "missing section ENTRIES");
    c = good;
    c.section("ENTRIES").tag = "ENTRIEZ";
    f.expect_rejected(c, "missing section ENTRIES");
  }
}

TEST_CASE("hostile graphs with valid checksums", "[index_io][hostile]") {
  Fixture f;
  const Container good = Container::parse(f.bytes);
  const Graph g0 = Graph::parse(const_cast<Container&>(good).section("GRAPH").data);
  REQUIRE(g0.links.size() == 300);
  REQUIRE(g0.top_level >= 1);  // M = 4 over 300 nodes: several levels
  // A node with a link on layer 0 and one that lives on layer >= 1.
  std::size_t upper = 0;
  while (g0.links[upper].size() < 2) ++upper;
  std::size_t ground = 0;  // a layer-0-only node
  while (g0.links[ground].size() != 1) ++ground;

  auto expect_graph_rejected = [&](const std::function<void(Graph&)>& edit, const std::string& what) {
    Graph g = g0;
    edit(g);
    Container c = good;
    c.section("GRAPH").data = g.serialize();
    INFO(what);
    f.expect_rejected(c, what);
  };
  // Sanity: the unedited graph re-serializes to a loadable file.
  {
    Container c = good;
    c.section("GRAPH").data = g0.serialize();
    c.save(f.bad);
    CHECK(load_index(f.bad).size() == 300);
  }
  expect_graph_rejected([](Graph& g) { g.links[5][0][0] = 300; }, "links to bad node 300");
  expect_graph_rejected([](Graph& g) { g.links[5][0][0] = 0xFFFFFFFFu; }, "links to bad node 4294967295");
  expect_graph_rejected([](Graph& g) { g.links[5][0][0] = 5; }, "node 5 links to bad node 5");
  expect_graph_rejected(
      [&](Graph& g) {
        auto& l = g.links[upper][1];
        if (l.empty()) l.push_back(static_cast<std::uint32_t>(ground));
        else l[0] = static_cast<std::uint32_t>(ground);
      },
                        "on a layer it lacks");
  expect_graph_rejected([](Graph& g) { g.links[7][0].assign(9, 1); }, "has 9 links, more than 8");
  expect_graph_rejected([&](Graph& g) { g.links[upper][1].assign(5, 0); }, "has 5 links, more than 4");
  expect_graph_rejected([](Graph& g) { g.links[9].resize(g.top_level + 2); }, "level above the top level");
  expect_graph_rejected([](Graph& g) { g.top_level = 65; }, "bad top level 65");
  expect_graph_rejected([](Graph& g) { g.top_level = 0xFFFFFFFFu; }, "bad top level");
  expect_graph_rejected([](Graph& g) { g.entry_point = 300; }, "entry point out of range");
  expect_graph_rejected([&](Graph& g) { g.entry_point = static_cast<std::uint32_t>(ground); },
                        "entry point is not on the top level");
  expect_graph_rejected([](Graph& g) { g.links.pop_back(); }, "unexpected end");
  expect_graph_rejected([](Graph& g) { g.links.push_back({{}}); }, "unexpected trailing bytes");

  Container c = good;
  c.section("GRAPH").data.resize(6);
  f.expect_rejected(c, "unexpected end");
  c.section("GRAPH").data.clear();
  f.expect_rejected(c, "unexpected end");
  c = good;
  c.section("GRAPH").data.resize(8 + 300 * 4);  // levels only, no link counts
  f.expect_rejected(c, "too short for 300 nodes");
  c = good;
  // A huge link count right after the header of node 0: caught before anything is read.
  test::put<std::uint32_t>(c.section("GRAPH").data, 12, 0x7FFFFFFFu);
  f.expect_rejected(c, "links, more than");
  c = good;
  c.drop("GRAPH");
  f.expect_rejected(c, "missing section GRAPH");
}

// Regression (found by fuzzing): a file rejected while its header was checked used to
// keep its memory mapping, since a throwing constructor runs no destructor.
TEST_CASE("rejected files leave no memory mapping behind", "[index_io][hostile]") {
  Fixture f;
  auto mappings = [] {
    std::ifstream maps("/proc/self/maps");
    std::size_t n = 0;
    for (std::string line; std::getline(maps, line);) n += line.find("bad.index") != std::string::npos;
    return n;
  };
  Bytes b = f.bytes;
  b[20] ^= 1;  // header checksum mismatch: rejected inside the reader's constructor
  test::write_bytes(f.bad, b);
  for (int i = 0; i < 200; ++i) CHECK_THROWS_AS(load_index(f.bad), Error);
  CHECK(mappings() == 0);
  test::write_bytes(f.bad, Bytes(f.bytes.begin(), f.bytes.end() - 1));  // rejected later, by a section
  for (int i = 0; i < 200; ++i) CHECK_THROWS_AS(load_index(f.bad), Error);
  CHECK(mappings() == 0);
}

TEST_CASE("hostile tombstone sections with valid checksums", "[index_io][hostile][tombstones]") {
  test::TempDir dir;
  const std::string good_path = dir.file("tomb.index"), bad = dir.file("bad.index");
  ImageIndex index = make_index(300);
  index.remove_if([](const IndexEntry& e) { return e.size % 20 == 0; }, 1);  // 15 tombstones
  REQUIRE(index.tombstones() == 15);
  save_index(index, good_path);
  const Container good = Container::load(good_path);
  {
    const Bytes& m = const_cast<Container&>(good).section("META").data;
    const auto meta = nlohmann::json::parse(m.begin(), m.end());
    CHECK(meta.at("requires") == nlohmann::json::array({"tombstones"}));
    CHECK(meta.at("count") == 285);
    CHECK(good.version == 2);
    CHECK(const_cast<Container&>(good).section("TOMBSTNS").data.size() == 8 + 15 * kDim * 4);
    CHECK(Graph::parse(const_cast<Container&>(good).section("GRAPH").data).links.size() == 300);
  }
  auto rejected = [&](const Container& c, const std::string& what) {
    INFO(what);
    c.save(bad);
    expect_format_error(bad, what);
  };
  Container c = good;
  c.drop("TOMBSTNS");  // META still requires them
  rejected(c, "the TOMBSTNS section and META \"requires\" disagree");
  c = good;
  c.section("META").data = to_bytes(meta_with(c, [](nlohmann::json& j) { j.erase("requires"); }));
  rejected(c, "disagree");
  // The count must match the section, whatever its value.
  for (const std::uint64_t count : {std::uint64_t(16), std::uint64_t(14), std::uint64_t(0), ~std::uint64_t(0),
                                    std::uint64_t(0xFFFFFFF0ull - 285 + 1)}) {
    c = good;
    test::put<std::uint64_t>(c.section("TOMBSTNS").data, 0, count);
    rejected(c, "corrupt section TOMBSTNS: size does not match its count of " + std::to_string(count) + " tombstones");
  }
  c = good;
  c.section("TOMBSTNS").data.resize(c.section("TOMBSTNS").data.size() - 4);
  rejected(c, "size does not match its count of 15");
  c = good;
  c.section("TOMBSTNS").data.resize(4);
  rejected(c, "unexpected end");
  c = good;
  test::put<float>(c.section("TOMBSTNS").data, 8 + (2 * kDim + 3) * 4, std::numeric_limits<float>::quiet_NaN());
  rejected(c, "tombstone 2 holds NaN or infinity");
  // The graph must have exactly a node per entry and per tombstone.
  c = good;
  test::put<std::uint64_t>(c.section("TOMBSTNS").data, 0, 14);
  c.section("TOMBSTNS").data.resize(8 + 14 * kDim * 4);
  rejected(c, "");  // trailing graph bytes, or a link or entry point past the last node
  c = good;
  c.section("TOMBSTNS").data.resize(8 + 16 * kDim * 4);
  test::put<std::uint64_t>(c.section("TOMBSTNS").data, 0, 16);
  rejected(c, "corrupt section GRAPH");
  // Links and the entry point may name tombstones (nodes 285..299), but nothing past them.
  const Graph g0 = Graph::parse(const_cast<Container&>(good).section("GRAPH").data);
  Graph g = g0;
  g.links[3][0][0] = 300;
  c = good;
  c.section("GRAPH").data = g.serialize();
  rejected(c, "node 3 links to bad node 300");
  g = g0;
  g.entry_point = 300;
  c = good;
  c.section("GRAPH").data = g.serialize();
  rejected(c, "entry point out of range");
  // An older reader (one that knows no "tombstones") is told the file is newer: simulated
  // by requiring a feature this reader does not know.
  c = good;
  c.section("META").data = to_bytes(meta_with(c, [](nlohmann::json& j) { j["requires"].push_back("teleport"); }));
  rejected(c, "written by a newer imgsearch (needs feature 'teleport')");
  // Tombstones in an index without entries.
  {
    const std::string empty_path = dir.file("empty.index");
    save_index(ImageIndex(kDim, HnswParams{}, test_model()), empty_path);
    Container e = Container::load(empty_path);
    e.version = 2;
    e.section("META").data = to_bytes(meta_with(e, [](nlohmann::json& j) { j["requires"] = {"tombstones"}; }));
    e.sections.push_back({"TOMBSTNS", const_cast<Container&>(good).section("TOMBSTNS").data});
    rejected(e, "tombstones in an index without entries");
  }
  // The good file loads and never returns a removed image.
  const ImageIndex loaded = load_index(good_path);
  CHECK(loaded.tombstones() == 15);
  for (std::size_t i = 0; i < loaded.size(); ++i) REQUIRE(loaded.entry(i).size % 20 != 0);
  for (std::size_t q = 0; q < loaded.size(); q += 19) {
    const auto hits = loaded.search(loaded.vector(q), 30);
    REQUIRE(hits.size() == 30);
    CHECK(hits[0].id == q);
  }
}

TEST_CASE("a search that the graph cannot complete falls back to scoring every vector", "[index_io][tombstones]") {
  // A hand-made file in which one node has no inbound links: hnswlib cannot reach it.
  test::TempDir dir;
  const std::string path = dir.file("cut.index");
  ImageIndex index = make_index(50);
  save_index(index, path);
  Container c = Container::load(path);
  Graph g = Graph::parse(c.section("GRAPH").data);
  const std::uint32_t lonely = g.entry_point == 17 ? 18 : 17;
  for (auto& node : g.links)
    for (auto& layer : node) layer.erase(std::remove(layer.begin(), layer.end(), lonely), layer.end());
  c.section("GRAPH").data = g.serialize();
  c.save(path);
  const ImageIndex cut = load_index(path);
  // Every entry comes back when all are asked for, the unreachable one included.
  const auto hits = cut.search(index.vector(0), 50);
  REQUIRE(hits.size() == 50);
  std::set<std::uint32_t> ids;
  for (const auto& h : hits) ids.insert(h.id);
  CHECK(ids.size() == 50);
  CHECK(ids.count(lonely) == 1);
}

// An R-MAC index names "descriptor" in META "requires" (an older reader must not embed
// its queries with the pooled output), loads back with its descriptor, and the model's
// descriptor and "requires" must agree.
TEST_CASE("an index with a descriptor requires it", "[index_io][descriptor]") {
  test::TempDir dir;
  const std::string good_path = dir.file("rmac.index"), bad = dir.file("bad.index");
  ModelInfo model = test_model();
  model.descriptor = Descriptor::parse("rmac:448,640");
  ImageIndex index(kDim, HnswParams{}, model);
  const ImageIndex source = make_index(20);
  std::vector<float> vectors;
  for (std::uint32_t i = 0; i < source.size(); ++i) {
    const auto v = source.model_vector_copy(i);
    vectors.insert(vectors.end(), v.begin(), v.end());
  }
  index.add(source.entries(), vectors.data(), 1);
  save_index(index, good_path);
  CHECK(load_index(good_path).model().descriptor == model.descriptor);
  const Container good = Container::load(good_path);
  {
    const Bytes& m = const_cast<Container&>(good).section("META").data;
    const auto meta = nlohmann::json::parse(m.begin(), m.end());
    CHECK(meta.at("requires") == nlohmann::json::array({"descriptor"}));
    CHECK(meta.at("model").at("descriptor") == nlohmann::json({{"type", "rmac"}, {"scales", {448, 640}}}));
    CHECK(good.version == 2);
  }
  Container c = good;
  c.section("META").data = to_bytes(meta_with(c, [](nlohmann::json& j) { j.erase("requires"); }));
  c.save(bad);
  expect_format_error(bad, "the model's descriptor and META \"requires\" disagree");
  c = good;
  c.section("META").data = to_bytes(meta_with(c, [](nlohmann::json& j) { j["model"].erase("descriptor"); }));
  c.save(bad);
  expect_format_error(bad, "disagree");
  c = good;
  c.section("META").data = to_bytes(meta_with(c, [](nlohmann::json& j) { j["model"]["descriptor"]["type"] = "gem"; }));
  c.save(bad);
  expect_format_error(bad, "unknown descriptor type 'gem'");
  c = good;
  c.section("META").data =
      to_bytes(meta_with(c, [](nlohmann::json& j) { j["model"]["descriptor"]["scales"] = {448, 100000}; }));
  c.save(bad);
  expect_format_error(bad, "scale out of range");
  // A pooled index requires nothing and writes no descriptor.
  save_index(make_index(5), dir.file("pooled.index"));
  const Container pooled = Container::load(dir.file("pooled.index"));
  const Bytes& m = const_cast<Container&>(pooled).section("META").data;
  const auto meta = nlohmann::json::parse(m.begin(), m.end());
  CHECK(!meta.contains("requires"));
  CHECK(!meta.at("model").contains("descriptor"));
}
