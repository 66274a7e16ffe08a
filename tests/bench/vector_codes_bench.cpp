// Compact vectors (`index --vectors`): f32 against f16 and int8 codes on an N x 1280-d
// collection made at run time from the real fashion44k MobileNetV2 embeddings
// (tests/bench/vector_codes.sh runs it; docs/benchmarks.md, "A million images, int8 and
// shards (issue 13)").
//
// The collection: vector i is real vector (i mod 44,072) mixed with a randomly chosen other
// real vector, w a + (1 - w) b with w uniform in [0.5, 0.9], then renormalised (as
// tombstone_bench.cpp). Queries are made the same way from another seed.
//
// Each step runs in its own process, so that memory is measured fresh:
//   vector_codes_bench truth  SOURCE N NQ TRUTH.bin          exact top-10 of NQ queries (fp32, BLAS);
//                                                            the queries to TRUTH.bin.queries (NQ x dim floats)
//   vector_codes_bench build  SOURCE N CODES OUT.index THREADS M EF_CONSTRUCTION
//   vector_codes_bench serve  SOURCE INDEX NQ TRUTH.bin [file]  load, RSS, recall@10 and latency at ef 16..128
//                                                            (file: an f16 index's rows searched in the file, as `query`)
//   vector_codes_bench update SOURCE INDEX THREADS          add 10k new vectors, save; remove 10k, save
// Each prints one JSON object. A SOURCE with a projection (`learn --pca`, vector_codes.sh
// --pca) gives every index built its projection; recall is still against the exact top-10
// of the 1280-d vectors, and queries are searched as `query` searches them (refined_search,
// timed: the projection, and for a PCA projection the candidates rescored by the model
// vectors, read from the file).
// Indexes are loaded as `serve` loads them (search_load_options), or with `file` as `query`.
// serve reads its queries from TRUTH.bin.queries and never loads SOURCE: the process holds
// what a server would (the index, 500 queries and their truth), not also the heap a 44k
// source with its thumbnails left behind, which added ~45 MiB to the int8 index's RSS at
// 10^6 (its small blocks scattered over the freed pages).
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>
#include <imgsearch/refinement.h>

#include <cblas.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <malloc.h>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <sys/resource.h>
#include <time.h>
#include <vector>

using namespace imgsearch;

namespace {

constexpr std::uint64_t kRowSeed = 1, kQuerySeed = 2;
constexpr std::size_t kChunk = 10000;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
double thread_cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}
struct Timer {
  double wall = now_s(), cpu = cpu_s();
  nlohmann::json done() const { return {{"wall_s", now_s() - wall}, {"cpu_s", cpu_s() - cpu}}; }
};
// VmRSS / VmHWM of this process, MiB.
double status_mib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::atof(line.c_str() + std::strlen(key)) / 1024.0;
  return -1;
}

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
std::vector<float> rows(const ImageIndex& real, std::uint64_t seed, std::size_t first, std::size_t n) {
  std::vector<float> out(n * real.model_dim());
  for (std::size_t i = 0; i < n; ++i) mixed_row(real, seed, first + i, out.data() + i * real.model_dim());
  return out;
}
std::vector<IndexEntry> entries(std::size_t first, std::size_t n) {
  std::vector<IndexEntry> e(n);
  for (std::size_t i = 0; i < n; ++i) {
    e[i].path = "/synthetic/" + std::to_string(first + i) + ".jpg";
    e[i].size = first + i;
  }
  return e;
}

