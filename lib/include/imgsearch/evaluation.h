// Retrieval quality of an index against labels, by the protocol of the CBIR literature:
// every labelled image (or a seeded sample) is a query, the query itself is left out of
// its own ranking, relevant = same label. Protocol and definitions: docs/eval.md.
#pragma once

#include "imgsearch/index.h"
#include "imgsearch/refinement.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace imgsearch {

// One label per index entry; "" = no label (indexed, never a query, never relevant).
using Labels = std::vector<std::string>;

// The name of each image's parent folder (Corel-1k's images/<class>/<id>.jpg).
Labels labels_from_parent_folder(const ImageIndex& index);

// A CSV with a header row (RFC 4180 quoting) maps ids to labels: an image's id is its file
// name without extension, matched against `id_column`; its label is the `label_columns`
// values joined with '+' ("Tshirts+Blue"). Images without a row, or with an empty value
// in any label column, get no label. Throws Error(Io/Format/InvalidArgument) naming the
// file and the reason (a missing column lists the columns there are).
Labels labels_from_csv(const ImageIndex& index, const std::string& csv_path, const std::string& id_column,
                       const std::vector<std::string>& label_columns);

// The index entries a query list names (Holidays' queries.txt): one image path a line,
// relative to the list's folder or absolute; blank lines and lines starting with '#' are
// skipped. Throws Error(Io/InvalidArgument) naming the list, the line and the image for
// an image the index does not hold.
std::vector<std::uint32_t> read_query_list(const ImageIndex& index, const std::string& list_path);

// Whether `learn --holdout F --seed S` keeps this image out of its fit (and `eval --holdout`
// evaluates it): a seeded hash of the image id (file name without extension) below F, so
// the split is the same whatever else the index holds and whichever labels are used.
bool is_held_out(const std::string& image_path, double fraction, std::uint64_t seed);

struct EvalOptions {
  std::vector<int> ks{1, 5, 10, 20};  // P@k for each
  std::size_t queries = 0;            // 0 = every eligible image; else a seeded sample of this many
  std::uint64_t seed = 1;
  std::vector<std::uint32_t> query_ids;  // non-empty: only these entries are queries (--query-list)
  bool ns_score = false;  // the UKBench N-S score even when not every label has exactly 4 images
  std::optional<QueryExpansion> expansion;  // unset: the index's stored default
  int ef = 0;                         // HNSW beam width; 0 = the index's
  int threads = 0;                    // ranking threads (the BLAS has its own); 0 = all cores
  int pr_levels = 21;                 // recall levels 0, 0.05, ..., 1
  int histogram_depth = 100;          // score histogram over the exact top this many
  int worst = 12;                     // worst queries kept with their results
  const std::atomic<bool>* cancel = nullptr;  // stops between blocks; throws Error(Interrupted)
  std::function<void(std::size_t done, std::size_t total)> progress;  // called on the calling thread
};

struct RankingFigures {
  std::map<int, double> precision_at;  // mean P@k for each k
  double map = 0;                      // mean average precision over the full ranking
  double r_precision = 0;              // mean R-precision
  std::vector<double> pr_curve;        // mean interpolated precision at each recall level
  // UKBench's N-S score: the mean number of the query's group (itself included) in the
  // top 4 of a ranking that includes the query; -1 when not computed.
  double ns = -1;
};

struct LatencyFigures {
  double p50 = 0, p95 = 0, p99 = 0, mean = 0;  // milliseconds
};

struct LabelFigures {
  std::string label;
  std::size_t images = 0;   // images in the index with this label
  std::size_t queries = 0;  // of them, evaluated as queries
  double precision_at_10 = 0;  // mean over those queries, HNSW ranking
  double ap = 0;               // mean AP over those queries, HNSW ranking
};

struct QueryFigures {
  std::uint32_t id = 0;  // index entry of the query image
  std::size_t relevant = 0;
  double ap = 0;               // HNSW ranking
  double precision_at_10 = 0;  // HNSW ranking
  std::vector<SearchHit> top;  // HNSW results, the query itself left out
};

struct ScoreHistogram {
  double lo = -1, hi = 1;          // bins split [lo, hi) evenly
  std::size_t depth = 0;           // results per query counted
  std::vector<std::uint64_t> relevant, not_relevant;
};

struct EvalReport {
  std::size_t images = 0;       // in the index
  std::size_t unlabelled = 0;   // images without a label: indexed, not queries
  std::size_t skipped = 0;      // labelled images whose label has no other member
  std::size_t eligible = 0;     // labelled images that could be queries
  std::size_t queries = 0;      // evaluated
  std::size_t labels = 0;       // distinct labels
  int depth = 0;                // HNSW results taken per query (largest k, at least 10)
  int ef = 0;                   // HNSW beam width used
  bool query_list = false;      // queries came from EvalOptions::query_ids
  QueryExpansion expansion;     // applied to every query
  std::vector<int> ks;
  std::vector<double> recall_levels;
  RankingFigures hnsw, exact;
  double ann_recall_at_10 = 0;  // HNSW top 10 against exact top 10, mean over queries
  LatencyFigures latency;       // index search per query
  std::vector<LabelFigures> per_label;  // worst AP first
  ScoreHistogram histogram;     // exact top `histogram_depth` of every query
  std::vector<QueryFigures> worst;      // lowest AP first
};

// Ranks every query exactly (blocked matrix products against all vectors, never an N x N
// matrix) and by HNSW (ImageIndex::search, one query at a time, timed). The HNSW ranking
// is HNSW's top `depth` followed by the rest in exact order (docs/eval.md).
EvalReport evaluate(const ImageIndex& index, const Labels& labels, const EvalOptions& options);

}  // namespace imgsearch
