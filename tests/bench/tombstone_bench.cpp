// Removing 1 % of a large index: tombstones against the rebuild every removal used to cost
// (tests/bench/tombstones.sh runs it; docs/benchmarks.md, "Deletions without rebuilds").
//
// The collection: N 1280-d vectors made at run time from the real fashion44k MobileNetV2
// embeddings (the shared index): vector i is real vector (i mod 44,072) mixed with a
// randomly chosen other real vector, w a + (1 - w) b with w uniform in [0.5, 0.9], then
// renormalised, so the distribution stays that of real photos while N exceeds 44k. Queries
// are made the same way from another seed (not in the index).
//
//   tombstone_bench SOURCE.index N CACHE.index THREADS M EF_CONSTRUCTION DBA_N
//
// CACHE.index is built once (and reused when it holds N entries). Then, on that index:
// remove every 100th entry (1 %) with tombstones; recall@10 and search time with them;
// save; compact() -- exactly what remove_if did before tombstones: copy the survivors'
// vectors and rebuild the graph; recall and search time again. Then the same on a DBA_N
// index with database-side augmentation (k 20), where a removal also re-augments the
// entries that lost a neighbour. Prints one JSON object.
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <sys/resource.h>
#include <vector>

using namespace imgsearch;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// User + system CPU seconds of this process: on a shared machine wall time alone mostly
// measures the other users.
double cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Timer {
  double wall = now_s(), cpu = cpu_s();
  nlohmann::json done() const { return {{"wall_s", now_s() - wall}, {"cpu_s", cpu_s() - cpu}}; }
};

// Row `i` of the synthetic collection (seeded per row, so any row can be made alone).
void mixed_row(const ImageIndex& real, std::uint64_t seed, std::size_t i, float* out) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + i);
  const std::size_t n = real.size();
  const int dim = real.model_dim();
  const float* a = real.model_vector(i % n);
  const float* b = real.model_vector(std::uniform_int_distribution<std::size_t>(0, n - 1)(rng));
  const float w = std::uniform_real_distribution<float>(0.5f, 0.9f)(rng);
  double norm = 0;
  for (int d = 0; d < dim; ++d) {
    out[d] = w * a[d] + (1 - w) * b[d];
    norm += double(out[d]) * out[d];
  }
  const float inv = static_cast<float>(1 / std::sqrt(norm));
  for (int d = 0; d < dim; ++d) out[d] *= inv;
}

std::vector<IndexEntry> synthetic_entries(std::size_t first, std::size_t n) {
  std::vector<IndexEntry> e(n);
  for (std::size_t i = 0; i < n; ++i) {
    e[i].path = "/synthetic/" + std::to_string(first + i) + ".jpg";
    e[i].size = first + i;  // the row number: what the removals select on
  }
  return e;
}

ImageIndex build(const ImageIndex& real, std::size_t n, HnswParams params, int threads, nlohmann::json& report) {
  const int dim = real.model_dim();
  ImageIndex index(dim, params, real.model());
  const std::size_t chunk = 50000;  // the synthetic rows are never all held twice
  std::vector<float> rows(std::min(chunk, n) * dim);
  Timer t;
  for (std::size_t first = 0; first < n; first += chunk) {
    const std::size_t m = std::min(chunk, n - first);
    for (std::size_t i = 0; i < m; ++i) mixed_row(real, 1, first + i, rows.data() + i * dim);
    index.add(synthetic_entries(first, m), rows.data(), threads);
    std::fprintf(stderr, "tombstone_bench: %zu / %zu added\n", first + m, n);
  }
  report["build"] = t.done();
  return index;
}

