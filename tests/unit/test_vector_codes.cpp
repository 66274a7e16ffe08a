// Compact vectors (`index --vectors f16|int8`): the encodings, their SIMD kernels, and an
// index that searches codes and rescores with the exact rows of its file.
#include "container_edit.h"
#include "test_helpers.h"

#include <imgsearch/error.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>
#include <imgsearch/vector_encoding.h>

#include "vector_codes.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <cmath>
#include <cstring>
#include <random>
#include <set>

using namespace imgsearch;

namespace {

std::vector<float> unit_vectors(std::size_t n, int dim, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n * dim);
  for (std::size_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int d = 0; d < dim; ++d) norm += double(v[i * dim + d] = normal(rng)) * v[i * dim + d];
    for (int d = 0; d < dim; ++d) v[i * dim + d] = static_cast<float>(v[i * dim + d] / std::sqrt(norm));
  }
  return v;
}

// Clustered, as CNN embeddings are to an ANN index.
std::vector<float> clustered(std::size_t n, int dim, int clusters, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centers(static_cast<std::size_t>(clusters) * dim);
  for (float& c : centers) c = normal(rng);
  std::vector<float> v(n * dim);
  for (std::size_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int d = 0; d < dim; ++d) {
      v[i * dim + d] = centers[(i % clusters) * dim + d] + 0.6f * normal(rng);
      norm += double(v[i * dim + d]) * v[i * dim + d];
    }
    for (int d = 0; d < dim; ++d) v[i * dim + d] = static_cast<float>(v[i * dim + d] / std::sqrt(norm));
  }
  return v;
}

std::vector<IndexEntry> entries_for(std::size_t first, std::size_t n) {
  std::vector<IndexEntry> e(n);
  for (std::size_t i = 0; i < n; ++i) e[i].path = "/photos/" + std::to_string(first + i) + ".jpg";
  return e;
}

ModelInfo some_model(int dim) {
  ModelInfo m;
  m.name = "test";
  m.output_dim = dim;
  m.path = "/models/test.pt";
  m.content_hash = "0123456789abcdef";
  return m;
}

double dot(const float* a, const float* b, int dim) {
  double s = 0;
  for (int d = 0; d < dim; ++d) s += double(a[d]) * b[d];
  return s;
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

nlohmann::json meta_of(const std::string& path) {
  const test::Container c = test::Container::load(path);
  for (const auto& s : c.sections)
    if (s.tag == "META") return nlohmann::json::parse(s.data.begin(), s.data.end());
  throw std::runtime_error("no META");
}

}  // namespace

TEST_CASE("vector codes: names parse and unknown ones are refused", "[vector_codes]") {
  for (const char* name : {"f32", "f16", "int8"}) CHECK(vector_codes_name(parse_vector_codes(name)) == std::string(name));
  CHECK_THROWS_WITH(parse_vector_codes("int4"), Catch::Contains("unknown vector encoding 'int4'"));
  CHECK(make_vector_encoding(VectorCodes::F16, 1280)->code_size() == 2560);
  CHECK(make_vector_encoding(VectorCodes::Int8, 1280)->code_size() == 1284);
  CHECK(make_vector_encoding(VectorCodes::F32, 1280)->code_size() == 5120);
  // Padded to 4 bytes, so hnswlib's link lists after each code stay aligned (odd dimensions).
  CHECK(make_vector_encoding(VectorCodes::F16, 97)->code_size() == 196);
  CHECK(make_vector_encoding(VectorCodes::Int8, 97)->code_size() == 104);
}

