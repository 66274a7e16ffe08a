#include "imgsearch/evaluation.h"
#include "parallel_for.h"

#include "imgsearch/error.h"
#include "imgsearch/metrics.h"
#include "csv.h"
#include "imgsearch/refinement.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

namespace imgsearch {

namespace {

std::string file_stem(const std::string& path) { return std::filesystem::path(path).stem().string(); }

using detail::CsvRow;
using detail::parse_csv;

std::size_t column_index(const std::vector<std::string>& header, const std::string& name, const std::string& path) {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  std::string have;
  for (const std::string& h : header) have += (have.empty() ? "" : ", ") + h;
  throw_error(ErrorKind::InvalidArgument, "{}: no column '{}' (the columns are: {})", path, name, have);
}

// What each query contributes; aggregated once every query is ranked.
struct QueryRecord {
  std::uint32_t id = 0;
  std::size_t relevant = 0;
  std::vector<double> p_hnsw, p_exact;  // P@k for options.ks
  double p10_hnsw = 0;
  double ap_hnsw = 0, ap_exact = 0, rp_hnsw = 0, rp_exact = 0;
  double recall10 = 0;
  double ns_hnsw = 0, ns_exact = 0;
  double latency_ms = 0;
  std::vector<SearchHit> top;  // HNSW, query left out
  std::vector<double> pr_hnsw, pr_exact;  // interpolated precision at each recall level
};

// Per-thread sums that are too big to keep per query.
// (Integer counts only: floating-point sums are made in query order, so that a run gives
// the same figures whichever thread ranked which query.)
struct ThreadSums {
  std::vector<std::uint64_t> hist_rel, hist_nonrel;
  std::vector<std::uint8_t> kind;
  std::vector<std::pair<float, std::uint32_t>> scored;
};

constexpr int kHistogramBins = 400;  // over [-1, 1]; reports merge them

}  // namespace

Labels labels_from_parent_folder(const ImageIndex& index) {
  Labels labels(index.size());
  for (std::size_t i = 0; i < index.size(); ++i)
    labels[i] = std::filesystem::path(index.entry(i).path).parent_path().filename().string();
  return labels;
}

Labels labels_from_csv(const ImageIndex& index, const std::string& csv_path, const std::string& id_column,
                       const std::vector<std::string>& label_columns) {
  IMGSEARCH_CHECK(!label_columns.empty(), ErrorKind::InvalidArgument, "{}: no label column given", csv_path);
  std::ifstream in(csv_path, std::ios::binary);
  IMGSEARCH_CHECK(in, ErrorKind::Io, "{}: cannot open: {}", csv_path, std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::vector<CsvRow> rows = parse_csv(buffer.str(), csv_path);
  IMGSEARCH_CHECK(!rows.empty(), ErrorKind::Format, "{}: empty file, expected a header row", csv_path);
  const std::vector<std::string>& header = rows[0].fields;
  const std::size_t id_col = column_index(header, id_column, csv_path);
  std::vector<std::size_t> label_cols;
  for (const std::string& c : label_columns) label_cols.push_back(column_index(header, c, csv_path));

  std::unordered_map<std::string, std::string> by_id;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const CsvRow& row = rows[r];
    IMGSEARCH_CHECK(row.fields.size() == header.size(), ErrorKind::Format, "{}: line {}: {} fields, the header has {}",
                    csv_path, row.line, row.fields.size(), header.size());
    std::string label;
    bool complete = true;
    for (std::size_t c : label_cols) {
      if (row.fields[c].empty()) complete = false;
      label += (label.empty() ? "" : "+") + row.fields[c];
    }
    if (!complete) label.clear();
    auto [it, inserted] = by_id.emplace(row.fields[id_col], label);
    IMGSEARCH_CHECK(inserted || it->second == label, ErrorKind::Format,
                    "{}: line {}: id '{}' appears twice with different labels ('{}' and '{}')", csv_path, row.line,
                    row.fields[id_col], it->second, label);
  }
  Labels labels(index.size());
  for (std::size_t i = 0; i < index.size(); ++i) {
    auto it = by_id.find(file_stem(index.entry(i).path));
    if (it != by_id.end()) labels[i] = it->second;
  }
  return labels;
}

std::vector<std::uint32_t> read_query_list(const ImageIndex& index, const std::string& list_path) {
  namespace fs = std::filesystem;
  std::ifstream in(list_path);
  IMGSEARCH_CHECK(in, ErrorKind::Io, "{}: cannot open: {}", list_path, std::strerror(errno));
  std::unordered_map<std::string, std::uint32_t> by_path;
  for (std::size_t i = 0; i < index.size(); ++i) by_path.emplace(index.entry(i).path, static_cast<std::uint32_t>(i));
  const fs::path folder = fs::absolute(fs::path(list_path)).parent_path();
  std::vector<std::uint32_t> ids;
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const fs::path p(line);
    const std::string path = (p.is_absolute() ? p : folder / p).lexically_normal().string();
    auto it = by_path.find(path);
    IMGSEARCH_CHECK(it != by_path.end(), ErrorKind::InvalidArgument, "{}: line {}: {} is not in the index", list_path,
                    line_no, path);
    ids.push_back(it->second);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  IMGSEARCH_CHECK(!ids.empty(), ErrorKind::InvalidArgument, "{}: names no image", list_path);
  return ids;
}

bool is_held_out(const std::string& image_path, double fraction, std::uint64_t seed) {
  // FNV-1a of the id, mixed with the seed by splitmix64's finaliser: written out so that a
  // seed means the same split on every platform.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : file_stem(image_path)) h = (h ^ c) * 1099511628211ull;
  h ^= seed * 0x9E3779B97F4A7C15ull;
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0) < fraction;
}