// recall@10 against exact search, and search time per query, at the default ef.
nlohmann::json measure_search(const ImageIndex& index, const std::vector<float>& queries, std::size_t nq) {
  const int dim = index.dim();
  std::size_t hit = 0;
  double search_s = 0;
  std::vector<double> times;
  for (std::size_t q = 0; q < nq; ++q) {
    const float* v = queries.data() + q * dim;
    std::set<std::uint32_t> exact;
    for (const auto& h : index.search_exact(v, 10)) exact.insert(h.id);
    const double t = now_s();
    const auto hits = index.search(v, 10);
    times.push_back(now_s() - t);
    search_s += times.back();
    for (const auto& h : hits) hit += exact.count(h.id);
  }
  std::sort(times.begin(), times.end());
  return {{"recall_at_10", static_cast<double>(hit) / (10.0 * nq)},
          {"mean_ms", 1000 * search_s / nq},
          {"p50_ms", 1000 * times[nq / 2]}};
}

bool every_100th(const IndexEntry& e) { return e.size % 100 == 0; }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: tombstone_bench SOURCE.index N CACHE.index THREADS M EF_CONSTRUCTION DBA_N\n");
    return 2;
  }
  const ImageIndex real = load_index(argv[1]);
  const std::size_t n = std::stoull(argv[2]);
  const std::string cache = argv[3];
  const int threads = std::atoi(argv[4]);
  const HnswParams params{std::atoi(argv[5]), std::atoi(argv[6]), 64};
  const std::size_t dba_n = std::stoull(argv[7]);
  const int dim = real.model_dim();
  nlohmann::json report{{"n", n}, {"dim", dim}, {"threads", threads}, {"M", params.M},
                        {"ef_construction", params.ef_construction}, {"ef", params.ef_search}};

  const std::size_t nq = 200;
  std::vector<float> queries(nq * dim);
  for (std::size_t i = 0; i < nq; ++i) mixed_row(real, 2, i, queries.data() + i * dim);

  ImageIndex index = [&] {
    if (std::filesystem::exists(cache)) {
      Timer t;
      ImageIndex cached = load_index(cache);
      if (cached.size() == n && cached.tombstones() == 0 && cached.params().M == params.M &&
          cached.params().ef_construction == params.ef_construction) {
        report["load"] = t.done();
        report["build"] = "cached";
        return cached;
      }
    }
    ImageIndex built = build(real, n, params, threads, report);
    Timer t;
    save_index(built, cache);
    report["save_fresh"] = t.done();
    return built;
  }();
  report["file_bytes_fresh"] = std::filesystem::file_size(cache);
  report["search_fresh"] = measure_search(index, queries, nq);

  {
    Timer t;
    const std::size_t removed = index.remove_if(every_100th, threads);
    report["remove_1pct_tombstones"] = t.done();
    report["removed"] = removed;
    report["tombstones"] = index.tombstones();
    report["compactions"] = index.compactions();
  }
  report["search_with_tombstones"] = measure_search(index, queries, nq);
  const std::string edited = cache + ".edited";
  {
    Timer t;
    save_index(index, edited);
    report["save_with_tombstones"] = t.done();
    report["file_bytes_with_tombstones"] = std::filesystem::file_size(edited);
  }
  {
    // What remove_if did before tombstones, on the same survivors.
    Timer t;
    index.compact(threads);
    report["rebuild_after_1pct"] = t.done();
  }
  report["search_after_rebuild"] = measure_search(index, queries, nq);
  std::filesystem::remove(edited);
  std::fprintf(stderr, "tombstone_bench: %s\n", report.dump().c_str());

  if (dba_n > 0) {
    // Database-side augmentation: a removal re-augments the entries that lost one of their
    // k nearest neighbours (an exact row of products each), then writes them in place.
    nlohmann::json dba{{"n", dba_n}, {"k", 20}};
    ImageIndex small = build(real, dba_n, params, threads, dba);
    {
      Timer t;
      small.set_augmentation({20, 3.0f}, threads);
      dba["set_augmentation"] = t.done();
    }
    {
      Timer t;
      const std::size_t removed = small.remove_if(every_100th, threads);
      dba["remove_1pct_tombstones"] = t.done();
      dba["removed"] = removed;
      dba["tombstones"] = small.tombstones();
      dba["compactions"] = small.compactions();
    }
    {
      Timer t;
      small.compact(threads);
      dba["rebuild_after_1pct"] = t.done();
    }
    report["dba"] = dba;
  }
  std::printf("%s\n", report.dump(2).c_str());
  return 0;
}