TEST_CASE("f16 and int8 encode within their error bounds", "[vector_codes]") {
  const int dim = 1280;
  const std::vector<float> v = unit_vectors(50, dim, 7);
  const auto f16 = make_vector_encoding(VectorCodes::F16, dim);
  const auto i8 = make_vector_encoding(VectorCodes::Int8, dim);
  std::vector<std::uint8_t> code(std::max(f16->code_size(), i8->code_size()));
  std::vector<float> back(dim);
  for (std::size_t i = 0; i < 50; ++i) {
    const float* x = v.data() + i * dim;
    f16->encode(x, code.data());
    f16->decode(code.data(), back.data());
    for (int d = 0; d < dim; ++d) {
      // Half precision: 11 significant bits, so within 2^-11 relative (2^-25 absolute
      // among the subnormals).
      REQUIRE(std::fabs(back[d] - x[d]) <= std::max(std::fabs(x[d]) / 2048.0f, 1.0f / (1 << 25)));
    }
    CHECK(1.0 - f16->distance(code.data(), code.data()) == Approx(1.0).margin(2e-3));

    i8->encode(x, code.data());
    i8->decode(code.data(), back.data());
    float max_abs = 0;
    for (int d = 0; d < dim; ++d) max_abs = std::max(max_abs, std::fabs(x[d]));
    for (int d = 0; d < dim; ++d) REQUIRE(std::fabs(back[d] - x[d]) <= max_abs / 254.0f * 1.0001f);
    // The code's distance is the decoded vectors' distance.
    const float* y = v.data() + ((i + 1) % 50) * dim;
    std::vector<std::uint8_t> code_y(i8->code_size());
    std::vector<float> back_y(dim);
    i8->encode(y, code_y.data());
    i8->decode(code_y.data(), back_y.data());
    CHECK(1.0 - i8->distance(code.data(), code_y.data()) == Approx(dot(back.data(), back_y.data(), dim)).margin(1e-5));
    CHECK(1.0 - i8->distance(code.data(), code_y.data()) == Approx(dot(x, y, dim)).margin(0.01));
  }
  // Edge values of the half conversion.
  CHECK(detail::half_to_float(detail::float_to_half(1.0f)) == 1.0f);
  CHECK(detail::half_to_float(detail::float_to_half(-0.5f)) == -0.5f);
  CHECK(detail::half_to_float(detail::float_to_half(65504.0f)) == 65504.0f);
  CHECK(std::isinf(detail::half_to_float(detail::float_to_half(1e6f))));
  CHECK(detail::half_to_float(detail::float_to_half(std::ldexp(1.0f, -24))) == std::ldexp(1.0f, -24));
  CHECK(detail::float_to_half(1.0f + 1.0f / 4096) == detail::float_to_half(1.0f));  // ties to even
  for (std::uint32_t h = 0; h < 0x7c00; ++h)  // every finite half survives the round trip
    REQUIRE(detail::float_to_half(detail::half_to_float(static_cast<std::uint16_t>(h))) == h);
}

TEST_CASE("SIMD kernels equal the portable ones on random data, odd lengths included", "[vector_codes]") {
  INFO("kernels in use: " << detail::code_kernels_name());
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(-127, 127);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  for (const std::size_t n : {1u, 7u, 8u, 15u, 16u, 17u, 31u, 32u, 33u, 63u, 100u, 1279u, 1280u, 1283u, 4099u}) {
    std::vector<std::int8_t> a(n), b(n);
    std::vector<std::uint16_t> ha(n), hb(n);
    for (std::size_t i = 0; i < n; ++i) {
      a[i] = static_cast<std::int8_t>(byte(rng));
      b[i] = static_cast<std::int8_t>(byte(rng));
      ha[i] = detail::float_to_half(normal(rng));
      hb[i] = detail::float_to_half(normal(rng));
    }
    // Extremes: the widening multiply-add must not saturate.
    a[0] = -127;
    b[0] = -127;
    const std::int32_t i8 = detail::i8_dot_portable(a.data(), b.data(), n);
    const float f16 = detail::f16_dot_portable(ha.data(), hb.data(), n);
    double exact = 0;
    for (std::size_t i = 0; i < n; ++i) exact += double(detail::half_to_float(ha[i])) * detail::half_to_float(hb[i]);
    CHECK(f16 == Approx(exact).margin(1e-5));
    if (detail::cpu_has_avx2()) {
      CHECK(detail::i8_dot_avx2(a.data(), b.data(), n) == i8);
      CHECK(detail::f16_dot_avx2(ha.data(), hb.data(), n) == Approx(exact).margin(1e-5));
    }
    if (detail::cpu_has_avx512()) {
      CHECK(detail::i8_dot_avx512(a.data(), b.data(), n) == i8);
      CHECK(detail::f16_dot_avx512(ha.data(), hb.data(), n) == Approx(exact).margin(1e-5));
    }
  }
  std::vector<std::int8_t> lows(4096, -127);
  CHECK(detail::i8_dot_portable(lows.data(), lows.data(), lows.size()) == 4096 * 127 * 127);
  if (detail::cpu_has_avx512()) CHECK(detail::i8_dot_avx512(lows.data(), lows.data(), lows.size()) == 4096 * 127 * 127);
  if (detail::cpu_has_avx2()) CHECK(detail::i8_dot_avx2(lows.data(), lows.data(), lows.size()) == 4096 * 127 * 127);
}