int truth(const ImageIndex& real, std::size_t n, std::size_t nq, const std::string& out) {
  const int dim = real.model_dim();
  const std::vector<float> q = rows(real, kQuerySeed, 0, nq);
  std::vector<std::vector<std::pair<float, std::uint32_t>>> best(nq);
  std::vector<float> scores(nq * kChunk);
  for (std::size_t first = 0; first < n; first += kChunk) {
    const std::size_t m = std::min(kChunk, n - first);
    const std::vector<float> db = rows(real, kRowSeed, first, m);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(nq), static_cast<int>(m), dim, 1.0f, q.data(),
                dim, db.data(), dim, 0.0f, scores.data(), static_cast<int>(m));
    for (std::size_t a = 0; a < nq; ++a) {
      auto& b = best[a];
      for (std::size_t j = 0; j < m; ++j) b.push_back({-scores[a * m + j], static_cast<std::uint32_t>(first + j)});
      std::partial_sort(b.begin(), b.begin() + std::min<std::size_t>(10, b.size()), b.end());
      b.resize(std::min<std::size_t>(10, b.size()));
    }
  }
  std::ofstream(out + ".queries", std::ios::binary)
      .write(reinterpret_cast<const char*>(q.data()), static_cast<std::streamsize>(q.size() * sizeof(float)));
  std::ofstream f(out, std::ios::binary);
  for (const auto& b : best)
    for (const auto& [s, id] : b) f.write(reinterpret_cast<const char*>(&id), 4);
  std::cout << nlohmann::json{{"step", "truth"}, {"n", n}, {"queries", nq}} << "\n";
  return 0;
}

int build(const ImageIndex& real, std::size_t n, VectorCodes codes, const std::string& out, int threads, int m, int efc) {
  HnswParams params;
  params.M = m;
  params.ef_construction = efc;
  ImageIndex index(real.model_dim(), params, real.model(), codes);
  if (real.projection().enabled()) index.set_projection(real.projection(), threads);
  nlohmann::json report{{"step", "build"}, {"n", n}, {"vectors", vector_codes_name(codes)}, {"threads", threads},
                        {"M", m}, {"ef_construction", efc}, {"dim", index.dim()}};
  double make_cpu = 0;
  Timer t;
  for (std::size_t first = 0; first < n; first += kChunk) {
    const double c0 = cpu_s();
    const std::vector<float> r = rows(real, kRowSeed, first, std::min(kChunk, n - first));
    make_cpu += cpu_s() - c0;
    index.add(entries(first, std::min(kChunk, n - first)), r.data(), threads);
  }
  report["link"] = t.done();
  report["link"]["cpu_s"] = report["link"]["cpu_s"].get<double>() - make_cpu;  // without making the rows
  report["rss_built_mib"] = status_mib("VmRSS:");
  Timer s;
  save_index(index, out);
  report["save"] = s.done();
  report["file_bytes"] = std::filesystem::file_size(out);
  report["peak_rss_mib"] = status_mib("VmHWM:");
  std::cout << report << "\n";
  return 0;
}

