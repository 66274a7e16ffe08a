// Self-contained HTML pages: inline CSS, inline SVG figures, thumbnails embedded as data
// URIs; no scripts, fonts or network access, so a page works wherever it is copied.
#pragma once

#include "imgsearch/duplicate_eval.h"
#include "imgsearch/evaluation.h"
#include "imgsearch/index.h"
#include "imgsearch/thumbnail.h"

#include <string>
#include <utility>
#include <vector>

namespace imgsearch {

struct ResultRow {
  int rank = 0;
  float score = 0;
  std::string path;
};

struct QueryResults {
  std::string query;  // path of the query image
  std::vector<ResultRow> results;
};

struct PageOptions {
  std::string title = "imgsearch";
  ThumbnailOptions thumbnails;
  // Key/value lines shown under the title (index, model, parameters).
  std::vector<std::pair<std::string, std::string>> facts;
};

// Each query image beside its results in a grid, each result with rank, score and path.
// An image that cannot be read is shown as a labelled blank, never an error.
std::string query_page_html(const std::vector<QueryResults>& queries, const PageOptions& options);

// The figures (HNSW and exact), the protocol, the per-label table, the histogram of
// relevant and non-relevant scores in the exact top results, the precision-recall curve,
// and the worst queries with their top results (up to 10 each), marked relevant or not.
std::string eval_page_html(const EvalReport& report, const ImageIndex& index, const Labels& labels,
                           const PageOptions& options);

// One group of `imgsearch dedup`, as shown: the keeper first.
struct DuplicateMemberRow {
  std::string path;
  bool keep = false;
  float score = 0;
  std::string signal;
};
using DuplicateGroupRows = std::vector<DuplicateMemberRow>;

// Each group's thumbnails side by side, the kept ones marked, each with score and signal.
std::string duplicates_page_html(const std::vector<DuplicateGroupRows>& groups, const PageOptions& options);

// `eval --duplicates`: the figures per method, recall per edit type, and the threshold
// sweeps of each signal as precision-recall curves (SVG) with the presets as points.
std::string duplicate_eval_page_html(const DuplicateEvalReport& report, const PageOptions& options);

// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string html_escape(const std::string& text);

// Writes the page atomically (temporary file, then rename). Throws Error(Io).
void write_html_file(const std::string& path, const std::string& html);

}  // namespace imgsearch