TEST_CASE("SIMD encoders write the portable encoders' bytes, ties and tails included", "[vector_codes]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (const std::size_t n : {1u, 7u, 8u, 9u, 31u, 32u, 33u, 97u, 1280u, 1283u}) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    v[0] = 127.0f / 512;  // the largest magnitude: the int8 scale is 1/512 exactly, and v[0] maps to 127
    if (n > 2) v[1] = 62.5f / 512;  // an exact tie: to even (62), not away from zero (63)
    if (n > 3) v[2] = 1.0f / 4096 + 1.0f / (1 << 23);  // a half rounding case
    std::vector<std::uint8_t> hp(2 * n), ha(2 * n, 0xee);
    std::vector<std::int8_t> ip(n), ia(n, 99);
    detail::f16_encode_portable(v.data(), n, hp.data());
    const float scale = detail::i8_encode_portable(v.data(), n, ip.data());
    CHECK(scale == 1.0f / 512);
    CHECK(ip[0] == 127);
    if (n > 2) CHECK(ip[1] == 62);
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t h;
      std::memcpy(&h, hp.data() + 2 * i, 2);
      REQUIRE(h == detail::float_to_half(v[i]));
    }
    if (detail::cpu_has_avx2()) {
      detail::f16_encode_avx2(v.data(), n, ha.data());
      CHECK(ha == hp);
      CHECK(detail::i8_encode_avx2(v.data(), n, ia.data()) == scale);
      CHECK(ia == ip);
    }
  }
  std::vector<float> zero(40, 0.0f);
  std::vector<std::int8_t> out(40, 5);
  CHECK(detail::i8_encode_portable(zero.data(), zero.size(), out.data()) == 0.0f);
  CHECK(out == std::vector<std::int8_t>(40, 0));
  if (detail::cpu_has_avx2()) {
    std::fill(out.begin(), out.end(), 5);
    CHECK(detail::i8_encode_avx2(zero.data(), zero.size(), out.data()) == 0.0f);
    CHECK(out == std::vector<std::int8_t>(40, 0));
  }
}

TEST_CASE("a compact index finds what exact search finds and scores hits exactly", "[vector_codes][index]") {
  const int dim = 97;  // odd: every kernel's tail runs
  const std::size_t n = 3000;
  const std::vector<float> v = clustered(n, dim, 30, 11);
  const std::vector<float> queries = clustered(100, dim, 30, 12);
  for (const VectorCodes codes : {VectorCodes::F16, VectorCodes::Int8}) {
    INFO(vector_codes_name(codes));
    ImageIndex index(dim, HnswParams{}, some_model(dim), codes);
    index.add(entries_for(0, n), v.data(), 2);
    CHECK(index.vector_codes() == codes);
    CHECK(recall_at_10(index, queries, 100, 64) >= 0.95);
    // vector() is the exact row; scores are exact cosines, not code estimates.
    CHECK(std::equal(v.begin(), v.begin() + dim, index.vector(0), [](float a, float b) { return std::fabs(a - b) < 1e-6f; }));
    const auto hits = index.search(queries.data(), 10);
    REQUIRE(hits.size() == 10);
    for (const auto& h : hits) CHECK(h.score == Approx(dot(queries.data(), v.data() + h.id * dim, dim)).margin(1e-5));
    for (std::size_t i = 1; i < hits.size(); ++i) CHECK(hits[i - 1].score >= hits[i].score);
    for (std::size_t i = 0; i < n; i += 97) CHECK(index.search(v.data() + i * dim, 1)[0].id == i);
  }
}

