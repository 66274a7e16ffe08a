#include "imgsearch/duplicates.h"

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
    t.cap_cosine = name == "near" ? 0.75f : 0.60f;
    t.cap_hash_distance = name == "near" ? 20 : 24;
    t.centre_score = 0.90f;
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
  } else if (key == "centre") {
    t.centre_score = static_cast<float>(number());
  } else if (key == "cap-cnn") {
    t.cap_cosine = static_cast<float>(number());
  } else if (key == "cap-phash") {
    t.cap_hash_distance = distance();
  } else if (key == "orientations") {
    t.orientations = number() != 0;
  } else {
    throw_error(ErrorKind::InvalidArgument,
                "--threshold: unknown signal '{}' (use phash=N, cnn=X, weak-phash=N, weak-cnn=X, phash-cnn=X, cap-phash=N, cap-cnn=X, centre=X or orientations=0|1)",
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

PairMatch decide(const DuplicateSignals& sa, std::uint64_t size_a, const DuplicateSignals& sb, std::uint64_t size_b,
                 float cosine, const DedupThresholds& t) {
  PairMatch m;
  m.cosine = cosine;
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
  } else if (informative && m.hash_distance <= t.hash_distance && cosine >= t.hash_min_cosine) {
    m.signal = MatchSignal::PerceptualHash;
    m.score = 1.0f - m.hash_distance / 64.0f;
  } else if (cosine >= t.min_cosine) {
    m.signal = MatchSignal::Embedding;
    m.score = cosine;
  } else if (informative && cosine >= t.weak_cosine && m.hash_distance <= t.weak_hash_distance) {
    m.signal = MatchSignal::EmbeddingAndHash;
    m.score = cosine;
  }
  return m;
}

int resolve_threads(int threads) {
  return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

PairMatch match_pair(const ImageIndex& index, std::uint32_t a, std::uint32_t b, const DedupThresholds& t) {
  const IndexEntry& ea = index.entry(a);
  const IndexEntry& eb = index.entry(b);
  return decide(ea.signals, ea.size, eb.signals, eb.size, dot(index.model_vector(a), index.model_vector(b), index.model_dim()), t);
}

bool within_group_cap(const ImageIndex& index, std::uint32_t a, std::uint32_t b, const DedupThresholds& t) {
  const PairMatch m = match_pair(index, a, b, t);
  if (m.matched() || m.cosine >= t.cap_cosine) return true;
  const DuplicateSignals& sa = index.entry(a).signals;
  const DuplicateSignals& sb = index.entry(b).signals;
  return sa.present && sb.present && __builtin_popcountll(sa.phash[0]) >= kMinHashBits &&
         __builtin_popcountll(sb.phash[0]) >= kMinHashBits && m.hash_distance <= t.cap_hash_distance;
}

PairMatch match_external(const ImageIndex& index, const DuplicateSignals& signals, const float* unit_vector,
                         std::uint32_t b, const DedupThresholds& t) {
  const IndexEntry& eb = index.entry(b);
  // The size is not known for an outside image: identical content hashes decide alone.
  return decide(signals, eb.size, eb.signals, eb.size, dot(unit_vector, index.model_vector(b), index.model_dim()), t);
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

std::vector<CandidatePair> find_duplicate_pairs(const ImageIndex& index, const DedupOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  const DedupThresholds& t = options.thresholds;
  const std::size_t n = index.size();
  const int threads = resolve_threads(options.threads);

  std::vector<CandidatePair> pairs;
  std::unordered_set<std::uint64_t> seen;
  std::mutex mutex;
  auto offer = [&](std::uint32_t a, std::uint32_t b, std::vector<CandidatePair>& local) {
    if (a == b) return;
    if (a > b) std::swap(a, b);
    const PairMatch m = match_pair(index, a, b, t);
    if (m.matched()) local.push_back({a, b, m});
  };
  auto merge = [&](std::vector<CandidatePair>& local) {
    std::lock_guard<std::mutex> lock(mutex);
    for (CandidatePair& p : local)
      if (seen.insert((std::uint64_t(p.a) << 32) | p.b).second) pairs.push_back(p);
    local.clear();
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
      if (!inserted) offer(it->second, i, local);
    }
    merge(local);
  }

  const bool use_hash = t.hash_distance >= 0;
  const bool use_embedding = std::min(t.min_cosine, t.weak_cosine) <= 1.0f && options.neighbours > 0;
  std::optional<HashNeighbours> hashes;
  if (use_hash) hashes.emplace(index);
  const int radius = std::min(t.hash_distance, 15);
  const float min_cosine = std::min(t.min_cosine, t.weak_cosine);
  const int k = std::min<int>(options.neighbours + 1, static_cast<int>(n));
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w) {
    pool.emplace_back([&] {
      std::vector<CandidatePair> local;
      try {
        for (;;) {
          const std::size_t i = next.fetch_add(1);
          if (i >= n) break;
          const auto a = static_cast<std::uint32_t>(i);
          const DuplicateSignals& s = index.entry(i).signals;
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
              for (const std::uint32_t b : near) offer(a, b, local);
            }
          }
          if (use_embedding) {
            for (const SearchHit& hit : index.search(index.vector(i), k, std::max(k, 64)))
              if (hit.score >= min_cosine) offer(a, hit.id, local);
          }
          if (local.size() > 4096) merge(local);
        }
        merge(local);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        next = n;
      }
    });
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);

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
                                             const DedupThresholds& thresholds, const GroupingOptions& options) {
  const auto started = std::chrono::steady_clock::now();
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
      if (!within_group_cap(index, m, id, thresholds)) return false;
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
      m.match = match_pair(index, keeper, id, thresholds);
      if (!m.match.matched())  // linked through another member: its strongest match there
        for (const std::uint32_t other : ids)
          if (other != id) {
            const PairMatch via = match_pair(index, other, id, thresholds);
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