int serve(const std::string& path, std::size_t nq, const std::string& truth_path, bool rows_in_file) {
  std::vector<float> q;  // nq x the model's dimension, as truth wrote them
  {
    std::ifstream in(truth_path + ".queries", std::ios::binary | std::ios::ate);
    if (!in) {
      std::fprintf(stderr, "%s.queries: missing (run the truth step again)\n", truth_path.c_str());
      return 1;
    }
    q.resize(static_cast<std::size_t>(in.tellg()) / sizeof(float));
    in.seekg(0).read(reinterpret_cast<char*>(q.data()), static_cast<std::streamsize>(q.size() * sizeof(float)));
  }
  std::vector<std::uint32_t> truth(nq * 10);
  std::ifstream(truth_path, std::ios::binary).read(reinterpret_cast<char*>(truth.data()), truth.size() * 4);
  const double rss_before = status_mib("VmRSS:");
  nlohmann::json report{{"step", "serve"}, {"index", path}, {"queries", nq}, {"rss_process_and_queries_mib", rss_before}};
  Timer t;
  ImageIndex index = load_index(path, rows_in_file ? query_load_options() : search_load_options());
  report["load"] = t.done();
  report["rows"] = rows_in_file ? "file" : "memory";
  report["vectors"] = vector_codes_name(index.vector_codes());
  report["dim"] = index.dim();
  report["n"] = index.size();
  report["rss_after_load_mib"] = status_mib("VmRSS:");
  report["index_rss_after_load_mib"] = status_mib("VmRSS:") - rss_before;
  std::size_t path_bytes = 0;
  for (const int ef : {16, 32, 64, 128}) {
    std::size_t hit = 0;
    std::vector<double> wall, cpu;
    for (std::size_t a = 0; a < nq; ++a) {
      const double w0 = now_s(), c0 = thread_cpu_s();
      const auto hits = refined_search(index, q.data() + a * index.model_dim(), nullptr, 10, ef, false, {});
      // What a searcher answers with: the hits' paths (read back from the file when the
      // entries stay there, as serve's load leaves them).
      for (const auto& h : hits) path_bytes += index.path(h.id).size();
      wall.push_back(now_s() - w0);
      cpu.push_back(thread_cpu_s() - c0);
      const std::set<std::uint32_t> want(truth.begin() + a * 10, truth.begin() + a * 10 + 10);
      for (const auto& h : hits) hit += want.count(h.id);
    }
    auto pct = [](std::vector<double> v, double p) {
      std::sort(v.begin(), v.end());
      return 1000 * v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
    };
    report["ef"][std::to_string(ef)] = {{"recall_at_10", static_cast<double>(hit) / (10.0 * nq)},
                                        {"p50_ms", pct(wall, 0.5)}, {"p99_ms", pct(wall, 0.99)},
                                        {"cpu_p50_ms", pct(cpu, 0.5)}, {"cpu_p99_ms", pct(cpu, 0.99)}};
  }
  report["changeable"] = index.changeable();
  report["hit_path_bytes"] = path_bytes;
  report["rss_after_queries_mib"] = status_mib("VmRSS:");
  report["index_rss_after_queries_mib"] = status_mib("VmRSS:") - rss_before;
  report["peak_rss_mib"] = status_mib("VmHWM:");
  std::cout << report << "\n";
  return 0;
}

int update(const ImageIndex& real, const std::string& path, int threads) {
  nlohmann::json report{{"step", "update"}, {"index", path}};
  {
    Timer t;
    ImageIndex index = load_index(path);
    report["load"] = t.done();
    const std::size_t n = index.size();
    report["n"] = n;
    report["vectors"] = vector_codes_name(index.vector_codes());
    const std::vector<float> r = rows(real, kRowSeed, n, 10000);  // rows n.. are new to the index
    Timer a;
    index.add(entries(n, 10000), r.data(), threads);
    report["add_10k"] = a.done();
    Timer s;
    save_index(index, path);
    report["add_10k_save"] = s.done();
  }
  {
    ImageIndex index = load_index(path);
    const std::size_t n = index.size();
    const std::size_t step = n / 10000;
    Timer t;
    const std::size_t removed = index.remove_if([&](const IndexEntry& e) { return e.size % step == 0 && e.size / step < 10000; }, threads);
    report["remove"] = t.done();
    report["removed"] = removed;
    report["tombstones"] = index.tombstones();
    Timer s;
    save_index(index, path);
    report["remove_save"] = s.done();
  }
  report["peak_rss_mib"] = status_mib("VmHWM:");
  std::cout << report << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: see the comment at the top of vector_codes_bench.cpp\n");
    return 2;
  }
  const std::string step = argv[1];
  if (step == "serve") return serve(argv[3], std::stoul(argv[4]), argv[5], argc > 6 && std::string(argv[6]) == "file");
  std::optional<ImageIndex> source(load_index(argv[2]));
  const ImageIndex& real = *source;
  if (step == "truth") return truth(real, std::stoul(argv[3]), std::stoul(argv[4]), argv[5]);
  if (step == "build")
    return build(real, std::stoul(argv[3]), parse_vector_codes(argv[4]), argv[5], std::atoi(argv[6]), std::atoi(argv[7]),
                 std::atoi(argv[8]));
  if (step == "update") return update(real, argv[3], std::atoi(argv[4]));
  std::fprintf(stderr, "unknown step %s\n", step.c_str());
  return 2;
}