TEST_CASE("a compact index saves, loads, grows and shrinks", "[vector_codes][index_io]") {
  test::TempDir tmp;
  const int dim = 64;
  const std::size_t n = 1500;
  const std::vector<float> v = clustered(n + 300, dim, 20, 5);
  for (const VectorCodes codes : {VectorCodes::F16, VectorCodes::Int8}) {
    INFO(vector_codes_name(codes));
    const std::string path = tmp.file(std::string("c-") + vector_codes_name(codes) + ".index");
    ImageIndex index(dim, HnswParams{}, some_model(dim), codes);
    index.add(entries_for(0, n), v.data(), 2);
    save_index(index, path);

    // The file says what it needs: an imgsearch that does not know compact codes refuses
    // it ("needs feature 'vector_codes'") rather than reading the graph over float rows;
    // f16 files hold binary16 rows ("f16_rows").
    const bool f16 = codes == VectorCodes::F16;
    const nlohmann::json meta = meta_of(path);
    CHECK(meta.at("vectors") == vector_codes_name(codes));
    CHECK(meta.at("requires") == (f16 ? nlohmann::json::array({"vector_codes", "f16_rows"})
                                      : nlohmann::json::array({"vector_codes"})));
    CHECK(meta.contains("rows") == f16);
    CHECK(test::Container::load(path).version == 2);
    CHECK(test::Container::load(path).section("VECS").data.size() == n * dim * (f16 ? 2 : 4));

    ImageIndex loaded = load_index(path);
    CHECK(loaded.vector_codes() == codes);
    REQUIRE(loaded.size() == n);
    // f16: the rows come back rounded to half precision, exactly.
    const auto half = make_vector_encoding(VectorCodes::F16, dim);
    auto as_stored = [&](const float* v) {
      std::vector<float> out(v, v + dim);
      if (!f16) return out;
      std::vector<std::uint8_t> code(half->code_size());
      half->encode(v, code.data());
      half->decode(code.data(), out.data());
      return out;
    };
    for (std::size_t i = 0; i < n; i += 7) {
      const auto expected = as_stored(index.vector(i));
      REQUIRE(std::equal(loaded.vector(i), loaded.vector(i) + dim, expected.begin()));
      std::vector<float> copied(dim);
      loaded.copy_vector(i, copied.data());
      REQUIRE(copied == expected);
    }
    for (std::size_t q = 0; q < n; q += 50) {
      const auto a = index.search(v.data() + q * dim, 10), b = loaded.search(v.data() + q * dim, 10);
      REQUIRE(a.size() == b.size());
      // f16: rescored with the half-precision rows, so near ties may swap.
      for (std::size_t j = 0; j < a.size(); ++j) {
        if (!f16) CHECK(a[j].id == b[j].id);
        CHECK(b[j].score == Approx(a[j].score).margin(f16 ? 2e-3 : 0));
      }
    }
    // Incremental: add, remove (tombstones), save over the file it was loaded from, reload.
    loaded.add(entries_for(n, 300), v.data() + n * dim, 2);
    const std::size_t removed = loaded.remove_if([](const IndexEntry& e) { return e.path.size() == 15 && e.path < "/photos/2"; });  // ids 100..199
    CHECK(removed > 0);
    CHECK(loaded.tombstones() == removed);
    std::vector<float> kept_vectors;
    for (std::size_t i = 0; i < loaded.size(); ++i) {
      const auto stored = as_stored(loaded.vector(i));  // the 300 added are float32 until saved
      kept_vectors.insert(kept_vectors.end(), stored.begin(), stored.end());
    }
    save_index(loaded, path);
    ImageIndex again = load_index(path);
    CHECK(again.size() == n + 300 - removed);
    CHECK(again.tombstones() == removed);
    for (std::size_t i = 0; i < again.size(); ++i) {
      REQUIRE(std::equal(again.vector(i), again.vector(i) + dim, kept_vectors.data() + i * dim));
      if (i % 40 == 0) CHECK(again.search(again.vector(i), 1)[0].id == i);
    }
    // Re-encoding re-links the graph (and drops the tombstones).
    again.set_vector_codes(VectorCodes::F32);
    CHECK(again.vector_codes() == VectorCodes::F32);
    CHECK(again.tombstones() == 0);
    for (std::size_t i = 0; i < again.size(); i += 40) CHECK(again.search(kept_vectors.data() + i * dim, 1)[0].id == i);
    save_index(again, path);
    CHECK_FALSE(meta_of(path).contains("vectors"));
    CHECK_FALSE(meta_of(path).contains("requires"));
    CHECK(test::Container::load(path).version == 1);
  }
}

TEST_CASE("a compact index's META is checked", "[vector_codes][index_io][hostile]") {
  test::TempDir tmp;
  const int dim = 16;
  const std::vector<float> v = clustered(50, dim, 3, 9);
  ImageIndex index(dim, HnswParams{}, some_model(dim), VectorCodes::Int8);
  index.add(entries_for(0, 50), v.data(), 1);
  const std::string good = tmp.file("good.index"), bad = tmp.file("bad.index");
  save_index(index, good);
  auto with_meta = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& message) {
    test::Container c = test::Container::load(good);
    nlohmann::json meta = meta_of(good);
    edit(meta);
    const std::string text = meta.dump();
    c.section("META").data.assign(text.begin(), text.end());
    test::write_bytes(bad, c.serialize());
    CHECK_THROWS_WITH(load_index(bad), Catch::Contains(message));
  };
  with_meta([](auto& j) { j["vectors"] = "int4"; }, "unknown vector encoding \"int4\"");
  with_meta([](auto& j) { j["vectors"] = 8; }, "unknown vector encoding \"8\"");
  with_meta([](auto& j) { j["vectors"] = "f32"; }, "unknown vector encoding \"f32\"");
  with_meta([](auto& j) { j.erase("requires"); }, "META \"vectors\" and \"requires\" disagree");
  with_meta([](auto& j) { j.erase("vectors"); }, "META \"vectors\" and \"requires\" disagree");
  with_meta([](auto& j) { j["requires"] = {"vector_codes", "vector_codes_v2"}; }, "needs feature 'vector_codes_v2'");
  with_meta([](auto& j) { j["vectors_chosen"] = "yes"; }, "\"vectors_chosen\" is not true or false");
  with_meta([](auto& j) { j["vectors_chosen"] = 1; }, "\"vectors_chosen\" is not true or false");
  CHECK(load_index(good).vector_codes() == VectorCodes::Int8);
}

