// Retrieval metrics against hand-computed values, and the evaluation protocol on small
// synthetic indexes whose rankings are known.
#include "test_helpers.h"

#include <imgsearch/error.h>
#include <imgsearch/evaluation.h>
#include <imgsearch/html_report.h>
#include <imgsearch/metrics.h>
#include <imgsearch/thumbnail.h>

#include <catch2/catch.hpp>

#include <fstream>

using namespace imgsearch;

TEST_CASE("precision at k counts relevant items in the first k positions", "[metrics]") {
  const std::vector<std::uint32_t> ranks{1, 3, 4, 10};
  CHECK(precision_at(ranks, 1) == Approx(1.0));
  CHECK(precision_at(ranks, 2) == Approx(0.5));
  CHECK(precision_at(ranks, 4) == Approx(0.75));
  CHECK(precision_at(ranks, 10) == Approx(0.4));
  CHECK(precision_at(ranks, 20) == Approx(0.2));
  CHECK(precision_at({}, 5) == Approx(0.0));
  CHECK_THROWS_AS(precision_at(ranks, 0), Error);
}

TEST_CASE("average precision is the mean precision at each relevant item", "[metrics]") {
  // Relevant at 1, 3, 6 of 3 relevant: (1/1 + 2/3 + 3/6) / 3.
  CHECK(average_precision({1, 3, 6}, 3) == Approx((1.0 + 2.0 / 3 + 0.5) / 3));
  // Perfect ranking.
  CHECK(average_precision({1, 2, 3, 4}, 4) == Approx(1.0));
  // A relevant item never reached counts 0: 4 relevant, 2 found at 1 and 2.
  CHECK(average_precision({1, 2}, 4) == Approx(0.5));
  CHECK(average_precision({}, 0) == Approx(0.0));
  // Reversed: 2 relevant at the bottom of 10.
  CHECK(average_precision({9, 10}, 2) == Approx((1.0 / 9 + 2.0 / 10) / 2));
}

TEST_CASE("R-precision is precision at R", "[metrics]") {
  CHECK(r_precision({1, 3, 6}, 3) == Approx(2.0 / 3));
  CHECK(r_precision({4, 5}, 2) == Approx(0.0));
  CHECK(r_precision({1, 2, 3}, 3) == Approx(1.0));
}

TEST_CASE("interpolated precision-recall takes the best precision at that recall or beyond", "[metrics]") {
  const std::vector<double> levels = recall_levels(5);  // 0, .25, .5, .75, 1
  REQUIRE(levels.size() == 5);
  CHECK(levels[2] == Approx(0.5));
  std::vector<double> sum(5, 0.0);
  // 4 relevant at ranks 1, 4, 5, 8: precisions 1, .5, .6, .5 at recalls .25, .5, .75, 1.
  add_interpolated_pr({1, 4, 5, 8}, 4, sum);
  CHECK(sum[0] == Approx(1.0));   // recall 0: best anywhere
  CHECK(sum[1] == Approx(1.0));   // recall .25
  CHECK(sum[2] == Approx(0.6));   // recall .5: max(.5, .6, .5)
  CHECK(sum[3] == Approx(0.6));
  CHECK(sum[4] == Approx(0.5));
  // Recall never reaching 1: the levels beyond stay at 0 (added onto the sums).
  add_interpolated_pr({2}, 2, sum);  // precision .5 at recall .5
  CHECK(sum[0] == Approx(1.5));
  CHECK(sum[2] == Approx(1.1));
  CHECK(sum[3] == Approx(0.6));
  CHECK(sum[4] == Approx(0.5));
}

TEST_CASE("nearest-rank percentiles", "[metrics]") {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  CHECK(percentile(v, 50) == Approx(50));
  CHECK(percentile(v, 95) == Approx(95));
  CHECK(percentile(v, 99) == Approx(99));
  CHECK(percentile(v, 100) == Approx(100));
  std::vector<double> one{3.5};
  CHECK(percentile(one, 99) == Approx(3.5));
  std::vector<double> none;
  CHECK(percentile(none, 50) == 0);
}

TEST_CASE("ANN recall against the exact top k", "[metrics]") {
  CHECK(recall_at({1, 2, 3}, {3, 2, 1}, 3) == Approx(1.0));
  CHECK(recall_at({1, 2, 9}, {1, 2, 3}, 3) == Approx(2.0 / 3));
  CHECK(recall_at({1, 2, 3, 4}, {4, 5, 6, 7}, 3) == Approx(0.0));  // only the first k of each count
}

