#include "imgsearch/duplicates.h"
#include "parallel_for.h"

#include "imgsearch/error.h"
#include "imgsearch/log.h"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace imgsearch {

// Thresholds measured on Corel-1k with generated edited copies (docs/dedup.md): near is
// the strictest setting with pair precision >= 0.99 there; similar trades precision for
// the harder edits (crops, borders, screenshots) through a looser group cap.
DedupThresholds dedup_preset(const std::string& name) {
  DedupThresholds t;
  if (name == "exact") return t;
  if (name == "near" || name == "similar") {
    t.hash_distance = 10;
    t.min_cosine = 0.90f;
    t.weak_cosine = 0.85f;
    t.weak_hash_distance = 20;
    t.hash_min_cosine = 0.50f;
    // A second generated set (docs/dedup.md) showed look-alike dinosaur renders 6-8 bits
    // apart at cosine 0.55-0.74; true copies that far apart keep cosine >= 0.75.
    if (name == "near") {
      t.close_hash_distance = 7;
      t.far_hash_min_cosine = 0.75f;
    }
    t.cap_cosine = name == "near" ? 0.75f : 0.60f;
    t.cap_hash_distance = name == "near" ? 20 : 24;
    // 0.875 for near: a copy with a text band matches its original by a pHash 8 bits away
    // (score 0.875) and was held out by the group's crops (docs/dedup.md, "Four generated sets").
    t.centre_score = name == "near" ? 0.875f : 0.90f;
    // Crowds: Corel-1k's photos with 32 edited copies each have at most 45 identity hashes
    // within 14 bits and 26 neighbours at cosine >= 0.85 (copies included); a catalogue's
    // photos have hundreds to thousands (docs/dedup.md, "Crowded signals").
    t.crowd_hash_distance = 14;
    t.crowd_hash_limit = 64;
    t.crowd_cosine = 0.85f;
    t.crowd_cnn_limit = 32;
    t.crowded_hash_distance = 4;
    t.crowded_cosine = 0.95f;
    t.crowd_fraction = 0.2f;
    // Crops (docs/dedup.md, "Crops"): NCC >= 0.95 matches 67 different-photo pairs among
    // the 49k candidate pairs of the edited-copy set; a text band or a turned copy keeps
    // an NCC of 0.8-0.9 with the group's crops, so the cap is looser (0.9: text copies
    // 93 % -> 77 %, turned copies 87 % -> 86 %; 0.8 with turns: 92 % and 94 %).
    t.crop_ncc = name == "near" ? 0.95f : 0.93f;
    t.crop_cosine = 0.0f;
    // 60 % crops: a 19x19 window of a 32x32 thumbnail correlates 0.90-0.95 with the crop;
    // at 64x64 true crops climb back to >= 0.95 and different photos fall
    // (docs/dedup.md, "Crops": 0.90/0.95 found crop 60 % 96 % instead of 83 %, and no
    // different photo of the same class that the 32x32 rule had not already matched).
    t.crop_fine_floor = name == "near" ? 0.90f : 0.88f;
    t.crop_fine_ncc = name == "near" ? 0.95f : 0.94f;
    t.cap_crop_ncc = 0.80f;
    // The same band covers part of a crop's window: without the fifth of the window's rows
    // (or columns) that disagree most, text copies reach >= 0.85 with the group's crops.
    t.cap_crop_drop = 0.2f;
    t.cap_crop_drop_ncc = 0.85f;
    return t;
  }
  throw_error(ErrorKind::InvalidArgument, "unknown preset '{}' (use exact, near or similar)", name);
}

