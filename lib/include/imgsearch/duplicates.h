// Near-duplicate groups in an index: candidate pairs from neighbour search (a multi-index
// over the perceptual hashes, HNSW over the embeddings, a hash table over content hashes;
// never all pairs), a pair test that combines strict per-signal thresholds, grouping with
// a cap on the distance between any two members (so chains A~B~C cannot pull unrelated
// photos together), and a suggested keeper. docs/dedup.md.
#pragma once

#include "imgsearch/duplicate_signals.h"
#include "imgsearch/index.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace imgsearch {

// Which signal made two images a pair (the strongest one that matched).
enum class MatchSignal { None, Content, PerceptualHash, Embedding, EmbeddingAndHash, Crop };

struct DedupThresholds {
  bool content = true;          // identical file bytes always match
  int hash_distance = -1;       // perceptual hashes within this Hamming distance; -1: off
  bool orientations = true;     // also compare the mirrored and 90-degree-rotated hashes
  // A hash match also needs at least this cosine: photos of different products on one
  // plain background (catalogues) share their hashes; edited copies keep some similarity.
  float hash_min_cosine = -1.0f;
  // ...and, for a hash farther than close_hash_distance, this cosine: look-alike renders
  // on one background (Corel's dinosaurs) come within 6-10 bits of each other, the copies
  // that the CNN barely recognises (grey, blurred, a quarter size) within a few.
  int close_hash_distance = 64;
  float far_hash_min_cosine = -1.0f;
  float min_cosine = 2.0f;      // embeddings at least this similar; > 1: off
  // Both signals half-agree: cosine >= weak_cosine and Hamming <= weak_hash_distance.
  float weak_cosine = 2.0f;
  int weak_hash_distance = -1;
  // Grouping: a strict match above links two images; every two members of a group must
  // at least pass this looser cap (cosine >= cap_cosine or Hamming <= cap_hash_distance),
  // so a chain of matches cannot drift from one photo to an unrelated one. With the cap
  // off (its defaults) every two members must match: complete-link.
  float cap_cosine = 2.0f;
  int cap_hash_distance = -1;
  // The crop signal (thumbnail_match.h), tried last and only on candidate pairs (it is the
  // costly one): one border-trimmed 32x32 thumbnail, shrunk to 55-100 %, matches a window
  // of the other with a normalised cross-correlation >= crop_ncc, and the cosine is at
  // least crop_cosine. In the cap: NCC >= cap_crop_ncc. > 1: off. Off for crowded pairs.
  float crop_ncc = 2.0f;
  float crop_cosine = -1.0f;
  // A pair whose 32x32 NCC falls short of crop_ncc but reaches crop_fine_floor is looked at
  // again on the 64x64 thumbnails (from the 32x32 answer's window): a match when that NCC
  // is >= crop_fine_ncc. > 1: off (also for images without the 64x64 thumbnail).
  float crop_fine_floor = 2.0f;
  float crop_fine_ncc = 2.0f;
  float cap_crop_ncc = 2.0f;
  // In the cap, the crop NCC may also be taken without this fraction of the window's cells
  // (those that disagree most: a text band, a logo), and then must reach cap_crop_drop_ncc.
  // 0: off.
  float cap_crop_drop = 0.0f;
  float cap_crop_drop_ncc = 2.0f;
  // A match with the group's centre at least this strong (score: cosine, or 1 - Hamming/64)
  // joins without the cap: a letterboxed copy is unmistakably its original's, even when
  // it resembles the original's grey copy too little. > 1: off.
  float centre_score = 2.0f;
  // Collection-adaptive rule (docs/dedup.md, "Crowded signals"): a signal stops counting
  // for an image whose neighbourhood in that signal is crowded, because a match there is
  // more likely a chance look-alike than a copy (catalogue photos of different products on
  // one white background share their pHash and reach cosine 0.9). An image's hash is
  // crowded when more than crowd_hash_limit other images have an identity hash within
  // crowd_hash_distance of its own; its embedding when more than crowd_cnn_limit of its
  // crowd_neighbours nearest have a cosine >= crowd_cosine. A limit < 0 turns the check off.
  int crowd_hash_distance = 14;
  int crowd_hash_limit = -1;
  float crowd_cosine = 0.85f;
  int crowd_cnn_limit = -1;
  // Where either image of a pair is crowded in a signal, that signal's rules (and the cap
  // and centre through it) do not apply; the pair then matches by content, by the other
  // signal if it is not crowded, or by both at once at these strict levels.
  int crowded_hash_distance = -1;
  float crowded_cosine = 2.0f;
  // When more than this fraction of the collection is crowded in a signal, the collection
  // is catalogue-like for that signal (one layout, one background, one product type), and
  // the signal is treated as crowded for every image: the images under the limit there are
  // the crowd's edge, not photos the signal can tell apart (fashion44k: pHash matches
  // between a watch and a T-shirt at 10 bits). > 1: off.
  float crowd_fraction = 2.0f;
};

