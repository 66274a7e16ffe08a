#include "test_helpers.h"

#include <imgsearch/duplicates.h>
#include <imgsearch/error.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>

#include "container_edit.h"

#include <catch2/catch.hpp>

#include <random>
#include <set>

using namespace imgsearch;

namespace {

constexpr int kDim = 64;  // random 64-d vectors are far apart (cosine ~ +-0.13)

ModelInfo toy_model() {
  ModelInfo m;
  m.name = "toy";
  m.output_dim = kDim;
  return m;
}

std::uint64_t random_hash(std::mt19937_64& rng) { return rng() & ~std::uint64_t(1); }

std::uint64_t flip_bits(std::uint64_t h, int n, std::mt19937_64& rng) {
  std::set<int> bits;
  while (static_cast<int>(bits.size()) < n) bits.insert(1 + static_cast<int>(rng() % 63));
  for (const int b : bits) h ^= std::uint64_t(1) << b;
  return h;
}

// An index of toy images: each gets a random unit-ish vector and random hashes unless
// the test sets them.
struct Toy {
  std::mt19937_64 rng{11};
  std::vector<IndexEntry> entries;
  std::vector<float> vectors;

  std::size_t add(std::uint64_t hash, const std::vector<float>& vector, std::uint64_t content = 0) {
    IndexEntry e;
    e.path = "/photos/" + std::to_string(entries.size()) + ".jpg";
    e.size = 1000 + entries.size();
    e.mtime_ns = 1'000'000 * static_cast<std::int64_t>(entries.size());
    e.signals.present = true;
    e.signals.content_hash = content ? content : rng();
    for (std::uint64_t& h : e.signals.phash) h = random_hash(rng);  // other orientations: unrelated
    e.signals.phash[0] = hash;
    entries.push_back(e);
    vectors.insert(vectors.end(), vector.begin(), vector.end());
    return entries.size() - 1;
  }
  std::vector<float> random_vector() {
    std::normal_distribution<float> normal;
    std::vector<float> v(kDim);
    for (float& x : v) x = normal(rng);
    return v;
  }
  // An edited copy's embedding: the original's plus noise 0.7 times as strong (cosine
  // about 0.82 to it, about 0.67 between two copies): below the cnn thresholds, above the
  // minimum a hash match needs.
  std::vector<float> related(const std::vector<float>& v) {
    std::normal_distribution<float> normal;
    std::vector<float> out(v);
    for (float& x : out) x += 0.7f * normal(rng);
    return out;
  }
  ImageIndex build() {
    ImageIndex index(kDim, HnswParams{}, toy_model());
    index.add(entries, vectors.data(), 1);
    return index;
  }
};

bool same_group(const std::vector<DuplicateGroup>& groups, std::uint32_t a, std::uint32_t b) {
  for (const auto& g : groups) {
    bool has_a = false, has_b = false;
    for (const auto& m : g.members) {
      has_a |= m.id == a;
      has_b |= m.id == b;
    }
    if (has_a && has_b) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("hash neighbours find exactly what brute force finds, for every radius", "[dedup]") {
  Toy toy;
  std::vector<std::uint64_t> bases;
  for (int i = 0; i < 300; ++i) bases.push_back(random_hash(toy.rng));
  for (int i = 0; i < 1500; ++i) {
    // Most near one of the bases (at 0..20 bits), so every radius has hits.
    const std::uint64_t h = i % 5 == 0 ? random_hash(toy.rng)
                                       : flip_bits(bases[i % bases.size()], static_cast<int>(toy.rng() % 21), toy.rng);
    toy.add(h, toy.random_vector());
  }
  const ImageIndex index = toy.build();
  const HashNeighbours neighbours(index);
  std::size_t total = 0;
  for (int radius = 0; radius <= 15; radius += 3) {
    for (int q = 0; q < 60; ++q) {
      const std::uint64_t query = q % 2 ? bases[q] : flip_bits(bases[q], q % 7, toy.rng);
      std::vector<std::uint32_t> expected;
      for (std::uint32_t i = 0; i < index.size(); ++i)
        if (hamming_distance(index.entry(i).signals.phash[0], query) <= radius) expected.push_back(i);
      std::vector<std::uint32_t> got = neighbours.within(query, radius);
      std::sort(got.begin(), got.end());
      INFO("radius " << radius << " query " << q);
      CHECK(got == expected);
      total += expected.size();
    }
  }
  CHECK(total > 300);  // the check above compared real hits, not empty lists
  CHECK_THROWS_AS(neighbours.within(0, 16), Error);
}

TEST_CASE("pairs: identical bytes, close hashes, turned hashes and close embeddings match, the rest do not",
          "[dedup]") {
  Toy toy;
  for (int i = 0; i < 200; ++i) toy.add(random_hash(toy.rng), toy.random_vector());  // unrelated filler
  const auto v = toy.random_vector();
  const std::uint64_t h = random_hash(toy.rng);
  const auto a = toy.add(h, v, 777);
  const auto exact = toy.add(flip_bits(h, 30, toy.rng), toy.random_vector(), 777);  // same bytes, per the hash
  toy.entries[exact].size = toy.entries[a].size;
  const auto near = toy.add(flip_bits(h, 6, toy.rng), toy.related(v));
  const auto far = toy.add(flip_bits(h, 14, toy.rng), toy.related(v));
  // Close hash, unrelated content (a catalogue on one plain background): no match.
  const auto lookalike = toy.add(flip_bits(h, 4, toy.rng), toy.random_vector());
  const auto mirrored = toy.add(random_hash(toy.rng), toy.related(v));
  toy.entries[mirrored].signals.phash[static_cast<int>(Orientation::Mirror)] = flip_bits(h, 3, toy.rng);
  auto close = v;
  close[0] += 0.05f;
  const auto embedded = toy.add(random_hash(toy.rng), close);
  const ImageIndex index = toy.build();

  DedupOptions options;
  options.thresholds = dedup_preset("near");
  options.threads = 2;
  const auto pairs = find_duplicate_pairs(index, options);
  auto find = [&](std::size_t x, std::size_t y) -> const PairMatch* {
    for (const auto& p : pairs)
      if ((p.a == x && p.b == y) || (p.a == y && p.b == x)) return &p.match;
    return nullptr;
  };
  REQUIRE(find(a, exact));
  CHECK(match_signal_name(*find(a, exact)) == "content");
  REQUIRE(find(a, near));
  CHECK(match_signal_name(*find(a, near)) == "phash");
  CHECK(find(a, near)->hash_distance == 6);
  CHECK(find(a, near)->score == Approx(1 - 6 / 64.0));
  CHECK(find(a, far) == nullptr);
  CHECK(find(a, lookalike) == nullptr);
  REQUIRE(find(a, mirrored));
  CHECK(match_signal_name(*find(a, mirrored)) == "phash-mirror");
  REQUIRE(find(a, embedded));
  CHECK(match_signal_name(*find(a, embedded)) == "cnn");
  // Nothing among the unrelated filler: random 63-bit hashes are ~31 bits apart.
  for (const auto& p : pairs) CHECK((p.a >= 200 || p.b >= 200));
  // Strongest first: identical bytes lead.
  REQUIRE(!pairs.empty());
  CHECK(pairs.front().match.signal == MatchSignal::Content);

  // The exact preset sees only identical bytes.
  options.thresholds = dedup_preset("exact");
  const auto exact_pairs = find_duplicate_pairs(index, options);
  REQUIRE(exact_pairs.size() == 1);
  CHECK(exact_pairs[0].a == a);
  CHECK(exact_pairs[0].b == exact);
  CHECK_THROWS_AS(dedup_preset("fuzzy"), Error);
}

TEST_CASE("pairs: a hash match farther than 7 bits needs cosine 0.75 at the near preset", "[dedup]") {
  Toy toy;
  for (int i = 0; i < 200; ++i) toy.add(random_hash(toy.rng), toy.random_vector());
  const auto v = toy.random_vector();
  const std::uint64_t h = random_hash(toy.rng);
  // Noise 1.5 times the signal: cosine about 0.55, above phash-cnn 0.50, under 0.75.
  auto weak = [&] {
    std::normal_distribution<float> normal;
    std::vector<float> out(v);
    for (float& x : out) x += 1.5f * normal(toy.rng);
    return out;
  };
  const auto a = toy.add(h, v);
  const auto render = toy.add(flip_bits(h, 8, toy.rng), weak());  // a look-alike render
  const auto grey = toy.add(flip_bits(h, 3, toy.rng), weak());    // a copy the CNN barely knows
  const auto copy = toy.add(flip_bits(h, 9, toy.rng), toy.related(v));  // cosine about 0.82
  const ImageIndex index = toy.build();

  DedupOptions options;
  options.thresholds = dedup_preset("near");
  options.threads = 1;
  auto find = [&](const std::vector<CandidatePair>& pairs, std::size_t x, std::size_t y) -> const PairMatch* {
    for (const auto& p : pairs)
      if ((p.a == x && p.b == y) || (p.a == y && p.b == x)) return &p.match;
    return nullptr;
  };
  const auto pairs = find_duplicate_pairs(index, options);
  CHECK(find(pairs, a, render) == nullptr);
  REQUIRE(find(pairs, a, grey));
  CHECK(match_signal_name(*find(pairs, a, grey)) == "phash");
  REQUIRE(find(pairs, a, copy));
  CHECK(find(pairs, a, copy)->cosine >= 0.75f);

  // Without the rule (close-phash=64) the render matches by its hash, at a cosine between
  // the two floors: the rule, not the cosine floor, is what kept it out.
  apply_threshold_override(options.thresholds, "close-phash=64");
  const auto loose = find_duplicate_pairs(index, options);
  REQUIRE(find(loose, a, render));
  CHECK(match_signal_name(*find(loose, a, render)) == "phash");
  CHECK(find(loose, a, render)->cosine >= 0.5f);
  CHECK(find(loose, a, render)->cosine < 0.75f);
  CHECK_THROWS_AS(apply_threshold_override(options.thresholds, "close-phash=70"), Error);
  apply_threshold_override(options.thresholds, "far-phash-cnn=0.4");
  CHECK(options.thresholds.far_hash_min_cosine == Approx(0.4f));
}

TEST_CASE("grouping never chains matches beyond the cap, complete-link when the cap is off", "[dedup]") {
  Toy toy;
  std::mt19937_64& rng = toy.rng;
  for (int i = 0; i < 100; ++i) toy.add(random_hash(rng), toy.random_vector());
  // A chain A~B~C~D, each step 10 bits (a match at the near preset's 10), A and D 30 bits
  // apart (beyond the near cap of 20): single-link would put all four together.
  const std::uint64_t ha = random_hash(rng);
  std::vector<std::uint64_t> chain{ha};
  for (int step = 0; step < 3; ++step) {
    std::uint64_t h = chain.back();
    for (int b = 1 + 10 * step; b <= 10 + 10 * step; ++b) h ^= std::uint64_t(1) << b;
    chain.push_back(h);
  }
  std::vector<std::size_t> ids;
  const auto base = toy.random_vector();
  for (const std::uint64_t h : chain) ids.push_back(toy.add(h, toy.related(base)));
  // A clique of four: all within 2 bits of each other.
  const std::uint64_t hq = random_hash(rng);
  std::vector<std::size_t> clique;
  const auto clique_base = toy.random_vector();
  for (int i = 0; i < 4; ++i) clique.push_back(toy.add(hq ^ (std::uint64_t(1) << (50 + i)), toy.related(clique_base)));
  const ImageIndex index = toy.build();

  DedupThresholds t = dedup_preset("near");
  // Each chain step (10 bits, cosine about 0.67) then matches by its hash alone: whether it
  // also passed the near preset's 0.75 for hashes beyond 7 bits hung on the last bits of
  // the toy vectors (it differed between builds). This test is about the cap.
  t.close_hash_distance = 10;
  DedupOptions options;
  options.thresholds = t;
  auto groups = group_duplicates(index, find_duplicate_pairs(index, options), t, {});
  CHECK_FALSE(same_group(groups, ids[0], ids[3]));
  CHECK((same_group(groups, ids[0], ids[1]) || same_group(groups, ids[2], ids[3])));
  for (std::size_t i = 1; i < clique.size(); ++i) CHECK(same_group(groups, clique[0], clique[i]));
  REQUIRE(groups.size() >= 2);
  CHECK(groups[0].members.size() == 4);  // largest group first
  for (const auto& g : groups) {
    CHECK(g.members[0].keep);
    for (std::size_t i = 1; i < g.members.size(); ++i) CHECK(g.members[i].match.matched());
  }

  // Cap off: every two members must match themselves, so A and C (20 bits) never share a group.
  t.cap_cosine = 2.0f;
  t.cap_hash_distance = -1;
  groups = group_duplicates(index, find_duplicate_pairs(index, options), t, {});
  CHECK_FALSE(same_group(groups, ids[0], ids[2]));
  CHECK_FALSE(same_group(groups, ids[1], ids[3]));
  for (std::size_t i = 1; i < clique.size(); ++i) CHECK(same_group(groups, clique[0], clique[i]));
}

TEST_CASE("keeper rules: largest, oldest, newest, first path, and --prefer folders are never removed", "[dedup]") {
  Toy toy;
  const std::uint64_t h = random_hash(toy.rng);
  const auto base = toy.random_vector();
  for (int i = 0; i < 3; ++i) toy.add(h, toy.related(base));
  toy.entries[0].path = "/b/zeta.jpg";
  toy.entries[0].size = 500;
  toy.entries[0].mtime_ns = 30;
  toy.entries[1].path = "/a/alpha.jpg";
  toy.entries[1].size = 900;
  toy.entries[1].mtime_ns = 20;
  toy.entries[2].path = "/c/mid.jpg";
  toy.entries[2].size = 700;
  toy.entries[2].mtime_ns = 10;
  const ImageIndex index = toy.build();
  const DedupThresholds t = dedup_preset("near");
  DedupOptions options;
  options.thresholds = t;
  const auto pairs = find_duplicate_pairs(index, options);
  auto keeper = [&](GroupingOptions g) {
    const auto groups = group_duplicates(index, pairs, t, g);
    REQUIRE(groups.size() == 1);
    REQUIRE(groups[0].members.size() == 3);
    return index.entry(groups[0].members[0].id).path;
  };
  CHECK(keeper({KeepRule::Largest, {}}) == "/a/alpha.jpg");
  CHECK(keeper({KeepRule::Oldest, {}}) == "/c/mid.jpg");
  CHECK(keeper({KeepRule::Newest, {}}) == "/b/zeta.jpg");
  CHECK(keeper({KeepRule::FirstPath, {}}) == "/a/alpha.jpg");
  CHECK(keeper({KeepRule::Largest, {"/b"}}) == "/b/zeta.jpg");
  // Two preferred members: both kept, only the third is proposed for removal.
  const auto groups = group_duplicates(index, pairs, t, {KeepRule::Largest, {"/b", "/c/"}});
  std::size_t kept = 0;
  for (const auto& m : groups.at(0).members) {
    kept += m.keep;
    if (!m.keep) CHECK(index.entry(m.id).path == "/a/alpha.jpg");
  }
  CHECK(kept == 2);
  CHECK(path_is_under("/b/zeta.jpg", "/b"));
  CHECK_FALSE(path_is_under("/bb/zeta.jpg", "/b"));
  CHECK_THROWS_AS(parse_keep_rule("biggest"), Error);
}

TEST_CASE("DUPSIGS: saved and loaded, old indexes without it load, a corrupt one is refused", "[dedup][index_io]") {
  test::TempDir dir;
  Toy toy;
  for (int i = 0; i < 50; ++i) toy.add(random_hash(toy.rng), toy.random_vector());
  toy.entries[7].signals = DuplicateSignals{};  // one entry without signals
  ImageIndex index = toy.build();
  const std::string path = dir.file("sigs.index");
  save_index(index, path);
  const ImageIndex loaded = load_index(path);
  REQUIRE(loaded.size() == 50);
  CHECK(loaded.signals_count() == 49);
  for (std::size_t i = 0; i < 50; ++i) {
    CHECK(loaded.entry(i).signals.present == index.entry(i).signals.present);
    CHECK(loaded.entry(i).signals.content_hash == index.entry(i).signals.content_hash);
    CHECK(loaded.entry(i).signals.phash == index.entry(i).signals.phash);
  }

  auto rejected = [&](test::Container c, const std::string& what) {
    const std::string bad = dir.file("bad.index");
    c.save(bad);
    try {
      load_index(bad);
      FAIL("loaded a bad DUPSIGS: " << what);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::Format);
      CHECK_THAT(e.what(), Catch::Matchers::Contains(what));
    }
  };
  const auto good = test::Container::load(path);
  {
    auto c = good;
    c.section("DUPSIGS").data.resize(c.section("DUPSIGS").data.size() - 8);
    rejected(c, "DUPSIGS section holds");
  }
  {
    auto c = good;
    test::put<std::uint64_t>(c.section("DUPSIGS").data, 80 * 3, 2);  // flags of entry 3
    rejected(c, "DUPSIGS entry 3 has bad flags");
  }
  {
    auto c = good;
    test::put<std::uint64_t>(c.section("DUPSIGS").data, 80 * 3 + 16, 1);  // DC bit of a hash
    rejected(c, "DUPSIGS entry 3 is inconsistent");
  }
  {
    auto c = good;
    test::put<std::uint64_t>(c.section("DUPSIGS").data, 80 * 7 + 8, 99);  // absent entry with a hash
    rejected(c, "DUPSIGS entry 7 is inconsistent");
  }
  {
    auto c = good;  // an index from before signals: loads, nothing present
    c.drop("DUPSIGS");
    c.save(dir.file("old.index"));
    const ImageIndex old = load_index(dir.file("old.index"));
    CHECK(old.size() == 50);
    CHECK(old.signals_count() == 0);
  }
}

TEST_CASE("crowded signals: look-alikes sharing a hash and an embedding neighbourhood do not match, their copies do",
          "[dedup]") {
  // A catalogue in miniature: 100 different products on one background (hashes within a few
  // bits of each other, embeddings at cosine ~0.89), among 200 unrelated photos; one
  // product has a byte-identical copy and a re-encoded copy (hash 2 bits off, cosine ~0.99);
  // one unrelated photo has an edited copy that only its hash finds.
  Toy toy;
  for (int i = 0; i < 200; ++i) toy.add(random_hash(toy.rng), toy.random_vector());
  const std::uint64_t layout = random_hash(toy.rng);
  const auto background = toy.random_vector();
  std::normal_distribution<float> normal;
  auto product_vector = [&](const std::vector<float>& base, float noise) {
    std::vector<float> v(base);
    for (float& x : v) x += noise * normal(toy.rng);
    return v;
  };
  std::vector<std::size_t> products;
  std::vector<std::vector<float>> product_vectors;
  for (int i = 0; i < 100; ++i) {
    product_vectors.push_back(product_vector(background, 0.35f));
    products.push_back(toy.add(flip_bits(layout, 3, toy.rng), product_vectors.back(), 5000 + i));
  }
  const auto byte_copy = toy.add(toy.entries[products[0]].signals.phash[0], toy.random_vector(), 5000);
  toy.entries[byte_copy].size = toy.entries[products[0]].size;
  const auto reencoded = toy.add(flip_bits(toy.entries[products[0]].signals.phash[0], 2, toy.rng),
                                 product_vector(product_vectors[0], 0.05f));
  const auto photo = toy.rng() % 200;
  const auto photo_copy = toy.add(flip_bits(toy.entries[photo].signals.phash[0], 6, toy.rng),
                                  toy.related(std::vector<float>(toy.vectors.begin() + photo * kDim,
                                                                 toy.vectors.begin() + (photo + 1) * kDim)));
  const ImageIndex index = toy.build();

  DedupOptions options;
  options.thresholds = dedup_preset("near");
  options.threads = 2;
  auto pairs_of = [&](const DedupOptions& o, SignalCrowding* crowding = nullptr) {
    std::set<std::pair<std::size_t, std::size_t>> found;
    for (const auto& p : find_duplicate_pairs(index, o, crowding)) found.emplace(p.a, p.b);
    return found;
  };
  auto look_alike_pairs = [&](const std::set<std::pair<std::size_t, std::size_t>>& found) {
    std::size_t n = 0;
    for (const auto& [a, b] : found) n += a >= products.front() && b <= products.back();
    return n;
  };

  // Without the rule (the presets before it): the products match each other by the dozen.
  DedupOptions off = options;
  off.thresholds.crowd_hash_limit = off.thresholds.crowd_cnn_limit = -1;
  CHECK(look_alike_pairs(pairs_of(off)) > 500);

  // With it: the crowds are measured, the collection is catalogue-like (a third crowded)...
  SignalCrowding crowding;
  const auto found = pairs_of(options, &crowding);
  REQUIRE(crowding.flags.size() == index.size());
  CHECK(crowding.hash_count[products[5]] >= 90);
  CHECK(crowding.cnn_count[products[5]] > 32);
  CHECK(crowding.hash_count[photo] < 5);
  CHECK(crowding.hash_crowded >= 100);
  CHECK(crowding.collection == (kHashCrowded | kCnnCrowded));
  // ... no two products match; the byte copy and the re-encoded copy still do.
  CHECK(look_alike_pairs(found) == 0);
  CHECK(found.count({products[0], byte_copy}));
  CHECK(found.count({products[0], reencoded}));
  CHECK(match_signal_name(match_pair(index, products[0], reencoded, options.thresholds, &crowding)) == "cnn+phash");
  // In a catalogue-like collection a hash-only match (the edited photo) no longer counts...
  CHECK(!found.count({photo, photo_copy}));
  // ... while with the collection-wide rule off it does, as the photo's own hash is not crowded.
  DedupOptions local = options;
  local.thresholds.crowd_fraction = 2.0f;
  const auto local_found = pairs_of(local);
  CHECK(local_found.count({photo, photo_copy}));
  CHECK(look_alike_pairs(local_found) == 0);

  // Grouping: the copies join their product, no product joins another.
  const auto groups = group_duplicates(index, find_duplicate_pairs(index, options), options.thresholds, {});
  CHECK(same_group(groups, products[0], byte_copy));
  CHECK(same_group(groups, products[0], reencoded));
  for (std::size_t i = 1; i < products.size(); ++i) CHECK(!same_group(groups, products[0], products[i]));

  // measure_crowding (what grouping uses alone) agrees with the pairs pass.
  const SignalCrowding measured = measure_crowding(index, options.thresholds, 2);
  CHECK(measured.flags == crowding.flags);
  CHECK(measured.hash_count == crowding.hash_count);

  DedupThresholds t = dedup_preset("near");
  apply_threshold_override(t, "crowd-phash-limit=-1");
  CHECK(t.crowd_hash_limit == -1);
  apply_threshold_override(t, "crowd-fraction=0.5");
  CHECK(t.crowd_fraction == Approx(0.5));
  CHECK_THROWS_AS(apply_threshold_override(t, "crowd-cnn-limit=2.5"), Error);
}