void apply_threshold_override(DedupThresholds& t, const std::string& spec) {
  const auto eq = spec.find('=');
  const std::string key = spec.substr(0, eq);
  const std::string value = eq == std::string::npos ? "" : spec.substr(eq + 1);
  auto number = [&]() {
    try {
      std::size_t used = 0;
      const double v = std::stod(value, &used);
      if (used == value.size() && std::isfinite(v)) return v;
    } catch (const std::exception&) {
    }
    throw_error(ErrorKind::InvalidArgument, "--threshold {}: '{}' is not a number", key, value);
  };
  auto distance = [&]() {
    const double v = number();
    IMGSEARCH_CHECK(v == std::floor(v) && v >= -1 && v <= 64, ErrorKind::InvalidArgument,
                    "--threshold {}: a Hamming distance is a whole number in 0..64 (-1: off), got {}", key, value);
    return static_cast<int>(v);
  };
  if (key == "phash") {
    t.hash_distance = distance();
    IMGSEARCH_CHECK(t.hash_distance <= 15, ErrorKind::InvalidArgument,
                    "--threshold phash: at most 15 (larger distances match unrelated photos)");
  } else if (key == "weak-phash") {
    t.weak_hash_distance = distance();
  } else if (key == "cnn") {
    t.min_cosine = static_cast<float>(number());
  } else if (key == "weak-cnn") {
    t.weak_cosine = static_cast<float>(number());
  } else if (key == "phash-cnn") {
    t.hash_min_cosine = static_cast<float>(number());
  } else if (key == "close-phash") {
    t.close_hash_distance = distance();
  } else if (key == "far-phash-cnn") {
    t.far_hash_min_cosine = static_cast<float>(number());
  } else if (key == "centre") {
    t.centre_score = static_cast<float>(number());
  } else if (key == "cap-cnn") {
    t.cap_cosine = static_cast<float>(number());
  } else if (key == "cap-phash") {
    t.cap_hash_distance = distance();
  } else if (key == "orientations") {
    t.orientations = number() != 0;
  } else if (key == "crowd-phash") {
    t.crowd_hash_distance = distance();
  } else if (key == "crowd-phash-limit" || key == "crowd-cnn-limit") {
    const double v = number();
    IMGSEARCH_CHECK(v == std::floor(v) && v >= -1 && v <= 1e9, ErrorKind::InvalidArgument,
                    "--threshold {}: a count of images (-1: off), got {}", key, value);
    (key == "crowd-phash-limit" ? t.crowd_hash_limit : t.crowd_cnn_limit) = static_cast<int>(v);
  } else if (key == "crowd-cnn") {
    t.crowd_cosine = static_cast<float>(number());
  } else if (key == "crowded-phash") {
    t.crowded_hash_distance = distance();
  } else if (key == "crowded-cnn") {
    t.crowded_cosine = static_cast<float>(number());
  } else if (key == "crowd-fraction") {
    t.crowd_fraction = static_cast<float>(number());
  } else if (key == "crop") {
    t.crop_ncc = static_cast<float>(number());
  } else if (key == "cap-crop-drop") {
    t.cap_crop_drop = static_cast<float>(number());
    IMGSEARCH_CHECK(t.cap_crop_drop >= 0 && t.cap_crop_drop <= 0.5f, ErrorKind::InvalidArgument,
                    "--threshold cap-crop-drop: a fraction of the window in 0..0.5, got {}", value);
  } else if (key == "cap-crop-drop-ncc") {
    t.cap_crop_drop_ncc = static_cast<float>(number());
  } else if (key == "crop-fine-floor") {
    t.crop_fine_floor = static_cast<float>(number());
  } else if (key == "crop-fine") {
    t.crop_fine_ncc = static_cast<float>(number());
  } else if (key == "crop-cnn") {
    t.crop_cosine = static_cast<float>(number());
  } else if (key == "cap-crop") {
    t.cap_crop_ncc = static_cast<float>(number());
  } else {
    throw_error(ErrorKind::InvalidArgument,
                "--threshold: unknown signal '{}' (use phash=N, cnn=X, weak-phash=N, weak-cnn=X, phash-cnn=X, close-phash=N, far-phash-cnn=X, cap-phash=N, cap-cnn=X, centre=X, "
                "orientations=0|1, crowd-phash=N, crowd-phash-limit=N, crowd-cnn=X, crowd-cnn-limit=N, crowded-phash=N, crowded-cnn=X, crowd-fraction=X, "
                "crop=X, crop-fine=X, crop-fine-floor=X, crop-cnn=X, cap-crop=X, cap-crop-drop=X or cap-crop-drop-ncc=X)",
                spec);
  }
}

std::string match_signal_name(const PairMatch& m) {
  switch (m.signal) {
    case MatchSignal::None: return "none";
    case MatchSignal::Content: return "content";
    case MatchSignal::PerceptualHash:
      return m.orientation == Orientation::Identity ? "phash" : std::string("phash-") + orientation_name(m.orientation);
    case MatchSignal::Embedding: return "cnn";
    case MatchSignal::EmbeddingAndHash: return "cnn+phash";
    case MatchSignal::Crop: return "crop";
  }
  return "none";
}