TEST_CASE("ranks of relevant items by descending score, ties pessimistic, left-out items skipped", "[metrics]") {
  //                      0     1     2     3     4     5
  const float scores[] = {0.9f, 0.8f, 0.7f, 0.7f, 0.5f, 0.95f};
  const std::uint8_t kind[] = {kNotRelevant, kRelevant, kRelevant, kNotRelevant, kRelevant, kLeftOut};
  // Order: 0 (nr), 1 (r), 3 (nr, ties with 2 and goes first), 2 (r), 4 (r).
  CHECK(ranks_of_relevant(scores, kind, 6) == std::vector<std::uint32_t>{2, 4, 5});
  CHECK(ranks_of_relevant(scores, kind, 6, 10) == std::vector<std::uint32_t>{12, 14, 15});
  const std::uint8_t none[] = {kNotRelevant, kNotRelevant, kNotRelevant, kNotRelevant, kNotRelevant, kNotRelevant};
  CHECK(ranks_of_relevant(scores, none, 6).empty());
}

namespace {

// Unit vectors in 3-d: groups around the axes, so the exact ranking is known.
ImageIndex toy_index(const std::vector<std::array<float, 3>>& rows, const std::vector<std::string>& paths) {
  ImageIndex index(3, HnswParams{}, ModelInfo{});
  std::vector<IndexEntry> entries;
  std::vector<float> v;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    entries.push_back({paths[i], 0, 0, {}, {}});
    v.insert(v.end(), rows[i].begin(), rows[i].end());
  }
  index.add(entries, v.data(), 1);
  return index;
}

}  // namespace

TEST_CASE("evaluate: perfectly separated labels give 1.0 everywhere, singletons and unlabelled are counted",
          "[evaluation]") {
  const ImageIndex index = toy_index(
      {{1, 0.01f, 0}, {1, 0.02f, 0}, {1, 0, 0.03f},  // a
       {0.01f, 1, 0}, {0, 1, 0.02f}, {0.03f, 1, 0},  // b
       {0, 0, 1},                                    // c: alone
       {0.5f, 0.5f, 0.5f}},                          // no label
      {"/d/a/1.jpg", "/d/a/2.jpg", "/d/a/3.jpg", "/d/b/4.jpg", "/d/b/5.jpg", "/d/b/6.jpg", "/d/c/7.jpg", "/d/x/8.jpg"});
  Labels labels = labels_from_parent_folder(index);
  CHECK(labels[0] == "a");
  CHECK(labels[6] == "c");
  labels[7].clear();
  EvalOptions options;
  options.ks = {1, 2};
  const EvalReport r = evaluate(index, labels, options);
  CHECK(r.images == 8);
  CHECK(r.queries == 6);
  CHECK(r.skipped == 1);
  CHECK(r.unlabelled == 1);
  CHECK(r.labels == 3);
  CHECK(r.hnsw.precision_at.at(1) == Approx(1.0));
  CHECK(r.hnsw.precision_at.at(2) == Approx(1.0));
  CHECK(r.exact.map == Approx(1.0));
  CHECK(r.hnsw.map == Approx(1.0));
  CHECK(r.exact.r_precision == Approx(1.0));
  CHECK(r.ann_recall_at_10 == Approx(1.0));
  REQUIRE(r.per_label.size() == 2);  // c has no query
  CHECK(r.per_label[0].images == 3);
  CHECK(r.per_label[0].queries == 3);
  // Top 7 of every query (all others but itself): 2 relevant + 5 not.
  std::uint64_t rel = 0, non = 0;
  for (auto c : r.histogram.relevant) rel += c;
  for (auto c : r.histogram.not_relevant) non += c;
  CHECK(rel == 6 * 2);
  CHECK(non == 6 * 5);
  for (std::size_t i = 0; i < r.recall_levels.size(); ++i) CHECK(r.exact.pr_curve[i] == Approx(1.0));
  REQUIRE_FALSE(r.worst.empty());
  CHECK(r.worst[0].top.size() == 7);  // every image but the query
  for (const QueryFigures& q : r.worst)
    for (const SearchHit& h : q.top) CHECK(h.id != q.id);
}

TEST_CASE("evaluate: a mixed ranking gives the hand-computed AP", "[evaluation]") {
  // Query 0 = (1,0,0). Others at decreasing similarity: 1 (b), 2 (a), 3 (b), 4 (a).
  const ImageIndex index = toy_index({{1, 0, 0}, {1, 0.1f, 0}, {1, 0.3f, 0}, {1, 0.6f, 0}, {1, 1.2f, 0}},
                                     {"/q.jpg", "/1.jpg", "/2.jpg", "/3.jpg", "/4.jpg"});
  const Labels labels{"a", "b", "a", "b", "a"};
  EvalOptions options;
  options.ks = {1, 2};
  options.queries = 0;
  const EvalReport r = evaluate(index, labels, options);
  REQUIRE(r.queries == 5);
  // Find query 0 among the worst list (all 5 are kept) and check its AP: relevant at 2, 4.
  bool found = false;
  for (const QueryFigures& q : r.worst)
    if (q.id == 0) {
      found = true;
      CHECK(q.ap == Approx((1.0 / 2 + 2.0 / 4) / 2));
      CHECK(q.relevant == 2);
    }
  CHECK(found);
}