TEST_CASE("automatic encoding (index --vectors auto): f32 until the threshold, int8 from it, never back, f16 left alone", "[vector_codes]") {
  CHECK(automatic_vector_codes(VectorCodes::F32, 0) == VectorCodes::F32);
  CHECK(automatic_vector_codes(VectorCodes::F32, kDefaultInt8FromImages - 1) == VectorCodes::F32);
  CHECK(automatic_vector_codes(VectorCodes::F32, kDefaultInt8FromImages) == VectorCodes::Int8);
  CHECK(automatic_vector_codes(VectorCodes::F32, 5, 6) == VectorCodes::F32);
  CHECK(automatic_vector_codes(VectorCodes::F32, 6, 6) == VectorCodes::Int8);
  CHECK(automatic_vector_codes(VectorCodes::Int8, 1) == VectorCodes::Int8);
  CHECK(automatic_vector_codes(VectorCodes::F16, 10'000'000) == VectorCodes::F16);
}

TEST_CASE("whether a user chose the encoding is saved, and only then written", "[vector_codes][index_io]") {
  test::TempDir tmp;
  const int dim = 16;
  const std::vector<float> v = clustered(20, dim, 2, 3);
  for (const VectorCodes codes : {VectorCodes::F32, VectorCodes::Int8}) {
    INFO(vector_codes_name(codes));
    ImageIndex index(dim, HnswParams{}, some_model(dim), codes);
    index.add(entries_for(0, 20), v.data(), 1);
    const std::string path = tmp.file(std::string("chosen-") + vector_codes_name(codes) + ".index");
    CHECK_FALSE(index.vector_codes_chosen());
    save_index(index, path);
    // Not chosen: nothing written, so f32 files stay as they were before the flag existed.
    CHECK_FALSE(meta_of(path).contains("vectors_chosen"));
    CHECK_FALSE(load_index(path).vector_codes_chosen());
    index.set_vector_codes_chosen(true);
    save_index(index, path);
    CHECK(meta_of(path).at("vectors_chosen") == true);
    // Unknown to older readers, so not in "requires": an f32 file stays version 1.
    CHECK(test::Container::load(path).version == (codes == VectorCodes::F32 ? 1u : 2u));
    ImageIndex loaded = load_index(path);
    CHECK(loaded.vector_codes_chosen());
    CHECK(loaded.vector_codes() == codes);
    IndexLoadOptions search_only;
    search_only.entries = IndexLoadOptions::Entries::File;
    CHECK(load_index(path, search_only).vector_codes_chosen());
  }
}

TEST_CASE("an f16 index file holds binary16 rows: half the size, searched without its file", "[vector_codes][index_io]") {
  test::TempDir tmp;
  const int dim = 96;
  const std::size_t n = 1200;
  const std::vector<float> v = clustered(n, dim, 16, 9);
  ImageIndex f32(dim, HnswParams{}, some_model(dim));
  f32.add(entries_for(0, n), v.data(), 2);
  ImageIndex f16(dim, HnswParams{}, some_model(dim), VectorCodes::F16);
  f16.add(entries_for(0, n), v.data(), 2);
  const std::string f32_path = tmp.file("f32.index"), f16_path = tmp.file("f16.index");
  save_index(f32, f32_path);
  save_index(f16, f16_path);
  const auto f32_bytes = std::filesystem::file_size(f32_path), f16_bytes = std::filesystem::file_size(f16_path);
  const std::uint64_t saved = std::uint64_t(n) * dim * 2;  // the rows' half
  CHECK(f32_bytes - f16_bytes >= saved - 4096);
  CHECK(f32_bytes - f16_bytes <= saved + 4096);

  // Every search answers from memory: the file can go once it is loaded.
  const std::string moved = tmp.file("gone.index");
  std::filesystem::copy_file(f16_path, moved);
  ImageIndex loaded = load_index(moved);
  std::filesystem::resize_file(moved, 64);
  std::size_t agree = 0;
  for (std::size_t q = 0; q < n; q += 10) {
    const auto a = f32.search(v.data() + q * dim, 10, 64), b = loaded.search(v.data() + q * dim, 10, 64);
    REQUIRE(b.size() == 10);
    CHECK(b[0].id == a[0].id);
    for (std::size_t j = 0; j < b.size(); ++j) {
      CHECK(b[j].score == Approx(a[j].score).margin(2e-3));  // half precision rows
      agree += std::any_of(a.begin(), a.end(), [&](const SearchHit& h) { return h.id == b[j].id; });
    }
  }
  CHECK(agree >= std::size_t(0.97 * 10 * (n / 10)));

  // The rows are binary16 on disk: a half with every exponent bit set is refused.
  test::Container c = test::Container::load(f16_path);
  auto& rows = c.section("VECS").data;
  rows[2 * (5 * dim + 3) + 1] = 0x7c;  // row 5, value 3: +infinity's high byte
  rows[2 * (5 * dim + 3)] = 0x00;
  const std::string bad = tmp.file("bad.index");
  c.save(bad);
  CHECK_THROWS_WITH(load_index(bad), Catch::Contains("vector 5 holds NaN or infinity"));
  // Every lane of the word-at-a-time scan, and the last value: -infinity and a NaN.
  for (const std::size_t value : {std::size_t(0), std::size_t(1), std::size_t(2), 7 * std::size_t(dim) + 2, n * dim - 1}) {
    for (const std::uint16_t h : {std::uint16_t(0xfc00), std::uint16_t(0x7e01)}) {
      test::Container edited = test::Container::load(f16_path);
      auto& r = edited.section("VECS").data;
      r[2 * value] = static_cast<std::uint8_t>(h & 0xff);
      r[2 * value + 1] = static_cast<std::uint8_t>(h >> 8);
      edited.save(bad);
      CHECK_THROWS_WITH(load_index(bad), Catch::Contains("vector " + std::to_string(value / dim) + " holds NaN or infinity"));
    }
  }
  // The largest finite half (65504) is accepted by the scan (its mantissa is all ones,
  // its exponent one short of all ones).
  {
    test::Container edited = test::Container::load(f16_path);
    auto& r = edited.section("VECS").data;
    r[2 * 10] = 0xff;
    r[2 * 10 + 1] = 0x7b;
    edited.save(bad);
    CHECK_NOTHROW(load_index(bad));
  }
  // A VECS of float32 size under "rows": "f16" is refused, not misread.
  test::Container wrong = test::Container::load(f32_path);
  wrong.section("META").data = test::Container::load(f16_path).section("META").data;
  wrong.save(bad);
  CHECK_THROWS_WITH(load_index(bad), Catch::Contains("vector section size does not match"));
}

