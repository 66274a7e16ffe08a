// Colour histograms (colour_histogram.h) of real product photos, and a colour projection
// (refinement.h) through save, load and search: stored in COLRHIST, named in META
// "requires", applied to stored vectors and queries alike.
#include "container_edit.h"
#include "expect_refused.h"
#include "test_helpers.h"

#include <imgsearch/colour_histogram.h>
#include <imgsearch/error.h>
#include <imgsearch/image.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>
#include <imgsearch/learn.h>
#include <imgsearch/refinement.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

using namespace imgsearch;
using test::Container;

namespace {

constexpr int kChromatic = kColourHues * kColourSaturations * kColourValues;

Image fashion(const std::string& id) { return decode_image_file(test::shared("datasets/fashion44k/images/" + id + ".jpg")); }

int dominant(const std::vector<float>& h) {
  return static_cast<int>(std::max_element(h.begin(), h.end()) - h.begin());
}
// The hue of a chromatic bin, in degrees (its centre).
double hue_of(int bin) { return (bin / (kColourSaturations * kColourValues) + 0.5) * 360.0 / kColourHues; }
// Share of the histogram in chromatic bins whose hue lies within [lo, hi) degrees.
double hue_share(const std::vector<float>& h, double lo, double hi) {
  double s = 0;
  for (int b = 0; b < kChromatic; ++b) {
    const double hue = hue_of(b);
    if ((lo <= hi && hue >= lo && hue < hi) || (lo > hi && (hue >= lo || hue < hi))) s += h[b];
  }
  return s;
}
double l1(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d += std::abs(a[i] - b[i]);
  return d;
}

}  // namespace

TEST_CASE("colour histograms of real product photos", "[colour]") {
  // fashion44k T-shirts labelled Red (10009) and Blue (33142), on white studio backgrounds.
  const Image red = fashion("10009"), blue = fashion("33142");
  const auto hr = colour_histogram(red), hb = colour_histogram(blue);
  REQUIRE(hr.size() == static_cast<std::size_t>(kColourBins));
  CHECK(std::accumulate(hr.begin(), hr.end(), 0.0) == Approx(1.0).margin(1e-5));
  CHECK(std::accumulate(hb.begin(), hb.end(), 0.0) == Approx(1.0).margin(1e-5));
  INFO("red dominant bin " << dominant(hr) << ", blue " << dominant(hb));
  CHECK(dominant(hr) != dominant(hb));
  CHECK(dominant(hr) < kChromatic);
  CHECK(dominant(hb) < kChromatic);
  CHECK(hue_share(hr, 330, 30) > 0.5);   // red hues
  CHECK(hue_share(hb, 190, 270) > 0.5);  // blue hues
  CHECK(hue_share(hr, 190, 270) < 0.05);
  CHECK(hue_share(hb, 330, 30) < 0.05);

  SECTION("the white background is left out: a wider white margin changes nothing") {
    Image padded;
    padded.width = red.width * 2;
    padded.height = red.height + 200;
    padded.pixels.assign(static_cast<std::size_t>(padded.width) * padded.height * 3, 255);
    for (int y = 0; y < red.height; ++y)
      std::copy_n(red.pixels.begin() + static_cast<std::ptrdiff_t>(y) * red.width * 3, red.width * 3,
                  padded.pixels.begin() + (static_cast<std::ptrdiff_t>(y + 100) * padded.width + red.width / 2) * 3);
    const auto hp = colour_histogram(padded);
    CHECK(l1(hp, hr) < 0.1);
    CHECK(dominant(hp) == dominant(hr));
  }
  SECTION("a grey image falls in the grey bins only") {
    Image grey = red;  // the red photo in luma: real texture, no colour
    for (std::size_t i = 0; i < grey.pixels.size(); i += 3) {
      const auto y = static_cast<std::uint8_t>(
          std::lround(0.299 * grey.pixels[i] + 0.587 * grey.pixels[i + 1] + 0.114 * grey.pixels[i + 2]));
      grey.pixels[i] = grey.pixels[i + 1] = grey.pixels[i + 2] = y;
    }
    const auto hg = colour_histogram(grey);
    CHECK(std::accumulate(hg.begin(), hg.begin() + kChromatic, 0.0) == 0.0);
    CHECK(std::accumulate(hg.begin() + kChromatic, hg.end(), 0.0) == Approx(1.0).margin(1e-5));
  }
  SECTION("an all-white image is a white object, not an empty histogram") {
    Image white;
    white.width = white.height = 50;
    white.pixels.assign(50 * 50 * 3, 250);
    const auto hw = colour_histogram(white);
    CHECK(hw[kColourBins - 1] == Approx(1.0));
  }
  CHECK_THROWS_AS(colour_histogram(Image{}), Error);
}