namespace {

// A median threshold sets about half of the 63 bits of a real photo's hash.
constexpr int kMinHashBits = 12;
// Hash buckets larger than this are not scanned (HashNeighbours::within).
constexpr std::uint32_t kMaxBucket = 1024;

// Eight independent sums, so the compiler vectorises without -ffast-math.
float dot(const float* a, const float* b, int dim) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int d = 0;
  for (; d + 8 <= dim; d += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[d + j] * b[d + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; d < dim; ++d) s += a[d] * b[d];
  return s;
}

// Embedding neighbours searched per image to measure its embedding crowd.
constexpr int kCrowdNeighbours = 64;
// Identity hashes the hash crowd is counted against (all of them below this size).
constexpr std::size_t kCrowdSample = 16384;

bool informative_hash(const DuplicateSignals& s) { return s.present && __builtin_popcountll(s.phash[0]) >= kMinHashBits; }

bool has_thumbnail(const DuplicateSignals& s) { return s.thumbnail.size() == static_cast<std::size_t>(kCropThumbPixels); }

bool has_fine_thumbnail(const DuplicateSignals& s) {
  return s.fine_thumbnail.size() == static_cast<std::size_t>(kFineCropThumbPixels);
}

// The crop signal's NCC for a pair (early exit once `enough` is reached).
float crop_ncc(const DuplicateSignals& sa, const DuplicateSignals& sb, float enough) {
  return match_crop_thumbnails(sa.thumbnail.data(), sb.thumbnail.data(), CropMatchOptions{}, enough).ncc;
}

// The pair test: the 32x32 NCC, and where that is in doubt (>= crop_fine_floor, short of
// crop_ncc) the 64x64 NCC near the same window. Sets *ncc to the NCC that decided.
bool crop_pair_matches(const DuplicateSignals& sa, const DuplicateSignals& sb, const DedupThresholds& t, float* ncc) {
  const CropMatch coarse = match_crop_thumbnails(sa.thumbnail.data(), sb.thumbnail.data(), CropMatchOptions{}, t.crop_ncc);
  *ncc = coarse.ncc;
  if (coarse.ncc >= t.crop_ncc) return true;
  if (coarse.ncc < t.crop_fine_floor || t.crop_fine_ncc > 1.0f || !has_fine_thumbnail(sa) || !has_fine_thumbnail(sb))
    return false;
  const CropMatch fine = refine_crop_match(sa.fine_thumbnail.data(), sb.fine_thumbnail.data(), kFineCropThumbSide, coarse,
                                           CropMatchOptions{}, t.crop_fine_ncc);
  if (fine.ncc < t.crop_fine_ncc) return false;
  *ncc = fine.ncc;
  return true;
}

PairMatch decide(const DuplicateSignals& sa, std::uint64_t size_a, const DuplicateSignals& sb, std::uint64_t size_b,
                 float cosine, const DedupThresholds& t, std::uint8_t crowd = 0) {
  PairMatch m;
  m.cosine = cosine;
  const bool hash_counts = !(crowd & kHashCrowded), cnn_counts = !(crowd & kCnnCrowded);
  const bool both = sa.present && sb.present;
  // A hash with few bits set (a flat or nearly flat image: blank frames, solid colours)
  // says little; such images are compared by content and embedding only.
  const bool informative = both && __builtin_popcountll(sa.phash[0]) >= kMinHashBits &&
                           __builtin_popcountll(sb.phash[0]) >= kMinHashBits;
  if (informative) {
    const int orientations = t.orientations ? kOrientations : 1;
    for (int o = 0; o < orientations; ++o) {
      // Symmetric: b may be a turned a, or a a turned b.
      const int d = std::min(hamming_distance(sa.phash[0], sb.phash[o]), hamming_distance(sa.phash[o], sb.phash[0]));
      if (d < m.hash_distance) {
        m.hash_distance = d;
        m.orientation = static_cast<Orientation>(o);
      }
    }
  }
  if (t.content && both && size_a == size_b && sa.content_hash == sb.content_hash) {
    m.signal = MatchSignal::Content;
    m.score = 1.0f;
  } else if (informative && hash_counts && m.hash_distance <= t.hash_distance && cosine >= t.hash_min_cosine &&
             (m.hash_distance <= t.close_hash_distance || cosine >= t.far_hash_min_cosine)) {
    m.signal = MatchSignal::PerceptualHash;
    m.score = 1.0f - m.hash_distance / 64.0f;
  } else if (cnn_counts && cosine >= t.min_cosine) {
    m.signal = MatchSignal::Embedding;
    m.score = cosine;
  } else if (informative && hash_counts && cnn_counts && cosine >= t.weak_cosine && m.hash_distance <= t.weak_hash_distance) {
    m.signal = MatchSignal::EmbeddingAndHash;
    m.score = cosine;
  } else if (crowd && informative && cosine >= t.crowded_cosine && m.hash_distance <= t.crowded_hash_distance) {
    // In a crowd, only both signals agreeing closely still say "copy".
    m.signal = MatchSignal::EmbeddingAndHash;
    m.score = cosine;
  } else if (!crowd && t.crop_ncc <= 1.0f && cosine >= t.crop_cosine && has_thumbnail(sa) && has_thumbnail(sb)) {
    // Last: the costly test, and a pixel signal that a catalogue's look-alikes pass too.
    if (crop_pair_matches(sa, sb, t, &m.crop_ncc)) {
      m.signal = MatchSignal::Crop;
      m.score = m.crop_ncc;
    }
  }
  return m;
}


// The hash crowd: identity hashes within crowd_hash_distance of `hash` among the sample,
// scaled to the collection (`self`, when in the sample, is not counted).
class HashCrowdCounter {
 public:
  explicit HashCrowdCounter(const ImageIndex& index) {
    std::vector<std::uint32_t> present;
    for (std::uint32_t i = 0; i < index.size(); ++i)
      if (informative_hash(index.entry(i).signals)) present.push_back(i);
    total_ = present.size();
    const std::size_t take = std::min(total_, kCrowdSample);
    for (std::size_t k = 0; k < take; ++k) {  // evenly spaced: deterministic, and exact when take == total_
      const std::uint32_t id = present[k * total_ / take];
      ids_.push_back(id);
      hashes_.push_back(index.entry(id).signals.phash[0]);
    }
  }
  std::uint32_t count(std::uint64_t hash, int radius, std::int64_t self) const {
    std::size_t within = 0;
    for (std::size_t k = 0; k < hashes_.size(); ++k)
      within += hamming_distance(hashes_[k], hash) <= radius && ids_[k] != self;
    if (hashes_.empty()) return 0;
    return static_cast<std::uint32_t>((within * total_ + hashes_.size() / 2) / hashes_.size());
  }

