// Features files from elsewhere (`imgsearch extract` output): round trip, truncation,
// flipped bytes, wrong magic, future version, and hostile content with valid checksums.
// Each must throw imgsearch::Error(Format) naming the file, never crash or over-allocate.
#include "container_edit.h"
#include "test_helpers.h"

#include <imgsearch/error.h>
#include <imgsearch/features_file.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <limits>
#include <random>

using namespace imgsearch;
using test::Bytes;
using test::Container;

namespace {

FeatureSet make_features(std::size_t n, int dim) {
  FeatureSet f;
  f.dim = dim;
  f.model.name = "unit-test";
  f.model.output_dim = dim;
  f.model.path = "/nowhere/unit-test.pt";
  f.model.content_hash = "fedcba9876543210";
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  f.vectors.resize(n * dim);
  for (std::size_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int d = 0; d < dim; ++d) norm += std::pow(f.vectors[i * dim + d] = normal(rng), 2);
    for (int d = 0; d < dim; ++d) f.vectors[i * dim + d] /= static_cast<float>(std::sqrt(norm));
    // Names a user might have: spaces, non-ASCII, a leading dash.
    f.paths.push_back(i % 3 == 0 ? "/photos/été " + std::to_string(i) + ".jpg" : "/photos/-" + std::to_string(i) + ".png");
  }
  return f;
}

void expect_format_error(const std::string& path, const std::string& what = "") {
  try {
    read_features_file(path);
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.kind() == ErrorKind::Format);
    CHECK(std::string(e.what()).rfind(path + ": ", 0) == 0);
    if (!what.empty()) CHECK_THAT(e.what(), Catch::Matchers::Contains(what));
    return;
  }
  FAIL("reading " << path << " did not throw (" << what << ")");
}

Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

}  // namespace

TEST_CASE("features file round trip", "[features_file]") {
  test::TempDir dir;
  const FeatureSet f = make_features(123, 40);
  write_features_file(dir.file("f.feat"), f);
  const FeatureSet g = read_features_file(dir.file("f.feat"));
  CHECK(g.dim == 40);
  CHECK(g.paths == f.paths);
  CHECK(g.vectors == f.vectors);
  CHECK(g.model.content_hash == "fedcba9876543210");
  // No temporary file is left beside it.
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path)) ++files;
  CHECK(files == 1);
  // An empty set round-trips too.
  FeatureSet empty = make_features(0, 8);
  write_features_file(dir.file("empty.feat"), empty);
  CHECK(read_features_file(dir.file("empty.feat")).size() == 0);
}

TEST_CASE("truncated and bit-flipped features files are refused", "[features_file][hostile]") {
  test::TempDir dir;
  const std::string good = dir.file("good.feat"), bad = dir.file("bad.feat");
  write_features_file(good, make_features(50, 24));
  const Bytes bytes = test::read_bytes(good);
  for (std::size_t n = 0; n < bytes.size(); n += n < 300 ? 1 : 7) {
    test::write_bytes(bad, Bytes(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));
    INFO("truncated to " << n);
    expect_format_error(bad);
  }
  const Container c = Container::parse(bytes);
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < Container::header_bytes(c.sections.size()); ++i) where.push_back(i);
  for (const auto& s : c.sections) {
    const std::size_t off = Container::offset_of(bytes, s.tag);
    for (std::size_t i = 0; i < s.data.size(); i += 5) where.push_back(off + i);
  }
  for (const std::size_t pos : where) {
    Bytes b = bytes;
    b[pos] ^= 0x10;
    test::write_bytes(bad, b);
    INFO("byte " << pos);
    expect_format_error(bad);
  }
}

TEST_CASE("features file: wrong magic, an index, a future version", "[features_file][hostile]") {
  test::TempDir dir;
  const std::string good = dir.file("good.feat"), bad = dir.file("bad.feat");
  write_features_file(good, make_features(10, 8));
  Bytes b = test::read_bytes(good);
  Bytes m = b;
  std::memcpy(m.data(), "IMGSFEAX", 8);
  test::write_bytes(bad, m);
  expect_format_error(bad, "not an imgsearch features file (wrong magic)");

  ImageIndex index(8, HnswParams{}, make_features(0, 8).model);
  save_index(index, bad);
  expect_format_error(bad, "not an imgsearch features file (wrong magic)");

  // A NumPy file (the other thing `extract` writes) is not a features file either.
  write_features_npy(dir.file("f.npy"), make_features(3, 8));
  expect_format_error(dir.file("f.npy"), "wrong magic");

  test::put<std::uint32_t>(b, 8, 3);
  Container::fix_header_checksum(b);
  test::write_bytes(bad, b);
  expect_format_error(bad, "format version 3 is not supported");
}

