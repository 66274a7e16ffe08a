// imgsearch query IMAGE... [-i INDEX] [-k 9] [--ef N] [--exact] [--json | --format table|tsv|json]
#include "cli_common.h"

#include <imgsearch/error.h>
#include <imgsearch/file_scan.h>
#include <imgsearch/html_report.h>
#include <imgsearch/index_io.h>
#include <imgsearch/searcher.h>

#include <nlohmann/json.hpp>

#include <future>
#include <iostream>

namespace imgsearch::cli {

namespace {

struct QueryArgs {
  std::vector<std::string> images;
  std::string index;
  int k = 9;
  int ef = 0;
  bool exact = false;
  int qe = -1;  // -1: the index's stored default
  float qe_alpha = -1;
  bool json = false;
  std::string format = "table";
  std::string html;  // also write a self-contained HTML page here
  ModelArgs model;
};

void print_results(const QueryArgs& args, const ImageIndex& index, const std::string& query,
                   const std::vector<SearchHit>& hits) {
  if (args.format == "json") {
    nlohmann::json out;
    out["query"] = query;
    out["results"] = nlohmann::json::array();
    for (std::size_t r = 0; r < hits.size(); ++r)
      out["results"].push_back({{"rank", r + 1}, {"path", index.path(hits[r].id)}, {"score", hits[r].score}});
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else if (args.format == "tsv") {
    for (std::size_t r = 0; r < hits.size(); ++r)
      std::cout << query << '\t' << r + 1 << '\t' << fmt::format("{:.6f}", hits[r].score) << '\t'
                << index.path(hits[r].id) << '\n';
  } else {
    std::cout << "query: " << query << '\n';
    std::cout << fmt::format("{:>5}  {:>7}  {}\n", "rank", "score", "path");
    for (std::size_t r = 0; r < hits.size(); ++r)
      std::cout << fmt::format("{:>5}  {:>7.4f}  {}\n", r + 1, hits[r].score, index.path(hits[r].id));
    std::cout << '\n';
  }
  std::cout.flush();  // answer each query as it comes, for pipelines reading line by line
}

int run_query(QueryArgs args) {
  if (args.json) args.format = "json";
  const std::string index_path = resolve_index_path(args.index);
  // The index (vectors, graph) loads on a second thread while the model loads here:
  // for one cold query these are the two big costs after the process start.
  const ModelInfo index_model = load_index_model(index_path);
  auto loading = std::async(std::launch::async, [&] { return load_index(index_path, query_load_options()); });
  // One image at a time gains little from a second thread, and OpenMP's spin-waiting
  // (a query does not restart itself with OMP_WAIT_POLICY=PASSIVE, to start fast) would
  // burn the other core: one inference thread unless --threads says otherwise.
  if (args.model.threads == 0) args.model.threads = 1;
  std::unique_ptr<Model> model;
  try {
    model = load_model_for_index(args.model, index_model, index_path);
  } catch (...) {
    loading.get();  // a broken index is the first thing to report; otherwise the model's error
    throw;
  }
  ImageIndex index = loading.get();
  Searcher searcher(index, *model, args.model.decode());
  SearchOptions search_options;
  search_options.k = args.k;
  search_options.ef = args.ef;
  search_options.exact = args.exact;
  if (args.qe >= 0 || args.qe_alpha >= 0) {
    QueryExpansion qe = index.query_expansion();
    if (args.qe >= 0) qe.k = args.qe;
    if (args.qe_alpha >= 0) qe.alpha = args.qe_alpha;
    search_options.expansion = qe;
  }

  std::size_t failures = 0, answered = 0;
  std::vector<QueryResults> page_queries;
  auto answer = [&](const std::string& query) {
    std::vector<float> vec, colour;
    try {
      const Image image = searcher.decode_file(query);
      vec = searcher.embed(image);
      colour = searcher.colour_of(image);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Model || e.kind() == ErrorKind::Mismatch) throw;  // every query would fail
      report_problem(e.what());
      ++failures;
      return;
    }
    const auto hits = searcher.search(vec.data(), colour.data(), search_options);
    print_results(args, index, query, hits);
    if (!args.html.empty()) {
      QueryResults page_query{absolute_path(query), {}};
      for (std::size_t r = 0; r < hits.size(); ++r)
        page_query.results.push_back({static_cast<int>(r + 1), hits[r].score, index.path(hits[r].id)});
      page_queries.push_back(std::move(page_query));
    }
    ++answered;
  };
  for (const std::string& q : args.images) {
    if (q != "-") {
      answer(q);
      continue;
    }
    // Stream: each line answered as soon as it is read, with the model loaded once.
    std::string line;
    while (std::getline(std::cin, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) answer(line);
    }
  }
  if (!args.html.empty() && answered > 0) {
    PageOptions page;
    page.title = fmt::format("imgsearch query: {} image{}", answered, answered == 1 ? "" : "s");
    page.facts = {{"index", absolute_path(index_path)},
                  {"model", index.model().name},
                  {"k", std::to_string(args.k)},
                  {"search", args.exact ? std::string("exact") : "HNSW"}};
    write_html_file(args.html, query_page_html(page_queries, page));
  }
  if (answered == 0 && failures > 0) return kExitFailure;
  return failures > 0 ? kExitPartial : kExitOk;
}

}  // namespace

void setup_query(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<QueryArgs>();
  app.add_option("images", args->images, "query images ('-' reads paths from stdin, one a line)")->required();
  app.add_option("-i,--index", args->index, "index file (default: $IMGSEARCH_INDEX, then ./imgsearch.index)");
  app.add_option("-k", args->k, "number of results (default 9)")->check(CLI::Range(1, 100000));
  app.add_option("--ef", args->ef, "HNSW search beam width (default: the index's, at least k)")->check(CLI::Range(1, 100000));
  app.add_flag("--exact", args->exact, "rank by brute force over every vector instead of HNSW");
  app.add_option("--qe", args->qe, "query expansion: add the K best hits to the query and search again (0 = off; "
                                   "default: the index's)")
      ->check(CLI::Range(0, kMaxExpansionK));
  app.add_option("--qe-alpha", args->qe_alpha, "query expansion weight exponent (default: the index's, else 3)")
      ->check(CLI::Range(0.0, double(kMaxAlpha)));
  app.add_flag("--json", args->json, "one JSON object per query image per line (same as --format json)");
  app.add_option("--format", args->format, "table (default), tsv (query, rank, score, path), or json")
      ->check(CLI::IsMember({"table", "tsv", "json"}));
  app.add_option("--html", args->html, "also write one self-contained HTML page (thumbnails embedded) to FILE");
  args->model.add_to(app);
  app.callback([&runner, args] { runner = [args] { return run_query(*args); }; });
}

}  // namespace imgsearch::cli