 private:
  std::size_t total_ = 0;
  std::vector<std::uint32_t> ids_;
  std::vector<std::uint64_t> hashes_;
};

// Among the kCrowdNeighbours nearest (by the index's search), those at a model cosine of at
// least crowd_cosine, not counting `self`.
std::uint32_t cnn_crowd(const ImageIndex& index, const float* search_vector, const float* model_vector, float crowd_cosine,
                        std::int64_t self, std::vector<SearchHit>* hits_out = nullptr) {
  if (index.size() == 0) return 0;
  const int k = std::min<int>(kCrowdNeighbours + 1, static_cast<int>(index.size()));
  std::vector<SearchHit> hits = index.search(search_vector, k, std::max(k, 64));
  std::uint32_t crowd = 0;
  for (const SearchHit& hit : hits)
    if (hit.id != self && dot(model_vector, index.model_vector(hit.id), index.model_dim()) >= crowd_cosine) ++crowd;
  if (hits_out) *hits_out = std::move(hits);
  return crowd;
}

std::uint8_t crowd_flags(const DedupThresholds& t, std::uint32_t hash_count, std::uint32_t cnn_count) {
  std::uint8_t f = 0;
  if (t.crowd_hash_limit >= 0 && hash_count > static_cast<std::uint32_t>(t.crowd_hash_limit)) f |= kHashCrowded;
  if (t.crowd_cnn_limit >= 0 && cnn_count > static_cast<std::uint32_t>(t.crowd_cnn_limit)) f |= kCnnCrowded;
  return f;
}

// A collection whose pHashes crowd (one layout, one background) is a catalogue, where a
// generic CNN also puts different products of one kind at cosine 0.9 and above (120
// fashion44k shoes: not crowded by count, yet brown and black shoes at 0.9): there every
// match needs both signals.
std::uint8_t catalogue_rule(const DedupThresholds& t, std::uint8_t everyone) {
  if ((everyone & kHashCrowded) && t.crowd_cnn_limit >= 0) everyone |= kCnnCrowded;
  return everyone;
}

// The flags from the counts, then the collection-wide rule (crowd_fraction).
void finish_crowding(const ImageIndex& index, const DedupThresholds& t, SignalCrowding& c) {
  const std::size_t n = c.flags.size();
  std::size_t hashed = 0, hash_crowded = 0, cnn_crowded = 0;
  for (std::size_t i = 0; i < n; ++i) {
    c.flags[i] = crowd_flags(t, c.hash_count[i], c.cnn_count[i]);
    hashed += informative_hash(index.entry(i).signals);
    hash_crowded += (c.flags[i] & kHashCrowded) != 0;
    cnn_crowded += (c.flags[i] & kCnnCrowded) != 0;
  }
  std::uint8_t everyone = 0;
  if (t.crowd_hash_limit >= 0 && hashed > 0 && hash_crowded > t.crowd_fraction * hashed) everyone |= kHashCrowded;
  if (t.crowd_cnn_limit >= 0 && n > 0 && cnn_crowded > t.crowd_fraction * n) everyone |= kCnnCrowded;
  everyone = catalogue_rule(t, everyone);
  c.collection = everyone;
  for (std::uint8_t& f : c.flags) f |= everyone;
  c.hash_crowded = hash_crowded;
  c.cnn_crowded = cnn_crowded;
}

}  // namespace

bool crowding_enabled(const DedupThresholds& t) { return t.crowd_hash_limit >= 0 || t.crowd_cnn_limit >= 0; }

SignalCrowding measure_crowding(const ImageIndex& index, const DedupThresholds& t, int threads) {
  const std::size_t n = index.size();
  SignalCrowding c;
  c.flags.assign(n, 0);
  c.hash_count.assign(n, 0);
  c.cnn_count.assign(n, 0);
  if (!crowding_enabled(t)) return c;
  std::optional<HashCrowdCounter> counter;
  if (t.crowd_hash_limit >= 0) counter.emplace(index);
  parallel_for(0, n, resolve_threads(threads), [&](std::size_t i) {
    const DuplicateSignals& s = index.entry(i).signals;
    if (counter && informative_hash(s)) c.hash_count[i] = counter->count(s.phash[0], t.crowd_hash_distance, i);
    if (t.crowd_cnn_limit >= 0)
      c.cnn_count[i] = cnn_crowd(index, index.vector(i), index.model_vector(i), t.crowd_cosine, i);
  });
  finish_crowding(index, t, c);
  return c;
}

std::uint8_t crowding_of(const ImageIndex& index, const DedupThresholds& t, bool has_hash, std::uint64_t identity_hash,
                         const float* unit_vector, std::uint32_t* hash_count, std::uint32_t* cnn_count) {
  std::uint32_t hc = 0, cc = 0;
  if (t.crowd_hash_limit >= 0 && has_hash && __builtin_popcountll(identity_hash) >= kMinHashBits)
    hc = HashCrowdCounter(index).count(identity_hash, t.crowd_hash_distance, -1);
  if (t.crowd_cnn_limit >= 0 && index.model_dim() == index.dim())  // searchable by the model's own vector
    cc = cnn_crowd(index, unit_vector, unit_vector, t.crowd_cosine, -1);
  if (hash_count) *hash_count = hc;
  if (cnn_count) *cnn_count = cc;
  return crowd_flags(t, hc, cc);
}

std::uint8_t collection_crowding(const ImageIndex& index, const DedupThresholds& t) {
  if (!crowding_enabled(t) || index.size() == 0) return 0;
  const std::size_t n = index.size(), take = std::min<std::size_t>(n, 256);
  std::optional<HashCrowdCounter> counter;
  if (t.crowd_hash_limit >= 0) counter.emplace(index);
  std::size_t hashed = 0, hash_crowded = 0, cnn_crowded = 0;
  for (std::size_t k = 0; k < take; ++k) {
    const auto i = static_cast<std::uint32_t>(k * n / take);
    const DuplicateSignals& s = index.entry(i).signals;
    const std::uint32_t hc = counter && informative_hash(s) ? counter->count(s.phash[0], t.crowd_hash_distance, i) : 0;
    const std::uint32_t cc =
        t.crowd_cnn_limit >= 0 ? cnn_crowd(index, index.vector(i), index.model_vector(i), t.crowd_cosine, i) : 0;
    const std::uint8_t f = crowd_flags(t, hc, cc);
    hashed += informative_hash(s);
    hash_crowded += (f & kHashCrowded) != 0;
    cnn_crowded += (f & kCnnCrowded) != 0;
  }
  std::uint8_t everyone = 0;
  if (t.crowd_hash_limit >= 0 && hashed > 0 && hash_crowded > t.crowd_fraction * hashed) everyone |= kHashCrowded;
  if (t.crowd_cnn_limit >= 0 && cnn_crowded > t.crowd_fraction * take) everyone |= kCnnCrowded;
  return catalogue_rule(t, everyone);
}