TEST_CASE("an f16 index loaded with its rows left in the file searches them there, grows, shrinks and saves",
          "[vector_codes][index_io]") {
  test::TempDir tmp;
  const int dim = 200;  // 1,500 x 200 halves: the load's checksum and scan take two chunks
  const std::size_t n = 1500;
  const std::vector<float> v = clustered(n + 100, dim, 20, 21);
  ImageIndex built(dim, HnswParams{}, some_model(dim), VectorCodes::F16);
  built.add(entries_for(0, n), v.data(), 2);
  built.remove_if([](const IndexEntry& e) { return e.path == "/photos/3.jpg" || e.path == "/photos/1400.jpg"; });
  REQUIRE(built.tombstones() == 2);
  const std::string path = tmp.file("f16.index");
  save_index(built, path);

  IndexLoadOptions in_file;
  in_file.search_rows_in_memory = false;
  const ImageIndex copied = load_index(path);
  ImageIndex in_place = load_index(path, in_file);
  REQUIRE(in_place.size() == n - 2);
  CHECK(in_place.tombstones() == 2);
  // The same rows and the same graph: the same hits, scores to the bit.
  for (std::size_t q = 0; q < n + 100; q += 37) {
    const auto a = copied.search(v.data() + q * dim, 10, 32), b = in_place.search(v.data() + q * dim, 10, 32);
    REQUIRE(a.size() == b.size());
    for (std::size_t j = 0; j < a.size(); ++j) {
      CHECK(b[j].id == a[j].id);
      CHECK(b[j].score == a[j].score);
    }
  }
  for (std::size_t id = 0; id < in_place.size(); id += 97)
    REQUIRE(std::equal(in_place.vector(id), in_place.vector(id) + dim, copied.vector(id)));

  // Grows (the new rows in memory, the old ones still in the file), shrinks, saves.
  in_place.add(entries_for(n, 100), v.data() + n * dim, 2);
  for (std::size_t i = n; i < n + 100; i += 9) {
    const auto hits = in_place.search(v.data() + i * dim, 1);
    REQUIRE(hits.size() == 1);
    CHECK(in_place.entry(hits[0].id).path == "/photos/" + std::to_string(i) + ".jpg");
    CHECK(hits[0].score == Approx(1.0f).margin(2e-3));
  }
  in_place.remove_if([](const IndexEntry& e) { return e.path == "/photos/10.jpg" || e.path == "/photos/1510.jpg"; });
  const std::string again = tmp.file("again.index");
  save_index(in_place, again);
  const ImageIndex reloaded = load_index(again, in_file);
  REQUIRE(reloaded.size() == n + 100 - 4);
  CHECK(reloaded.tombstones() == 4);
  for (std::size_t q = 0; q < n + 100; q += 29) {
    const auto a = in_place.search(v.data() + q * dim, 10, 32), b = reloaded.search(v.data() + q * dim, 10, 32);
    REQUIRE(a.size() == b.size());
    for (std::size_t j = 0; j < a.size(); ++j) CHECK(b[j].id == a[j].id);
  }

  // A bad half in the second chunk of the scan is found and named, either way.
  test::Container c = test::Container::load(path);
  const std::size_t value = 1400 * std::size_t(dim) + 7;  // past the first 2^18 halves
  REQUIRE(value > (std::size_t(1) << 18));
  c.section("VECS").data[2 * value] = 0x00;
  c.section("VECS").data[2 * value + 1] = 0x7c;
  const std::string bad = tmp.file("bad.index");
  c.save(bad);
  CHECK_THROWS_WITH(load_index(bad), Catch::Contains("vector 1400 holds NaN or infinity"));
  CHECK_THROWS_WITH(load_index(bad, in_file), Catch::Contains("vector 1400 holds NaN or infinity"));
}