namespace {

constexpr int kDim = 10;

// Two groups whose model vectors are alike and whose colours differ.
ImageIndex coloured_index(std::size_t n, std::vector<float>& vectors) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> base(kDim);
  for (float& v : base) v = normal(rng);
  vectors.assign(n * kDim, 0);
  std::vector<IndexEntry> entries(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (int d = 0; d < kDim; ++d) vectors[i * kDim + d] = base[d] + 0.3f * normal(rng);
    entries[i].path = "/img/" + std::to_string(i) + ".jpg";
    entries[i].size = i;
    entries[i].colour.assign(kColourBins, 0.0f);
    entries[i].colour[i % 2 ? 5 : 70] = 1.0f;  // half one colour, half another
  }
  HnswParams params;
  params.M = 8;
  ModelInfo model;
  model.name = "unit";
  model.output_dim = kDim;
  ImageIndex index(kDim, params, model);
  index.add(entries, vectors.data(), 1);
  return index;
}

// Identity on the model vector, plus the two colour bins that tell the groups apart.
Projection colour_projection() {
  Projection p;
  p.in_dim = kDim;
  p.colour_bins = kColourBins;
  p.colour_weight = 2.0f;
  p.out_dim = kDim + 2;
  p.mean.assign(static_cast<std::size_t>(p.input_dim()), 0.0f);
  p.matrix.assign(static_cast<std::size_t>(p.out_dim) * p.input_dim(), 0.0f);
  for (int d = 0; d < kDim; ++d) p.matrix[static_cast<std::size_t>(d) * p.input_dim() + d] = 1;
  p.matrix[static_cast<std::size_t>(kDim) * p.input_dim() + kDim + 5] = 1;
  p.matrix[static_cast<std::size_t>(kDim + 1) * p.input_dim() + kDim + 70] = 1;
  p.description = R"({"method":"unit"})";
  return p;
}

}  // namespace

TEST_CASE("a colour projection survives save and load and ranks by colour", "[colour][refinement]") {
  test::TempDir dir;
  const std::string path = dir.file("c.index"), bad = dir.file("bad.index");
  std::vector<float> v;
  ImageIndex index = coloured_index(60, v);
  CHECK(index.colour_count() == 60);

  // Without a projection the histograms are information only: no "requires".
  save_index(index, path);
  {
    Container c = Container::load(path);
    const auto& m = c.section("META").data;
    CHECK_FALSE(nlohmann::json::parse(m.begin(), m.end()).contains("requires"));
    CHECK(c.sections.back().tag == "COLRHIST");
    CHECK(c.section("COLRHIST").data.size() == 4 + 60 * (1 + kColourBins * 4));
    const ImageIndex loaded = load_index(path);
    for (std::size_t i = 0; i < 60; ++i) REQUIRE(loaded.entry(i).colour == index.entry(i).colour);
    // A searcher leaves them out (no projection uses them), and may not save what it lacks.
    IndexLoadOptions options = search_load_options();
    options.entries = IndexLoadOptions::Entries::Memory;  // eval's load: entries in memory
    const ImageIndex searched = load_index(path, options);
    CHECK(searched.colour(0) == nullptr);
    CHECK(searched.entry(7).colour.empty());
    CHECK(searched.colour_count() == 60);  // as the file has them: `info` reports it
    CHECK(searched.sections_left_out());
    CHECK_THROWS_WITH(save_index(searched, dir.file("lossy.index")), Catch::Matchers::Contains("not saved"));
  }

  index.set_projection(colour_projection(), 1);
  CHECK(index.dim() == kDim + 2);
  // Every hit of a query with entry 0's colour has that colour (even ids).
  const float* q = index.model_vector(0);
  for (const SearchHit& h : refined_search(index, q, index.colour(0), 20, 0, true, {})) CHECK(h.id % 2 == 0);
  CHECK_THROWS_WITH(refined_search(index, q, nullptr, 5, 0, true, {}),
                    Catch::Matchers::Contains("takes the image's colour histogram"));

  save_index(index, path);
  const Container good = Container::load(path);
  {
    const auto& m = const_cast<Container&>(good).section("META").data;
    const auto meta = nlohmann::json::parse(m.begin(), m.end());
    CHECK(meta.at("requires") == nlohmann::json::array({"projection", "colour_projection"}));
  }
  const ImageIndex loaded = load_index(path);
  // With a colour projection a searcher needs them: they are loaded whatever it asks.
  CHECK(load_index(path, search_load_options()).colour_count() == 60);
  CHECK_FALSE(load_index(path, search_load_options()).sections_left_out());
  CHECK(loaded.projection().colour_bins == kColourBins);
  CHECK(loaded.projection().colour_weight == 2.0f);
  CHECK(loaded.projection().matrix == index.projection().matrix);
  for (std::size_t i = 0; i < 60; ++i)
    for (int d = 0; d < loaded.dim(); ++d) REQUIRE(loaded.vector(i)[d] == Approx(index.vector(i)[d]).margin(1e-6));
  const auto a = refined_search(loaded, q, loaded.colour(0), 10, 0, true, {});
  const auto b = refined_search(index, q, index.colour(0), 10, 0, true, {});
  REQUIRE(a.size() == b.size());
  for (std::size_t r = 0; r < a.size(); ++r) CHECK(a[r].id == b[r].id);

  SECTION("new entries are projected with their colour; removal keeps the rest") {
    ImageIndex grown = load_index(path);
    std::vector<IndexEntry> more(1);
    more[0].path = "/img/new.jpg";
    more[0].colour.assign(kColourBins, 0.0f);
    more[0].colour[70] = 1.0f;
    grown.add(more, v.data() + 3 * kDim, 1);  // entry 3's vector (odd: colour 5) with colour 70
    const auto hits = refined_search(grown, v.data() + 3 * kDim, grown.colour(60), 5, 0, true, {});
    CHECK(hits[0].id == 60);
    for (const SearchHit& h : hits) CHECK((h.id == 60 || h.id % 2 == 0));
    grown.remove_if([](const IndexEntry& e) { return e.size % 3 == 0 && e.path != "/img/new.jpg"; }, 1);
    ImageIndex full = load_index(path);
    full.remove_if([](const IndexEntry& e) { return e.size % 3 == 0; }, 1);
    for (std::size_t i = 0; i < full.size(); ++i)
      for (int d = 0; d < full.dim(); ++d) REQUIRE(grown.vector(i)[d] == Approx(full.vector(i)[d]).margin(1e-5));
  }
  SECTION("undone: the model vectors again") {
    ImageIndex undone = load_index(path);
    undone.set_projection({}, 1);
    CHECK(undone.dim() == kDim);
    save_index(undone, path);
    Container saved = Container::load(path);
    const auto& m = saved.section("META").data;
    CHECK_FALSE(nlohmann::json::parse(m.begin(), m.end()).contains("requires"));
  }
  SECTION("hostile colour sections with valid checksums") {
    auto expect = [&](const Container& c, const std::string& what) { test::expect_index_refused(c, bad, what); };
    Container c = good;
    test::put<std::uint32_t>(c.section("COLRHIST").data, 0, 113);
    expect(c, "not 114 bins");
    c = good;
    c.section("COLRHIST").data[4] = 2;
    expect(c, "entry 0 has bad flag 2");
    c = good;
    test::put<float>(c.section("COLRHIST").data, 5, 1.5f);
    expect(c, "entry 0 has a bin outside 0..1");
    c = good;
    test::put<float>(c.section("COLRHIST").data, 5, std::numeric_limits<float>::quiet_NaN());
    expect(c, "colour histogram holds NaN or infinity");
    c = good;
    c.section("COLRHIST").data.pop_back();
    expect(c, "colour histogram too short");
    c = good;
    c.section("COLRHIST").data.push_back(0);
    expect(c, "COLRHIST");
    // The PROJECT section's colour fields follow its description.
    c = good;
    {
      auto& d = c.section("PROJECT").data;
      const std::size_t after = 8 + 4 + test::get<std::uint32_t>(d, 8);  // in, out, description length + text
      test::put<std::uint32_t>(d, after, 100);
      expect(c, "projection takes 100 colour bins, not 114");
      test::put<std::uint32_t>(d, after, kColourBins);
      test::put<float>(d, after + 4, -1.0f);
      expect(c, "bad colour weight");
    }
    // A reader that knows projections but not colour ones refuses the file by name.
    c = good;
    {
      auto& m = c.section("META").data;
      auto meta = nlohmann::json::parse(m.begin(), m.end());
      meta["requires"] = {"projection", "colour_projection_v9"};
      const std::string text = meta.dump();
      m.assign(text.begin(), text.end());
    }
    expect(c, "needs feature 'colour_projection_v9'");
  }
}