PairMatch match_pair(const ImageIndex& index, std::uint32_t a, std::uint32_t b, const DedupThresholds& t,
                     const SignalCrowding* crowding) {
  const IndexEntry& ea = index.entry(a);
  const IndexEntry& eb = index.entry(b);
  const std::uint8_t crowd = crowding ? crowding->of(a) | crowding->of(b) : 0;
  return decide(ea.signals, ea.size, eb.signals, eb.size, dot(index.model_vector(a), index.model_vector(b), index.model_dim()), t,
                crowd);
}

bool within_group_cap(const ImageIndex& index, std::uint32_t a, std::uint32_t b, const DedupThresholds& t,
                      const SignalCrowding* crowding) {
  const PairMatch m = match_pair(index, a, b, t, crowding);
  if (m.matched()) return true;
  const std::uint8_t crowd = crowding ? crowding->of(a) | crowding->of(b) : 0;
  if (!(crowd & kCnnCrowded) && m.cosine >= t.cap_cosine) return true;
  const DuplicateSignals& sa = index.entry(a).signals;
  const DuplicateSignals& sb = index.entry(b).signals;
  if (!(crowd & kHashCrowded) && informative_hash(sa) && informative_hash(sb) && m.hash_distance <= t.cap_hash_distance)
    return true;
  if (crowd || t.cap_crop_ncc > 1.0f || !has_thumbnail(sa) || !has_thumbnail(sb)) return false;
  // The pair test's NCC is the best found when it missed its threshold; else search anew.
  // In the cap, quarter turns count too: a copy turned in its pixels joins a group that
  // holds crops of the photo (it matched the centre by a turned pHash).
  float ncc = m.crop_ncc > -2 ? m.crop_ncc : crop_ncc(sa, sb, t.cap_crop_ncc);
  if (ncc >= t.cap_crop_ncc) return true;
  CropMatchOptions turns;
  turns.rotations = true;
  const CropMatch best = match_crop_thumbnails(sa.thumbnail.data(), sb.thumbnail.data(), turns, t.cap_crop_ncc);
  if (best.ncc >= t.cap_crop_ncc) return true;
  // A text band or a logo over one of them covers part of the window: the same window
  // without the rows or the columns that disagree most.
  return t.cap_crop_drop > 0 && best.ncc > -1 &&
         occluded_crop_ncc(sa.thumbnail.data(), sb.thumbnail.data(), kCropThumbSide, best, t.cap_crop_drop) >= t.cap_crop_drop_ncc;
}

PairMatch match_external(const ImageIndex& index, const DuplicateSignals& signals, const float* unit_vector,
                         std::uint32_t b, const DedupThresholds& t, std::uint8_t crowd_flags, std::uint8_t crowd_flags_b) {
  const IndexEntry& eb = index.entry(b);
  // The size is not known for an outside image: identical content hashes decide alone.
  return decide(signals, eb.size, eb.signals, eb.size, dot(unit_vector, index.model_vector(b), index.model_dim()), t,
                crowd_flags | crowd_flags_b);
}

HashNeighbours::HashNeighbours(const ImageIndex& index) {
  const std::size_t n = index.size();
  hashes_.resize(n);
  for (std::size_t i = 0; i < n; ++i) hashes_[i] = index.entry(i).signals.phash[0];
  for (int block = 0; block < 4; ++block) {
    std::vector<std::uint32_t>& offsets = offsets_[block];
    offsets.assign(65537, 0);
    for (std::size_t i = 0; i < n; ++i)
      if (index.entry(i).signals.present) ++offsets[((hashes_[i] >> (16 * block)) & 0xFFFF) + 1];
    for (std::size_t v = 0; v < 65536; ++v) offsets[v + 1] += offsets[v];
    ids_[block].resize(offsets[65536]);
    std::vector<std::uint32_t> fill(offsets.begin(), offsets.end() - 1);
    for (std::size_t i = 0; i < n; ++i)
      if (index.entry(i).signals.present) ids_[block][fill[(hashes_[i] >> (16 * block)) & 0xFFFF]++] = static_cast<std::uint32_t>(i);
  }
}