TEST_CASE("an f16 index written with float32 rows (before binary16 rows) still loads, and is rewritten with them",
          "[vector_codes][index_io]") {
  test::TempDir tmp;
  const int dim = 48;
  const std::size_t n = 600;
  const std::vector<float> v = clustered(n, dim, 12, 4);
  ImageIndex f16(dim, HnswParams{}, some_model(dim), VectorCodes::F16);
  f16.add(entries_for(0, n), v.data(), 2);
  ImageIndex f32(dim, HnswParams{}, some_model(dim));
  f32.add(entries_for(0, n), v.data(), 2);
  const std::string path = tmp.file("f16.index"), f32_path = tmp.file("f32.index");
  save_index(f16, path);
  save_index(f32, f32_path);
  // The earlier layout: float32 rows in VECS, no "rows" and no "f16_rows".
  test::Container old = test::Container::load(path);
  old.section("VECS").data = test::Container::load(f32_path).section("VECS").data;
  nlohmann::json meta = meta_of(path);
  meta.erase("rows");
  meta["requires"] = nlohmann::json::array({"vector_codes"});
  const std::string text = meta.dump();
  old.section("META").data.assign(text.begin(), text.end());
  const std::string old_path = tmp.file("old.index");
  old.save(old_path);

  ImageIndex loaded = load_index(old_path);
  CHECK(loaded.vector_codes() == VectorCodes::F16);
  for (std::size_t i = 0; i < n; i += 11) CHECK(std::equal(loaded.vector(i), loaded.vector(i) + dim, f32.vector(i)));
  for (std::size_t q = 0; q < n; q += 25) CHECK(loaded.search(v.data() + q * dim, 1)[0].id == q);
  save_index(loaded, old_path);
  CHECK(meta_of(old_path).at("rows") == "f16");
  CHECK(test::Container::load(old_path).section("VECS").data == test::Container::load(path).section("VECS").data);
}