// Which signals are crowded, per image (bit kHashCrowded, bit kCnnCrowded).
constexpr std::uint8_t kHashCrowded = 1, kCnnCrowded = 2;
struct SignalCrowding {
  std::vector<std::uint8_t> flags;        // one per index entry
  std::vector<std::uint32_t> hash_count;  // the estimated crowd sizes, for reports and tests
  std::vector<std::uint32_t> cnn_count;
  std::size_t hash_crowded = 0, cnn_crowded = 0;  // images over the limits
  std::uint8_t collection = 0;  // signals crowded for the whole collection (crowd_fraction)
  std::uint8_t of(std::uint32_t id) const { return id < flags.size() ? flags[id] : 0; }
};
bool crowding_enabled(const DedupThresholds& t);

// Measures the crowds of every image: the hash crowd counted against a fixed sample of at
// most 16,384 identity hashes and scaled to the collection (exact below that size, linear
// time above it); the embedding crowd from a search of the crowd_neighbours nearest.
SignalCrowding measure_crowding(const ImageIndex& index, const DedupThresholds& t, int threads = 0);
// The signals crowded for the whole collection (crowd_fraction), estimated from 256 evenly
// spaced images (for `dedup --query`, which does not measure every image).
std::uint8_t collection_crowding(const ImageIndex& index, const DedupThresholds& t);
// The crowd flags of one image outside or inside the index, from its hash and unit vector
// (its own crowds only: OR collection_crowding()).
std::uint8_t crowding_of(const ImageIndex& index, const DedupThresholds& t, bool has_hash, std::uint64_t identity_hash,
                         const float* unit_vector, std::uint32_t* hash_count = nullptr, std::uint32_t* cnn_count = nullptr);

// "exact": identical bytes only. "near" (the default): the copies a person would call the
// same photo (re-encoded, resized, edited, mirrored, rotated, moderately cropped).
// "similar": looser, finds more at the cost of some same-scene-different-shot pairs.
// Throws Error(InvalidArgument) for another name.
DedupThresholds dedup_preset(const std::string& name);
// One override in `imgsearch dedup --threshold` syntax: phash=N, phash-cnn=X, cnn=X,
// weak-phash=N, weak-cnn=X, cap-phash=N, cap-cnn=X, centre=X, orientations=0|1, crowd-phash=N, crowd-phash-limit=N,
// crowd-cnn=X, crowd-cnn-limit=N, crowded-phash=N, crowded-cnn=X, crop=X, crop-cnn=X, cap-crop=X.
// Error(InvalidArgument) when bad.
void apply_threshold_override(DedupThresholds& t, const std::string& spec);

struct PairMatch {
  MatchSignal signal = MatchSignal::None;
  float score = 0;        // 1 for identical bytes; 1 - distance/64 for hashes; cosine for embeddings
  int hash_distance = 64; // best over the orientations compared
  Orientation orientation = Orientation::Identity;  // of the second image's hash that matched
  float cosine = 0;
  float crop_ncc = -2;  // the crop signal's NCC when it was computed (-2: it was not)
  bool matched() const { return signal != MatchSignal::None; }
};

// "content", "phash", "phash-mirror", "phash-rot90", ..., "cnn", "cnn+phash", "crop".
std::string match_signal_name(const PairMatch& match);