std::vector<std::uint32_t> HashNeighbours::within(std::uint64_t hash, int radius) const {
  IMGSEARCH_CHECK(radius >= 0 && radius <= 15, ErrorKind::InvalidArgument, "hash search radius {} not in 0..15", radius);
  // Pigeonhole: four blocks whose distances add up to <= radius include one <= radius / 4.
  const int block_radius = radius / 4;
  std::vector<std::uint32_t> found;
  for (int block = 0; block < 4; ++block) {
    const std::uint32_t key = static_cast<std::uint32_t>((hash >> (16 * block)) & 0xFFFF);
    auto visit = [&](std::uint32_t value) {
      // A block value shared by thousands of images (plain backgrounds) tells nothing;
      // such a bucket is skipped, which bounds the work per query.
      if (offsets_[block][value + 1] - offsets_[block][value] > kMaxBucket) return;
      for (std::uint32_t j = offsets_[block][value]; j < offsets_[block][value + 1]; ++j) {
        const std::uint32_t id = ids_[block][j];
        if (hamming_distance(hashes_[id], hash) <= radius) found.push_back(id);
      }
    };
    // Every 16-bit value within block_radius flips of the key.
    auto flips = [&](auto&& self, std::uint32_t value, int first_bit, int left) -> void {
      visit(value);
      if (left == 0) return;
      for (int bit = first_bit; bit < 16; ++bit) self(self, value ^ (1u << bit), bit + 1, left - 1);
    };
    flips(flips, key, 0, block_radius);
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

std::vector<CandidatePair> find_duplicate_pairs(const ImageIndex& index, const DedupOptions& options,
                                                SignalCrowding* crowding_out) {
  const auto started = std::chrono::steady_clock::now();
  const DedupThresholds& t = options.thresholds;
  const std::size_t n = index.size();
  const int threads = resolve_threads(options.threads);

  std::vector<CandidatePair> pairs;
  std::unordered_set<std::uint64_t> seen;
  std::mutex mutex;
  // The crop test is the costly one: the cheap rules run first on every candidate, and
  // the pairs they leave unmatched but the crop rule could match are tested once each,
  // after the pass (a pair is offered from both of its images).
  DedupThresholds cheap = t;
  cheap.crop_ncc = 2.0f;
  std::vector<std::uint64_t> crop_candidates;
  auto offer = [&](std::uint32_t a, std::uint32_t b, std::vector<CandidatePair>& local, std::vector<std::uint64_t>* crop) {
    if (a == b) return;
    if (a > b) std::swap(a, b);
    const PairMatch m = match_pair(index, a, b, cheap);
    if (m.matched())
      local.push_back({a, b, m});
    else if (crop && m.cosine >= t.crop_cosine)
      crop->push_back((std::uint64_t(a) << 32) | b);
  };
  auto merge = [&](std::vector<CandidatePair>& local, std::vector<std::uint64_t>* crop = nullptr) {
    std::lock_guard<std::mutex> lock(mutex);
    for (CandidatePair& p : local)
      if (seen.insert((std::uint64_t(p.a) << 32) | p.b).second) pairs.push_back(p);
    local.clear();
    if (crop) {
      crop_candidates.insert(crop_candidates.end(), crop->begin(), crop->end());
      crop->clear();
    }
  };

  // Identical bytes: a star around the first file with that hash is enough for grouping,
  // which tests every pair itself.
  if (t.content) {
    std::unordered_map<std::uint64_t, std::uint32_t> first;
    std::vector<CandidatePair> local;
    for (std::uint32_t i = 0; i < n; ++i) {
      const DuplicateSignals& s = index.entry(i).signals;
      if (!s.present) continue;
      auto [it, inserted] = first.emplace(s.content_hash, i);
      if (!inserted) offer(it->second, i, local, nullptr);
    }
    merge(local);
  }

  const bool use_hash = t.hash_distance >= 0;
  const bool use_crop = t.crop_ncc <= 1.0f;
  const float min_cosine = std::min({t.min_cosine, t.weak_cosine, use_crop ? std::max(t.crop_cosine, -1.0f) : 2.0f});
  const bool use_embedding = min_cosine <= 1.0f && options.neighbours > 0;
  std::optional<HashNeighbours> hashes;
  if (use_hash) hashes.emplace(index);
  const int radius = std::min(t.hash_distance, 15);
  // The crop test never applies to a crowded pair: it is skipped for an image already
  // known to be crowded, and for every image when a sample says the whole collection is
  // (a catalogue); the crowd filter below decides for good.
  const bool crop_in_pass = use_crop && !(crowding_enabled(t) && collection_crowding(index, t) != 0);
  const int k = std::min<int>(options.neighbours + 1, static_cast<int>(n));
  // The crowds are measured in the same pass: the hash crowd against a sample, the
  // embedding crowd from one search of kCrowdNeighbours, whose nearest also give the
  // candidates. Pairs are found without the crowd rule and filtered by it afterwards
  // (it only ever removes matches).
  const bool crowd_rule = crowding_enabled(t);
  SignalCrowding crowding;
  std::optional<HashCrowdCounter> crowd_counter;
  if (crowd_rule) {
    crowding.flags.assign(n, 0);
    crowding.hash_count.assign(n, 0);
    crowding.cnn_count.assign(n, 0);
    if (t.crowd_hash_limit >= 0) crowd_counter.emplace(index);
  }
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w) {
    pool.emplace_back([&] {
      std::vector<CandidatePair> local;
      std::vector<std::uint64_t> local_crop;
      try {
        for (;;) {
          const std::size_t i = next.fetch_add(1);
          if (i >= n) break;
          const auto a = static_cast<std::uint32_t>(i);
          const DuplicateSignals& s = index.entry(i).signals;
          if (crowd_counter && informative_hash(s))
            crowding.hash_count[i] = crowd_counter->count(s.phash[0], t.crowd_hash_distance, a);
          std::vector<SearchHit> hits;
          if (crowd_rule && t.crowd_cnn_limit >= 0) {
            crowding.cnn_count[i] = cnn_crowd(index, index.vector(i), index.model_vector(i), t.crowd_cosine, a, &hits);
            if (hits.size() > static_cast<std::size_t>(k)) hits.resize(static_cast<std::size_t>(k));  // by score
          } else if (use_embedding) {
            hits = index.search(index.vector(i), k, std::max(k, 64));
          }
          const bool a_crowded = crowd_rule && crowd_flags(t, crowding.hash_count[i], crowding.cnn_count[i]) != 0;
          std::vector<std::uint64_t>* crop =
              crop_in_pass && !a_crowded && s.thumbnail.size() == std::size_t(kCropThumbPixels) ? &local_crop : nullptr;
          if (use_hash && s.present) {
            const int orientations = t.orientations ? kOrientations : 1;
            for (int o = 0; o < orientations; ++o) {
              std::vector<std::uint32_t> near = hashes->within(s.phash[o], radius);
              if (near.size() > static_cast<std::size_t>(options.hash_neighbours)) {
                const std::uint64_t h = s.phash[o];
                auto closer = [&](std::uint32_t x, std::uint32_t y) {
                  const int dx = hamming_distance(index.entry(x).signals.phash[0], h);
                  const int dy = hamming_distance(index.entry(y).signals.phash[0], h);
                  return dx != dy ? dx < dy : x < y;
                };
                std::nth_element(near.begin(), near.begin() + options.hash_neighbours, near.end(), closer);
                near.resize(static_cast<std::size_t>(options.hash_neighbours));
              }
              for (const std::uint32_t b : near) offer(a, b, local, crop);
            }
          }
          if (use_embedding)
            for (const SearchHit& hit : hits)
              if (hit.score >= min_cosine) offer(a, hit.id, local, crop);
          if (local.size() > 4096 || local_crop.size() > 4096) merge(local, &local_crop);
        }
        merge(local, &local_crop);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        next = n;
      }
    });
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);

  if (!crop_candidates.empty()) {
    std::sort(crop_candidates.begin(), crop_candidates.end());
    crop_candidates.erase(std::unique(crop_candidates.begin(), crop_candidates.end()), crop_candidates.end());
    crop_candidates.erase(std::remove_if(crop_candidates.begin(), crop_candidates.end(),
                                         [&](std::uint64_t key) { return seen.count(key) > 0; }),
                          crop_candidates.end());
    const auto crop_started = std::chrono::steady_clock::now();
    std::vector<PairMatch> found(crop_candidates.size());
    parallel_for(0, crop_candidates.size(), threads, [&](std::size_t i) {
      found[i] = match_pair(index, static_cast<std::uint32_t>(crop_candidates[i] >> 32),
                            static_cast<std::uint32_t>(crop_candidates[i] & 0xFFFFFFFFu), t);
    });
    std::size_t matched = 0;
    for (std::size_t i = 0; i < found.size(); ++i)
      if (found[i].matched()) {
        pairs.push_back({static_cast<std::uint32_t>(crop_candidates[i] >> 32),
                         static_cast<std::uint32_t>(crop_candidates[i] & 0xFFFFFFFFu), found[i]});
        ++matched;
      }
    log(LogLevel::Info, fmt::format("dedup: crop test on {} candidate pairs: {} matched, {:.2f} s", crop_candidates.size(),
                                     matched, std::chrono::duration<double>(std::chrono::steady_clock::now() - crop_started).count()));
  }

  if (crowd_rule) {
    finish_crowding(index, t, crowding);
    const std::size_t before = pairs.size();
    std::vector<CandidatePair> kept;
    for (CandidatePair& p : pairs) {
      const std::uint8_t crowd = crowding.flags[p.a] | crowding.flags[p.b];
      if (crowd) {
        const IndexEntry& ea = index.entry(p.a);
        const IndexEntry& eb = index.entry(p.b);
        p.match = decide(ea.signals, ea.size, eb.signals, eb.size, p.match.cosine, t, crowd);
        if (!p.match.matched()) continue;
      }
      kept.push_back(p);
    }
    pairs.swap(kept);
    log(LogLevel::Info, fmt::format("dedup: crowded signals: the pHash of {} images{}, the embedding of {}{}; {} of {} "
                                    "matching pairs dropped",
                                    crowding.hash_crowded, crowding.collection & kHashCrowded ? " (so: of all)" : "",
                                    crowding.cnn_crowded, crowding.collection & kCnnCrowded ? " (so: of all)" : "",
                                    before - pairs.size(), before));
  }
  if (crowding_out) *crowding_out = std::move(crowding);

  log(LogLevel::Info, fmt::format("dedup: {} matching pairs among {} images in {:.2f} s", pairs.size(), n,
                                   std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()));
  std::sort(pairs.begin(), pairs.end(), [](const CandidatePair& x, const CandidatePair& y) {
    const bool cx = x.match.signal == MatchSignal::Content, cy = y.match.signal == MatchSignal::Content;
    if (cx != cy) return cx;
    if (x.match.score != y.match.score) return x.match.score > y.match.score;
    return x.a != y.a ? x.a < y.a : x.b < y.b;
  });
  return pairs;
}

KeepRule parse_keep_rule(const std::string& name) {
  if (name == "largest") return KeepRule::Largest;
  if (name == "oldest") return KeepRule::Oldest;
  if (name == "newest") return KeepRule::Newest;
  if (name == "first-path") return KeepRule::FirstPath;
  throw_error(ErrorKind::InvalidArgument, "unknown keep rule '{}' (use largest, oldest, newest or first-path)", name);
}

bool path_is_under(const std::string& path, const std::string& dir) {
  if (dir.empty()) return false;
  if (path == dir) return true;
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         (dir.back() == '/' || path[dir.size()] == '/');
}

std::vector<DuplicateGroup> group_duplicates(const ImageIndex& index, const std::vector<CandidatePair>& pairs,
                                             const DedupThresholds& thresholds, const GroupingOptions& options,
                                             const SignalCrowding* crowding) {
  const auto started = std::chrono::steady_clock::now();
  SignalCrowding measured;
  if (crowding_enabled(thresholds) && (!crowding || crowding->flags.size() != index.size())) {
    measured = measure_crowding(index, thresholds);
    crowding = &measured;
  }
  if (!crowding_enabled(thresholds)) crowding = nullptr;
  // Star grouping: the image with the most matches becomes a group's centre, and its
  // direct matches (strongest first) join while they stay within the cap of every member
  // already in. A group never grows through a chain of matches, so one false match adds at
  // most one wrong member, never a second group.
  std::unordered_map<std::uint32_t, std::vector<std::pair<float, std::uint32_t>>> matches;
  for (const CandidatePair& p : pairs) {
    const float strength = p.match.signal == MatchSignal::Content ? 2.0f : p.match.score;
    matches[p.a].emplace_back(strength, p.b);
    matches[p.b].emplace_back(strength, p.a);
  }
  std::vector<std::uint32_t> order;
  for (auto& [id, list] : matches) {
    std::sort(list.begin(), list.end(), [](const auto& x, const auto& y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
    order.push_back(id);
  }
  std::sort(order.begin(), order.end(), [&](std::uint32_t x, std::uint32_t y) {
    const auto& mx = matches[x];
    const auto& my = matches[y];
    if (mx.size() != my.size()) return mx.size() > my.size();
    return x < y;
  });
  std::unordered_map<std::uint32_t, std::size_t> group_of;
  std::vector<std::vector<std::uint32_t>> clusters;
  auto fits = [&](const std::vector<std::uint32_t>& members, std::uint32_t id) {
    for (const std::uint32_t m : members)
      if (!within_group_cap(index, m, id, thresholds, crowding)) return false;
    return true;
  };
  for (const std::uint32_t centre : order) {
    if (group_of.count(centre)) continue;
    std::vector<std::uint32_t> members{centre};
    for (const auto& [strength, id] : matches[centre])
      if (!group_of.count(id) && (strength >= thresholds.centre_score || fits(members, id))) members.push_back(id);
    if (members.size() < 2) continue;
    for (const std::uint32_t id : members) group_of[id] = clusters.size();
    clusters.push_back(std::move(members));
  }
  // An image left over (its matches all went to other groups first) joins the group of its
  // strongest match that it fits.
  for (const std::uint32_t id : order) {
    if (group_of.count(id)) continue;
    for (const auto& [strength, other] : matches[id]) {
      const auto it = group_of.find(other);
      if (it != group_of.end() && fits(clusters[it->second], id)) {
        clusters[it->second].push_back(id);
        group_of[id] = it->second;
        break;
      }
    }
  }

  auto preferred = [&](std::uint32_t id) {
    for (const std::string& dir : options.prefer)
      if (path_is_under(index.entry(id).path, dir)) return true;
    return false;
  };
  auto better_keeper = [&](std::uint32_t x, std::uint32_t y) {  // is x a better keeper than y?
    const bool px = preferred(x), py = preferred(y);
    if (px != py) return px;
    const IndexEntry& ex = index.entry(x);
    const IndexEntry& ey = index.entry(y);
    switch (options.keep) {
      case KeepRule::Largest:
        if (ex.size != ey.size) return ex.size > ey.size;
        break;
      case KeepRule::Oldest:
        if (ex.mtime_ns != ey.mtime_ns) return ex.mtime_ns < ey.mtime_ns;
        break;
      case KeepRule::Newest:
        if (ex.mtime_ns != ey.mtime_ns) return ex.mtime_ns > ey.mtime_ns;
        break;
      case KeepRule::FirstPath: break;
    }
    return ex.path < ey.path;
  };

  std::vector<DuplicateGroup> groups;
  for (const std::vector<std::uint32_t>& ids : clusters) {
    if (ids.size() < 2) continue;
    std::uint32_t keeper = ids[0];
    for (const std::uint32_t id : ids)
      if (better_keeper(id, keeper)) keeper = id;
    DuplicateGroup g;
    GroupMember k;
    k.id = keeper;
    k.keep = true;
    k.match.score = 1.0f;
    k.match.cosine = 1.0f;
    k.match.hash_distance = 0;
    g.members.push_back(k);
    for (const std::uint32_t id : ids) {
      if (id == keeper) continue;
      GroupMember m;
      m.id = id;
      m.keep = preferred(id);
      m.match = match_pair(index, keeper, id, thresholds, crowding);
      if (!m.match.matched())  // linked through another member: its strongest match there
        for (const std::uint32_t other : ids)
          if (other != id) {
            const PairMatch via = match_pair(index, other, id, thresholds, crowding);
            if (via.matched() && via.score > m.match.score) m.match = via;
          }
      g.members.push_back(m);
    }
    std::sort(g.members.begin() + 1, g.members.end(), [&](const GroupMember& x, const GroupMember& y) {
      if (x.match.score != y.match.score) return x.match.score > y.match.score;
      return index.entry(x.id).path < index.entry(y.id).path;
    });
    groups.push_back(std::move(g));
  }
  log(LogLevel::Info, fmt::format("dedup: {} groups in {:.2f} s", groups.size(),
                                   std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()));
  std::sort(groups.begin(), groups.end(), [&](const DuplicateGroup& x, const DuplicateGroup& y) {
    if (x.members.size() != y.members.size()) return x.members.size() > y.members.size();
    return index.entry(x.members[0].id).path < index.entry(y.members[0].id).path;
  });
  return groups;
}

}  // namespace imgsearch