TEST_CASE("an int8 index stores its codes and row checksums: a searcher's load takes the codes and checks each row it reads",
          "[vector_codes][index_io]") {
  test::TempDir tmp;
  const int dim = 66;  // codes of 72 bytes: the scale, 66 values, 2 bytes of padding
  const std::size_t n = 1200;
  const std::vector<float> v = clustered(n + 200, dim, 15, 21);
  ImageIndex built(dim, HnswParams{}, some_model(dim), VectorCodes::Int8);
  built.add(entries_for(0, n), v.data(), 2);
  built.remove_if([](const IndexEntry& e) { return e.path.size() == 14; }, 2);  // ids 10..99: tombstones
  REQUIRE(built.tombstones() == 90);
  const std::size_t live = built.size(), code_size = 72;
  const std::string path = tmp.file("int8.index");
  save_index(built, path);

  const test::Container file = test::Container::load(path);
  {
    auto& c = const_cast<test::Container&>(file);
    REQUIRE(c.section("CODES").data.size() == 4 + (live + 90) * code_size);
    std::uint32_t stored_size;
    std::memcpy(&stored_size, c.section("CODES").data.data(), 4);
    CHECK(stored_size == code_size);
    const auto& vecs = c.section("VECS").data;
    const auto& sums = c.section("ROWSUMS").data;
    REQUIRE(sums.size() == live * 8);
    for (std::size_t i = 0; i < live; i += 17) {
      std::uint64_t sum;
      std::memcpy(&sum, sums.data() + i * 8, 8);
      CHECK(sum == XXH3_64bits(vecs.data() + i * dim * 4, dim * 4));
    }
  }

  const ImageIndex whole = load_index(path);
  for (const IndexLoadOptions& options : {query_load_options(), search_load_options()}) {
    const ImageIndex searched = load_index(path, options);
    CHECK_FALSE(searched.changeable());
    REQUIRE(searched.size() == live);
    CHECK(searched.tombstones() == 90);
    for (std::size_t q = 0; q < n + 200; q += 23) {
      const auto a = whole.search(v.data() + q * dim, 10), b = searched.search(v.data() + q * dim, 10);
      REQUIRE(a.size() == b.size());
      for (std::size_t j = 0; j < a.size(); ++j) CHECK((a[j].id == b[j].id && a[j].score == b[j].score));
    }
    std::vector<float> row(dim);
    searched.copy_vector(live - 1, row.data());
    CHECK(std::equal(row.begin(), row.end(), whole.vector(live - 1)));
    CHECK(std::equal(row.begin(), row.end(), searched.vector(live - 1)));
  }

  // A row changed behind valid section checksums: the whole load trusts VECS (checksummed)
  // and ignores ROWSUMS; a searcher's load finds it when a search reads that row.
  const std::string bad = tmp.file("bad.index");
  {
    test::Container c = file;
    float x;
    std::memcpy(&x, c.section("VECS").data.data() + 7 * dim * 4, 4);
    x += 0.5f;
    std::memcpy(c.section("VECS").data.data() + 7 * dim * 4, &x, 4);
    c.save(bad);
    CHECK_NOTHROW(load_index(bad));
    const ImageIndex searched = load_index(bad, query_load_options());
    std::vector<float> row(dim);
    CHECK_THROWS_WITH(searched.copy_vector(7, row.data()),
                      Catch::StartsWith(bad) && Catch::Contains("row 7 of VECS does not match its checksum"));
    CHECK_THROWS_WITH(searched.search(whole.vector(7), 5), Catch::Contains("row 7 of VECS"));
    CHECK_NOTHROW(searched.copy_vector(8, row.data()));
  }
  // The same byte flipped in the file itself: the whole load refuses the file at once.
  {
    test::Bytes bytes = test::read_bytes(path);
    test::Container c = file;
    const auto& vecs = c.section("VECS").data;
    const auto at = std::search(bytes.begin(), bytes.end(), vecs.begin() + 7 * dim * 4, vecs.begin() + 8 * dim * 4);
    REQUIRE(at != bytes.end());
    at[1] ^= 0x40;
    test::write_bytes(bad, bytes);
    CHECK_THROWS_WITH(load_index(bad), Catch::Contains("checksum mismatch in section VECS"));
    const ImageIndex searched = load_index(bad, query_load_options());
    std::vector<float> row(dim);
    CHECK_THROWS_AS(searched.copy_vector(7, row.data()), Error);
  }
  // CODES is checked before use: size and scales; a whole load does not read it.
  auto with_codes = [&](const std::function<void(test::Bytes&)>& edit, const std::string& message) {
    test::Container c = file;
    edit(c.section("CODES").data);
    c.save(bad);
    CHECK_THROWS_WITH(load_index(bad, query_load_options()),
                      Catch::StartsWith(bad) && Catch::Contains("corrupt section CODES: " + message));
    CHECK_NOTHROW(load_index(bad));
  };
  with_codes([&](test::Bytes& b) { b.resize(b.size() - 1); }, "size does not match");
  with_codes([&](test::Bytes& b) { b[0] = 68; }, "code size 68 is not that of int8 codes of 66 values");
  with_codes([&](test::Bytes& b) {
    const float nan = std::nanf("");
    std::memcpy(b.data() + 4 + 3 * code_size, &nan, 4);
  }, "code 3 has a bad scale");
  with_codes([&](test::Bytes& b) {
    const float negative = -1.0f;
    std::memcpy(b.data() + 4 + (live + 5) * code_size, &negative, 4);
  }, "code " + std::to_string(live + 5) + " has a bad scale");
  {
    test::Container c = file;
    c.section("ROWSUMS").data.resize(live * 8 - 8);
    c.save(bad);
    CHECK_THROWS_WITH(load_index(bad, query_load_options()), Catch::Contains("corrupt section ROWSUMS: size does not match"));
  }
  // Files written before CODES existed load as before: codes made from the checked rows.
  {
    test::Container c = file;
    c.drop("CODES");
    c.drop("ROWSUMS");
    c.save(bad);
    const ImageIndex old = load_index(bad, query_load_options());
    for (std::size_t q = 0; q < n; q += 97) {
      const auto a = whole.search(v.data() + q * dim, 10), b = old.search(v.data() + q * dim, 10);
      REQUIRE(a.size() == b.size());
      for (std::size_t j = 0; j < a.size(); ++j) CHECK(a[j].id == b[j].id);
    }
  }
}