TEST_CASE("evaluate: --queries samples reproducibly", "[evaluation]") {
  std::vector<std::array<float, 3>> rows;
  std::vector<std::string> paths;
  Labels labels;
  for (int i = 0; i < 60; ++i) {
    rows.push_back({1.0f + i % 3, 0.1f * i, 1});
    paths.push_back("/x/" + std::to_string(i) + ".jpg");
    labels.push_back(std::to_string(i % 3));
  }
  const ImageIndex index = toy_index(rows, paths);
  EvalOptions options;
  options.queries = 10;
  options.seed = 42;
  const EvalReport a = evaluate(index, labels, options);
  const EvalReport b = evaluate(index, labels, options);
  CHECK(a.queries == 10);
  CHECK(a.eligible == 60);
  CHECK(a.exact.map == b.exact.map);
  options.seed = 43;
  const EvalReport c = evaluate(index, labels, options);
  CHECK(c.queries == 10);
}

TEST_CASE("evaluate refuses when nothing can be a query", "[evaluation]") {
  const ImageIndex index = toy_index({{1, 0, 0}, {0, 1, 0}}, {"/a/1.jpg", "/b/2.jpg"});
  CHECK_THROWS_AS(evaluate(index, labels_from_parent_folder(index), {}), Error);
}

TEST_CASE("CSV labels: quoted fields, joined columns, missing ids and columns", "[evaluation]") {
  test::TempDir dir;
  const std::string csv = dir.file("labels.csv");
  std::ofstream(csv) << "id,type,colour,title\n"
                        "1,Shirts,Blue,\"A \"\"blue\"\", shirt\"\n"
                        "2,Shirts,,\"no colour\"\n"
                        "3,Heels,Red,\"multi\nline\"\n";
  const ImageIndex index =
      toy_index({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}}, {"/p/1.jpg", "/p/2.jpg", "/p/3.png", "/p/4.jpg"});
  const Labels one = labels_from_csv(index, csv, "id", {"type"});
  CHECK(one == Labels{"Shirts", "Shirts", "Heels", ""});
  const Labels two = labels_from_csv(index, csv, "id", {"type", "colour"});
  CHECK(two == Labels{"Shirts+Blue", "", "Heels+Red", ""});
  try {
    labels_from_csv(index, csv, "id", {"article_type"});
    FAIL("no error for a missing column");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("no column 'article_type'") != std::string::npos);
    CHECK(std::string(e.what()).find("id, type, colour, title") != std::string::npos);
  }
  CHECK_THROWS_AS(labels_from_csv(index, dir.file("missing.csv"), "id", {"type"}), Error);
}

TEST_CASE("base64 follows RFC 4648", "[thumbnail]") {
  auto b64 = [](const std::string& s) { return base64_encode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); };
  CHECK(b64("") == "");
  CHECK(b64("f") == "Zg==");
  CHECK(b64("fo") == "Zm8=");
  CHECK(b64("foo") == "Zm9v");
  CHECK(b64("foobar") == "Zm9vYmFy");
}

TEST_CASE("thumbnails are small JPEGs that decode to the fitted size", "[thumbnail]") {
  const std::vector<std::uint8_t> jpeg = thumbnail_file(test::corel("horses/700.jpg"), {120, 80});
  REQUIRE(jpeg.size() > 100);
  CHECK(jpeg[0] == 0xFF);
  CHECK(jpeg[1] == 0xD8);
  CHECK(jpeg.size() < 20000);
  const Image back = decode_image_memory(jpeg.data(), jpeg.size());
  CHECK(std::max(back.width, back.height) == 120);
  // Small images are never enlarged.
  Image tiny;
  tiny.width = 20;
  tiny.height = 10;
  tiny.pixels.assign(20 * 10 * 3, 128);
  const auto t = make_thumbnail(tiny, {160, 80});
  const Image tb = decode_image_memory(t.data(), t.size());
  CHECK(tb.width == 20);
  CHECK(tb.height == 10);
  CHECK(jpeg_data_uri(t).rfind("data:image/jpeg;base64,/9j/", 0) == 0);
}

TEST_CASE("html_escape escapes markup and quotes", "[html]") {
  CHECK(html_escape("<a href=\"x\">R&D's</a>") == "&lt;a href=&quot;x&quot;&gt;R&amp;D&#39;s&lt;/a&gt;");
}