// The pair test on two indexed images (ids into `index`); `crowding` (measure_crowding)
// applies the crowded-signal rule, nullptr: every signal counts.
PairMatch match_pair(const ImageIndex& index, std::uint32_t a, std::uint32_t b, const DedupThresholds& t,
                     const SignalCrowding* crowding = nullptr);
// The grouping cap: a match, or within cap_cosine / cap_hash_distance (uncrowded signals only).
bool within_group_cap(const ImageIndex& index, std::uint32_t a, std::uint32_t b, const DedupThresholds& t,
                      const SignalCrowding* crowding = nullptr);
// The same against an image outside the index (its signals, embedding and crowd flags).
PairMatch match_external(const ImageIndex& index, const DuplicateSignals& signals, const float* unit_vector,
                         std::uint32_t b, const DedupThresholds& t, std::uint8_t crowd_flags = 0,
                         std::uint8_t crowd_flags_b = 0);

// Multi-index hashing over the four 16-bit blocks of each entry's identity hash: all
// entries within a Hamming radius of a query hash, without comparing against all.
class HashNeighbours {
 public:
  explicit HashNeighbours(const ImageIndex& index);
  // Ids whose identity hash is within `radius` of `hash` (radius <= 15), sorted, unique.
  // Block buckets holding more than 1024 images (a value shared by a whole catalogue on a
  // plain background) are not scanned, so there an answer may miss some ids.
  std::vector<std::uint32_t> within(std::uint64_t hash, int radius) const;

 private:
  std::vector<std::uint64_t> hashes_;
  // For each block: ids bucketed by the block's 16-bit value (CSR: offsets, ids).
  std::vector<std::uint32_t> offsets_[4], ids_[4];
};

struct CandidatePair {
  std::uint32_t a = 0, b = 0;  // a < b
  PairMatch match;
};

struct DedupOptions {
  DedupThresholds thresholds;
  int neighbours = 16;  // embedding neighbours examined per image
  // Hash neighbours examined per image and orientation (the nearest): bounds the work where
  // many images share nearly one hash (plain backgrounds).
  int hash_neighbours = 8;
  int threads = 0;      // 0 = all cores
};

// Every matching pair that neighbour search finds, each once (a < b), strongest first.
// With the crowd rule on (crowding_enabled), the crowds are measured in the same pass and
// left in *crowding when given (for group_duplicates).
std::vector<CandidatePair> find_duplicate_pairs(const ImageIndex& index, const DedupOptions& options,
                                                SignalCrowding* crowding = nullptr);

enum class KeepRule { Largest, Oldest, Newest, FirstPath };
KeepRule parse_keep_rule(const std::string& name);  // Error(InvalidArgument) when unknown

struct GroupMember {
  std::uint32_t id = 0;
  bool keep = false;
  PairMatch match;  // against the group's keeper (the keeper's own: signal None, score 1)
};
struct DuplicateGroup {
  std::vector<GroupMember> members;  // the keeper first, then by score
};

struct GroupingOptions {
  KeepRule keep = KeepRule::Largest;
  // Files under these folders are never proposed for removal (and are preferred as keepers).
  std::vector<std::string> prefer;
};

// Agglomeration of the pairs (strongest first): two groups merge only when every member
// of one is within the cap of every member of the other (complete-link when the cap is
// off). Groups of two or more, largest first. The keeper: a preferred file if any, then by
// the rule (largest file, oldest or newest mtime, first path), ties broken by path. Each
// other member's match is against the keeper when that matches, else its strongest match
// within the group.
// `crowding`: find_duplicate_pairs' measurement; nullptr with the crowd rule on measures it again.
std::vector<DuplicateGroup> group_duplicates(const ImageIndex& index, const std::vector<CandidatePair>& pairs,
                                             const DedupThresholds& thresholds, const GroupingOptions& options,
                                             const SignalCrowding* crowding = nullptr);

// True when `path` is `dir` or lies below it (both absolute, lexically normal).
bool path_is_under(const std::string& path, const std::string& dir);

}  // namespace imgsearch