EvalReport evaluate(const ImageIndex& index, const Labels& labels, const EvalOptions& options) {
  const std::size_t n = index.size();
  const int dim = index.dim();
  IMGSEARCH_CHECK(labels.size() == n, ErrorKind::InvalidArgument, "evaluate: {} labels for {} images", labels.size(), n);
  IMGSEARCH_CHECK(!options.ks.empty(), ErrorKind::InvalidArgument, "evaluate: no k given");
  for (int k : options.ks)
    IMGSEARCH_CHECK(k >= 1 && k <= 10000, ErrorKind::InvalidArgument, "evaluate: k must be in 1..10000, not {}", k);

  EvalReport report;
  report.images = n;
  report.ks = options.ks;
  report.recall_levels = recall_levels(options.pr_levels);

  // Labels to dense ids; -1 = none.
  std::unordered_map<std::string, int> label_id;
  std::vector<std::string> label_names;
  std::vector<int> lab(n, -1);
  std::vector<std::size_t> label_count;
  for (std::size_t i = 0; i < n; ++i) {
    if (labels[i].empty()) {
      ++report.unlabelled;
      continue;
    }
    auto [it, inserted] = label_id.emplace(labels[i], static_cast<int>(label_names.size()));
    if (inserted) {
      label_names.push_back(labels[i]);
      label_count.push_back(0);
    }
    lab[i] = it->second;
    ++label_count[static_cast<std::size_t>(it->second)];
  }
  report.labels = label_names.size();
  std::vector<std::uint32_t> eligible;
  std::vector<std::uint32_t> candidates = options.query_ids;
  if (candidates.empty())
    for (std::size_t i = 0; i < n; ++i) candidates.push_back(static_cast<std::uint32_t>(i));
  report.query_list = !options.query_ids.empty();
  for (std::uint32_t i : candidates) {
    IMGSEARCH_CHECK(i < n, ErrorKind::InvalidArgument, "evaluate: no image with id {}", i);
    if (lab[i] < 0) {
      if (report.query_list) ++report.skipped;  // a listed query without a label
      continue;
    }
    if (label_count[static_cast<std::size_t>(lab[i])] < 2) ++report.skipped;
    else eligible.push_back(i);
  }
  const bool ns = options.ns_score ||
                  std::all_of(label_count.begin(), label_count.end(), [](std::size_t c) { return c == 4; });
  report.expansion = options.expansion ? *options.expansion : index.query_expansion();
  const QueryExpansion qe = report.expansion;
  report.eligible = eligible.size();
  IMGSEARCH_CHECK(!eligible.empty(), ErrorKind::InvalidArgument,
                  "evaluate: no image can be a query: {} of {} images have no label and {} have a label no other image "
                  "shares",
                  report.unlabelled, n, report.skipped);

  // A seeded partial Fisher-Yates, written out so that a seed means the same sample everywhere.
  std::vector<std::uint32_t> queries = eligible;
  if (options.queries > 0 && options.queries < eligible.size()) {
    std::mt19937_64 rng(options.seed);
    for (std::size_t i = 0; i < options.queries; ++i) {
      const std::size_t j = i + static_cast<std::size_t>(rng() % (eligible.size() - i));
      std::swap(queries[i], queries[j]);
    }
    queries.resize(options.queries);
    std::sort(queries.begin(), queries.end());
  }
  const std::size_t nq = queries.size();
  report.queries = nq;

  int max_k = *std::max_element(options.ks.begin(), options.ks.end());
  const int depth = static_cast<int>(std::min<std::size_t>(std::max(max_k, 10), n - 1));
  report.depth = depth;
  const int ef_base = options.ef > 0 ? options.ef : index.params().ef_search;
  report.ef = std::max(ef_base, depth + 1);  // what ImageIndex::search uses for k = depth + 1
  const int threads =
      options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::size_t total_work = 2 * nq;
  auto check_cancel = [&] {
    if (options.cancel && options.cancel->load())
      throw_error(ErrorKind::Interrupted, "evaluation interrupted");
  };

  // Pass 1: HNSW, one query at a time on this thread, timed alone (search only).
  std::vector<QueryRecord> records(nq);
  for (std::size_t q = 0; q < nq; ++q) {
    if (q % 256 == 0) {
      check_cancel();
      if (options.progress) options.progress(q, total_work);
    }
    QueryRecord& rec = records[q];
    rec.id = queries[q];
    // As `query` would search this image: its model vector, projected, then expanded.
    const float* v = index.model_vector(rec.id);
    const auto start = std::chrono::steady_clock::now();
    std::vector<SearchHit> hits = refined_search(index, v, index.colour(rec.id), depth + 1, ef_base, false, qe, rec.id);
    rec.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (ns) {
      for (std::size_t r = 0; r < std::min<std::size_t>(4, hits.size()); ++r) rec.ns_hnsw += lab[hits[r].id] == lab[rec.id];
    }
    auto self = std::find_if(hits.begin(), hits.end(), [&](const SearchHit& h) { return h.id == rec.id; });
    if (self != hits.end()) hits.erase(self);
    if (hits.size() > static_cast<std::size_t>(depth)) hits.resize(static_cast<std::size_t>(depth));
    rec.top = std::move(hits);
  }

  // Pass 2: exact scores for a block of queries against every vector (one sgemm), then
  // each query's rankings on the worker threads.
  std::vector<float> db(n * static_cast<std::size_t>(dim));  // the search vectors
  for (std::size_t i = 0; i < n; ++i) std::memcpy(db.data() + i * dim, index.vector(i), sizeof(float) * dim);
  const std::size_t block = std::max<std::size_t>(1, std::min<std::size_t>(256, (64u << 20) / (n * sizeof(float))));
  std::vector<float> qmat(block * dim), scores(block * n);
  const int levels = options.pr_levels;
  const std::size_t hist_depth = std::min<std::size_t>(static_cast<std::size_t>(std::max(options.histogram_depth, 0)), n - 1);
  const std::size_t exact_top = std::max<std::size_t>(hist_depth, std::min<std::size_t>(10, n - 1));
  std::vector<ThreadSums> sums(static_cast<std::size_t>(threads));
  for (ThreadSums& s : sums) {
    s.hist_rel.assign(kHistogramBins, 0);
    s.hist_nonrel.assign(kHistogramBins, 0);
    s.kind.assign(n, kNotRelevant);
  }
  auto bin_of = [](float score) {
    const int b = static_cast<int>(std::floor((static_cast<double>(score) + 1.0) / 2.0 * kHistogramBins));
    return static_cast<std::size_t>(std::clamp(b, 0, kHistogramBins - 1));
  };

  for (std::size_t first = 0; first < nq; first += block) {
    check_cancel();
    if (options.progress) options.progress(nq + first, total_work);
    const std::size_t b = std::min(block, nq - first);
    for (std::size_t j = 0; j < b; ++j) {
      const std::vector<float> q = to_search_space(index, index.model_vector(records[first + j].id), index.colour(records[first + j].id));
      std::memcpy(qmat.data() + j * dim, q.data(), sizeof(float) * dim);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(b), static_cast<int>(n), dim, 1.0f,
                qmat.data(), dim, db.data(), dim, 0.0f, scores.data(), static_cast<int>(n));
    if (qe.enabled()) {
      // The exact counterpart of refined_search: expand from the exact top, rank again.
      std::vector<float> expanded(b * dim);
      parallel_for(0, b, threads, [&](std::size_t j, int) {
        const float* row = scores.data() + j * n;
        std::vector<SearchHit> top;  // the query's own entry never expands it (refined_search)
        top.reserve(n);
        for (std::size_t i = 0; i < n; ++i)
          if (i != records[first + j].id) top.push_back({static_cast<std::uint32_t>(i), row[i]});
        const std::size_t take = std::min<std::size_t>(static_cast<std::size_t>(qe.k), top.size());
        std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(take), top.end(),
                          [](const SearchHit& a, const SearchHit& c) { return a.score > c.score || (a.score == c.score && a.id < c.id); });
        top.resize(take);
        expand_query(index, qmat.data() + j * dim, top, qe.k, qe.alpha, expanded.data() + j * dim);
      });
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(b), static_cast<int>(n), dim, 1.0f,
                  expanded.data(), dim, db.data(), dim, 0.0f, scores.data(), static_cast<int>(n));
    }

    parallel_for(0, b, threads, [&](std::size_t j, int t) {
      ThreadSums& s = sums[static_cast<std::size_t>(t)];
      QueryRecord& rec = records[first + j];
      const float* row = scores.data() + j * n;
      const int ql = lab[rec.id];
      std::uint8_t* kind = s.kind.data();
      for (std::size_t i = 0; i < n; ++i) kind[i] = lab[i] == ql ? kRelevant : kNotRelevant;
      kind[rec.id] = kLeftOut;
      rec.relevant = label_count[static_cast<std::size_t>(ql)] - 1;

      // Exact ranking.
      const std::vector<std::uint32_t> exact_ranks = ranks_of_relevant(row, kind, n);
      // HNSW ranking: HNSW's list, then everything else in exact order.
      std::vector<std::uint32_t> hnsw_ranks;
      for (std::size_t r = 0; r < rec.top.size(); ++r) {
        if (kind[rec.top[r].id] == kRelevant) hnsw_ranks.push_back(static_cast<std::uint32_t>(r + 1));
        kind[rec.top[r].id] = kLeftOut;
      }
      const std::vector<std::uint32_t> rest =
          ranks_of_relevant(row, kind, n, static_cast<std::uint32_t>(rec.top.size()));
      hnsw_ranks.insert(hnsw_ranks.end(), rest.begin(), rest.end());

      for (int k : options.ks) {
        rec.p_hnsw.push_back(precision_at(hnsw_ranks, k));
        rec.p_exact.push_back(precision_at(exact_ranks, k));
      }
      rec.p10_hnsw = precision_at(hnsw_ranks, 10);
      rec.ap_hnsw = average_precision(hnsw_ranks, rec.relevant);
      rec.ap_exact = average_precision(exact_ranks, rec.relevant);
      rec.rp_hnsw = r_precision(hnsw_ranks, rec.relevant);
      rec.rp_exact = r_precision(exact_ranks, rec.relevant);
      rec.pr_hnsw.assign(static_cast<std::size_t>(levels), 0);
      rec.pr_exact.assign(static_cast<std::size_t>(levels), 0);
      add_interpolated_pr(hnsw_ranks, rec.relevant, rec.pr_hnsw);
      add_interpolated_pr(exact_ranks, rec.relevant, rec.pr_exact);

      if (ns) {  // the top 4 with the query itself in the ranking
        std::vector<std::pair<float, std::uint32_t>> top4;
        for (std::size_t i = 0; i < n; ++i) {
          top4.emplace_back(row[i], static_cast<std::uint32_t>(i));
          std::sort(top4.begin(), top4.end(), [](const auto& a, const auto& c) { return a.first > c.first || (a.first == c.first && a.second < c.second); });
          if (top4.size() > 4) top4.pop_back();
        }
        for (const auto& [score, id] : top4) rec.ns_exact += lab[id] == ql;
      }

      // Exact top: ANN recall@10 and the score histogram.
      s.scored.clear();
      for (std::size_t i = 0; i < n; ++i)
        if (i != rec.id) s.scored.emplace_back(row[i], static_cast<std::uint32_t>(i));
      const auto better = [](const std::pair<float, std::uint32_t>& a, const std::pair<float, std::uint32_t>& c) {
        return a.first > c.first || (a.first == c.first && a.second < c.second);
      };
      std::partial_sort(s.scored.begin(), s.scored.begin() + static_cast<std::ptrdiff_t>(exact_top), s.scored.end(),
                        better);
      std::vector<std::uint32_t> exact10, hnsw10;
      for (std::size_t r = 0; r < std::min<std::size_t>(10, exact_top); ++r) exact10.push_back(s.scored[r].second);
      for (std::size_t r = 0; r < std::min<std::size_t>(10, rec.top.size()); ++r) hnsw10.push_back(rec.top[r].id);
      rec.recall10 = recall_at(hnsw10, exact10, 10);
      for (std::size_t r = 0; r < hist_depth; ++r) {
        const auto& [score, id] = s.scored[r];
        (lab[id] == ql ? s.hist_rel : s.hist_nonrel)[bin_of(score)]++;
      }
    });
  }
  if (options.progress) options.progress(total_work, total_work);

  // Aggregate.
  const double inv = 1.0 / static_cast<double>(nq);
  std::vector<double> lat;
  lat.reserve(nq);
  std::vector<double> p_hnsw(options.ks.size(), 0), p_exact(options.ks.size(), 0);
  double ns_hnsw = 0, ns_exact = 0;
  std::vector<LabelFigures> per_label(label_names.size());
  report.hnsw.pr_curve.assign(static_cast<std::size_t>(levels), 0);
  report.exact.pr_curve.assign(static_cast<std::size_t>(levels), 0);
  for (const QueryRecord& rec : records) {
    for (std::size_t l = 0; l < static_cast<std::size_t>(levels); ++l) {
      report.hnsw.pr_curve[l] += rec.pr_hnsw[l];
      report.exact.pr_curve[l] += rec.pr_exact[l];
    }
    for (std::size_t i = 0; i < options.ks.size(); ++i) {
      p_hnsw[i] += rec.p_hnsw[i];
      p_exact[i] += rec.p_exact[i];
    }
    report.hnsw.map += rec.ap_hnsw;
    report.exact.map += rec.ap_exact;
    report.hnsw.r_precision += rec.rp_hnsw;
    report.exact.r_precision += rec.rp_exact;
    report.ann_recall_at_10 += rec.recall10;
    ns_hnsw += rec.ns_hnsw;
    ns_exact += rec.ns_exact;
    report.latency.mean += rec.latency_ms;
    lat.push_back(rec.latency_ms);
    LabelFigures& lf = per_label[static_cast<std::size_t>(lab[rec.id])];
    ++lf.queries;
    lf.precision_at_10 += rec.p10_hnsw;
    lf.ap += rec.ap_hnsw;
  }
  for (std::size_t i = 0; i < options.ks.size(); ++i) {
    report.hnsw.precision_at[options.ks[i]] = p_hnsw[i] * inv;
    report.exact.precision_at[options.ks[i]] = p_exact[i] * inv;
  }
  report.hnsw.map *= inv;
  report.exact.map *= inv;
  report.hnsw.r_precision *= inv;
  report.exact.r_precision *= inv;
  report.ann_recall_at_10 *= inv;
  if (ns) {
    report.hnsw.ns = ns_hnsw * inv;
    report.exact.ns = ns_exact * inv;
  }
  report.latency.mean *= inv;
  report.latency.p50 = percentile(lat, 50);
  report.latency.p95 = percentile(lat, 95);
  report.latency.p99 = percentile(lat, 99);
  for (std::size_t l = 0; l < static_cast<std::size_t>(levels); ++l) {
    report.hnsw.pr_curve[l] *= inv;
    report.exact.pr_curve[l] *= inv;
  }
  report.histogram.depth = hist_depth;
  report.histogram.relevant.assign(kHistogramBins, 0);
  report.histogram.not_relevant.assign(kHistogramBins, 0);
  for (const ThreadSums& s : sums) {
    for (int h = 0; h < kHistogramBins; ++h) {
      report.histogram.relevant[static_cast<std::size_t>(h)] += s.hist_rel[static_cast<std::size_t>(h)];
      report.histogram.not_relevant[static_cast<std::size_t>(h)] += s.hist_nonrel[static_cast<std::size_t>(h)];
    }
  }

  for (std::size_t l = 0; l < per_label.size(); ++l) {
    per_label[l].label = label_names[l];
    per_label[l].images = label_count[l];
    if (per_label[l].queries > 0) {
      per_label[l].precision_at_10 /= static_cast<double>(per_label[l].queries);
      per_label[l].ap /= static_cast<double>(per_label[l].queries);
    }
  }
  per_label.erase(std::remove_if(per_label.begin(), per_label.end(), [](const LabelFigures& f) { return f.queries == 0; }),
                  per_label.end());
  std::sort(per_label.begin(), per_label.end(), [](const LabelFigures& a, const LabelFigures& b) {
    return a.ap < b.ap || (a.ap == b.ap && a.label < b.label);
  });
  report.per_label = std::move(per_label);

  std::vector<std::size_t> order(nq);
  std::iota(order.begin(), order.end(), 0);
  const std::size_t worst = std::min<std::size_t>(static_cast<std::size_t>(std::max(options.worst, 0)), nq);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(worst), order.end(),
                    [&](std::size_t a, std::size_t b) {
                      return records[a].ap_hnsw < records[b].ap_hnsw ||
                             (records[a].ap_hnsw == records[b].ap_hnsw && records[a].id < records[b].id);
                    });
  for (std::size_t i = 0; i < worst; ++i) {
    QueryRecord& rec = records[order[i]];
    report.worst.push_back({rec.id, rec.relevant, rec.ap_hnsw, rec.p10_hnsw, std::move(rec.top)});
  }
  return report;
}

}  // namespace imgsearch