// R-MAC vectors are not the model's pooled output: their file is version 2 (an older
// imgsearch refuses it), and a version 1 file that claims a descriptor is refused.
TEST_CASE("features file: a descriptor is kept and needs version 2", "[features_file][descriptor]") {
  test::TempDir dir;
  const std::string path = dir.file("rmac.feat"), bad = dir.file("bad.feat");
  FeatureSet f = make_features(5, 8);
  f.model.descriptor = Descriptor::parse("rmac:320,640");
  write_features_file(path, f);
  Bytes b = test::read_bytes(path);
  CHECK(test::get<std::uint32_t>(b, 8) == 2);
  CHECK(read_features_file(path).model.descriptor == f.model.descriptor);
  write_features_file(dir.file("pooled.feat"), make_features(5, 8));
  CHECK(test::get<std::uint32_t>(test::read_bytes(dir.file("pooled.feat")), 8) == 1);
  CHECK(read_features_file(dir.file("pooled.feat")).model.descriptor.pooled());
  test::put<std::uint32_t>(b, 8, 1);
  Container::fix_header_checksum(b);
  test::write_bytes(bad, b);
  expect_format_error(bad, "a version 1 file names a descriptor");
}

TEST_CASE("features file: hostile sections with valid checksums", "[features_file][hostile]") {
  test::TempDir dir;
  const std::string good_path = dir.file("good.feat"), bad = dir.file("bad.feat");
  write_features_file(good_path, make_features(20, 8));
  const Container good = Container::load(good_path);
  auto rejected = [&](const Container& c, const std::string& what) {
    c.save(bad);
    INFO(what);
    expect_format_error(bad, what);
  };
  auto with_meta = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& what) {
    Container c = good;
    const Bytes& raw = c.section("META").data;
    nlohmann::json j = nlohmann::json::parse(raw.begin(), raw.end());
    edit(j);
    c.section("META").data = to_bytes(j.dump());
    rejected(c, what);
  };
  with_meta([](auto& j) { j["count"] = 21; }, "vector section holds 640 bytes, not 21 x 8 floats");
  with_meta([](auto& j) { j["count"] = 1ull << 62; }, "not 4611686018427387904 x 8 floats");
  with_meta([](auto& j) { j["count"] = 0xFFFFFFFFFFFFFFFFull; }, "count out of range");
  with_meta([](auto& j) { j["count"] = -20; }, "count out of range");
  with_meta([](auto& j) { j["count"] = 20.5; }, "count must be an integer");
  with_meta(
      [](auto& j) {  // 40 x 4 floats fit the vector section; 40 paths do not fit the path section
        j["dim"] = 4;
        j["count"] = 40;
      },
      "corrupt section PATHS");
  with_meta([](auto& j) { j["dim"] = 0; }, "dim out of range");
  with_meta([](auto& j) { j["dim"] = 1 << 17; }, "dim out of range");
  with_meta([](auto& j) { j["dtype"] = "float64"; }, "unsupported dtype");
  with_meta([](auto& j) { j.erase("model"); }, "bad metadata");
  with_meta([](auto& j) { j["model"]["color"] = "CMYK"; }, "unsupported colour order");
  with_meta([](auto& j) { j["model"]["output_dim"] = 1e10; }, "output_dim must be an integer");

  Container c = good;
  c.section("META").data = to_bytes(std::string(5000, '{'));
  rejected(c, "bad metadata");
  c.section("META").data = to_bytes("{\"a\":" + std::string(50, '[') + std::string(50, ']') + "}");
  rejected(c, "nested more than");

  c = good;
  c.section("VECS").data.resize(20 * 8 * 4 - 4);
  rejected(c, "vector section holds");
  c = good;
  test::put(c.section("VECS").data, 4 * 17, std::numeric_limits<float>::quiet_NaN());
  rejected(c, "vector 2 holds NaN");

  c = good;
  test::put<std::uint32_t>(c.section("PATHS").data, 0, 0x7FFFFFFFu);
  rejected(c, "string length 2147483647 too large");
  c = good;
  c.section("PATHS").data.resize(40);
  rejected(c, "path section too short for 20 paths");
  c = good;
  c.section("PATHS").data.pop_back();
  rejected(c, "unexpected end");
  c = good;
  c.section("PATHS").data.push_back('x');
  rejected(c, "unexpected trailing bytes");
  c = good;
  c.drop("PATHS");
  rejected(c, "missing section PATHS");
  c = good;
  c.drop("META");
  rejected(c, "missing section META");
}