TEST_CASE("learn --colour fits on the colour histograms and refuses images without one", "[colour][learn]") {
  std::vector<float> v;
  ImageIndex index = coloured_index(40, v);
  Labels labels(40);
  for (std::size_t i = 0; i < 40; ++i) labels[i] = i % 2 ? "odd" : "even";  // told apart by colour alone
  LearnOptions options;
  options.colour = true;
  options.threads = 1;
  const LearnReport r = learn_projection(index, labels, options);
  CHECK(r.in_dim == kDim + kColourBins);
  CHECK(r.colour_bins == kColourBins);
  CHECK(r.out_dim == 1);
  CHECK(index.projection().uses_colour());
  CHECK(index.projection().colour_weight == 0.5f);
  for (const SearchHit& h : refined_search(index, index.model_vector(1), index.colour(1), 10, 0, true, {}))
    CHECK(h.id % 2 == 1);

  ImageIndex missing = coloured_index(40, v);
  missing.remove_if([](const IndexEntry& e) { return e.size == 7; }, 1);
  std::vector<IndexEntry> plain(1);
  plain[0].path = "/img/plain.jpg";
  plain[0].size = 7;
  missing.add(plain, v.data() + 7 * kDim, 1);  // no histogram, as from `index --from-features`
  CHECK_THROWS_WITH(learn_projection(missing, labels, options),
                    Catch::Matchers::Contains("1 of the 40 images to fit on have no colour histogram"));
  options.colour = false;
  CHECK_NOTHROW(learn_projection(missing, labels, options));
  CHECK_FALSE(missing.projection().uses_colour());
}
