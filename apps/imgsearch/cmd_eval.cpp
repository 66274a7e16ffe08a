// imgsearch eval PATH... | -i INDEX [--labels CSV --id-column COL --label-column COL[+COL...]]
//                [-k 1,5,10,20] [--queries N --seed S] [--ef N] [--json] [--html FILE]
// Protocol and output: docs/eval.md.
#include "cli_common.h"

#include <imgsearch/duplicate_eval.h>
#include <imgsearch/error.h>
#include <imgsearch/evaluation.h>
#include <imgsearch/file_scan.h>
#include <imgsearch/html_report.h>
#include <imgsearch/index_io.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>
#include <sstream>

namespace imgsearch::cli {

namespace {

struct EvalArgs {
  std::vector<std::string> inputs;
  std::string index;
  std::string labels_csv;
  std::string id_column = "id";
  std::string label_column;
  std::vector<int> ks{1, 5, 10, 20};
  std::size_t queries = 0;
  std::uint64_t seed = 1;
  std::string query_list;
  std::string metric;          // "ns": always report UKBench's N-S score
  double holdout = 0;          // > 0: only the images `learn --holdout F --seed S` held out
  int qe = -1;                 // -1: the index's stored default
  float qe_alpha = -1;
  int dba = -1;                // -1: as stored; else augment in memory before evaluating
  float dba_alpha = 3;
  int ef = 0;
  bool json = false;
  std::string html;
  std::string duplicates;  // a duplicate ground truth: measure dedup instead of retrieval
  std::vector<std::string> dedup_thresholds;  // one more setting measured: near + these
  int per_label_rows = 30;
  int batch_size = 8;
  ModelArgs model;
};

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep)) out.push_back(part);
  return out;
}

std::string k_key(int k) { return fmt::format("P@{}", k); }

nlohmann::json figures_json(const RankingFigures& f) {
  nlohmann::json j;
  j["mAP"] = f.map;
  for (const auto& [k, p] : f.precision_at) j[k_key(k)] = p;
  j["R-precision"] = f.r_precision;
  if (f.ns >= 0) j["N-S"] = f.ns;
  return j;
}

nlohmann::json post_processing_json(const ImageIndex& index, const EvalReport& report) {
  nlohmann::json j;
  j["query_expansion"] = report.expansion.enabled()
                             ? nlohmann::json{{"k", report.expansion.k}, {"alpha", report.expansion.alpha}}
                             : nlohmann::json(nullptr);
  const Augmentation& a = index.augmentation();
  j["augmentation"] = a.enabled() ? nlohmann::json{{"k", a.k}, {"alpha", a.alpha}} : nlohmann::json(nullptr);
  const Projection& p = index.projection();
  j["projection"] = p.enabled() ? nlohmann::json{{"in_dim", p.in_dim}, {"out_dim", p.out_dim}} : nlohmann::json(nullptr);
  if (p.has_hidden_layer()) j["projection"]["hidden"] = p.hidden;
  if (p.uses_colour()) {
    j["projection"]["colour_bins"] = p.colour_bins;
    j["projection"]["colour_weight"] = p.colour_weight;
  }
  return j;
}

std::string post_processing_text(const ImageIndex& index, const EvalReport& report) {
  std::string out;
  if (index.projection().enabled())
    out += fmt::format("projection {}{}{} -> {}", index.projection().in_dim,
                       index.projection().uses_colour() ? " + colour" : "",
                       index.projection().has_hidden_layer() ? fmt::format(" -> {} hidden", index.projection().hidden) : "",
                       index.projection().out_dim);
  if (index.augmentation().enabled())
    out += fmt::format("{}augmentation k {} alpha {:g}", out.empty() ? "" : ", ", index.augmentation().k,
                       index.augmentation().alpha);
  if (report.expansion.enabled())
    out += fmt::format("{}query expansion k {} alpha {:g}", out.empty() ? "" : ", ", report.expansion.k,
                       report.expansion.alpha);
  return out.empty() ? "none" : out;
}

// An index's precision is not recorded in the file; when eval indexed the folders itself
// it knows the precision it extracted with.
std::string precision_text(const EvalArgs& args, const ModelInfo& model) {
  if (args.inputs.empty()) return "not recorded in the index";
  return to_string(resolve_precision(parse_precision(args.model.precision), model));
}

std::string model_text(const ModelInfo& m) {
  std::string name = m.name.empty() ? "?" : m.name;
  if (!m.weights.empty()) name += " (" + m.weights + ")";
  return name;
}

std::string percent(double v) { return fmt::format("{:.1f}", 100 * v); }

int run_duplicate_eval(const EvalArgs& args, const ImageIndex& index, const std::string& index_path, int status) {
  const DuplicateTruth truth = load_duplicate_truth(args.duplicates, index);
  if (!truth.missing.empty())
    warn(fmt::format("{}: {} of {} paths are not in the index (first: {}); their pairs are left out", args.duplicates,
                     truth.missing.size(), truth.listed, truth.missing.front()));
  if (index.signals_count() < index.size())
    warn(fmt::format("{}: {} images have no duplicate signals; run `imgsearch index` on their folders",
                     index_path, index.size() - index.signals_count()));
  std::vector<std::pair<std::string, DedupThresholds>> extra;
  if (!args.dedup_thresholds.empty()) {
    DedupThresholds t = dedup_preset("near");
    std::string name = "near";
    for (const std::string& spec : args.dedup_thresholds) {
      apply_threshold_override(t, spec);
      name += " " + spec;
    }
    extra.emplace_back(name, t);
  }
  const DuplicateEvalReport report = evaluate_duplicates(index, truth, 64, args.model.threads, extra);
  // Recall over the (original, edited copy) pairs alone: what per-edit recall adds up to.
  auto original_recall = [](const DuplicateMethodResult& m) {
    std::size_t pairs = 0, found = 0;
    for (const EditRecall& e : m.per_edit) {
      pairs += e.pairs;
      found += e.found;
    }
    return pairs ? double(found) / pairs : 0.0;
  };
  auto figures_json = [](const PairFigures& f) {
    return nlohmann::json{{"predicted", f.predicted}, {"correct", f.correct}, {"precision", f.precision},
                          {"recall", f.recall}, {"f1", f.f1}};
  };
  if (args.json) {
    nlohmann::json j;
    j["index"] = absolute_path(index_path);
    j["ground_truth"] = absolute_path(args.duplicates);
    j["images"] = report.images;
    j["truth_pairs"] = report.truth_pairs;
    j["methods"] = nlohmann::json::array();
    for (const DuplicateMethodResult& m : report.methods) {
      nlohmann::json jm = figures_json(m.figures);
      jm["name"] = m.name;
      jm["grouped"] = m.grouped;
      jm["original_copy_recall"] = original_recall(m);
      jm["per_edit"] = nlohmann::json::object();
      for (const EditRecall& e : m.per_edit)
        jm["per_edit"][e.edit] = {{"pairs", e.pairs}, {"found", e.found}, {"recall", e.pairs ? double(e.found) / e.pairs : 0.0}};
      j["methods"].push_back(jm);
    }
    j["sweep"] = nlohmann::json::array();
    for (const SweepPoint& p : report.sweep) {
      nlohmann::json jp = figures_json(p.figures);
      jp["signal"] = p.signal;
      jp["threshold"] = p.threshold;
      j["sweep"].push_back(jp);
    }
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else {
    std::string out = fmt::format("index: {} ({} images); ground truth: {} ({} true pairs)\n\n", index_path,
                                  report.images, args.duplicates, report.truth_pairs);
    out += fmt::format("{:<30}{:>10}{:>9}{:>11}{:>8}{:>8}{:>14}\n", "method", "predicted", "correct", "precision",
                       "recall", "F1", "orig-recall");
    for (const DuplicateMethodResult& m : report.methods)
      out += fmt::format("{:<30}{:>10}{:>9}{:>11.4f}{:>8.4f}{:>8.4f}{:>14.4f}\n", m.name, m.figures.predicted,
                         m.figures.correct, m.figures.precision, m.figures.recall, m.figures.f1, original_recall(m));
    out += "(precision, recall, F1: all true pairs, copies with copies too; orig-recall: (original, edited copy) pairs)\n";
    if (!report.methods.empty() && !report.methods.front().per_edit.empty()) {
      out += "\nrecall (%) per edit type, pairs (original, edited copy):\n";
      out += fmt::format("{:<22}{:>6}", "edit", "pairs");
      std::vector<std::string> heads;
      for (const DuplicateMethodResult& m : report.methods) {
        std::string h = m.name;
        if (h.rfind("preset ", 0) == 0) h = h.substr(7);
        h = h.substr(0, h.find(" ("));
        h = h.substr(0, 12);
        out += fmt::format("{:>13}", h);
      }
      out += "\n";
      const auto& edits = report.methods.front().per_edit;
      for (std::size_t e = 0; e < edits.size(); ++e) {
        out += fmt::format("{:<22}{:>6}", edits[e].edit, edits[e].pairs);
        for (const DuplicateMethodResult& m : report.methods)
          out += fmt::format("{:>13}", percent(m.per_edit[e].pairs ? double(m.per_edit[e].found) / m.per_edit[e].pairs : 0));
        out += "\n";
      }
    }
    out += "\nthreshold sweep (signal alone, no grouping):\n";
    out += fmt::format("{:<8}{:>10}{:>10}{:>11}{:>8}{:>8}\n", "signal", "threshold", "predicted", "precision", "recall", "F1");
    for (const SweepPoint& p : report.sweep)
      out += fmt::format("{:<8}{:>10}{:>10}{:>11.4f}{:>8.4f}{:>8.4f}\n", p.signal,
                         p.signal == "cnn" ? fmt::format(">= {:.2f}", p.threshold) : fmt::format("<= {:.0f}", p.threshold),
                         p.figures.predicted, p.figures.precision, p.figures.recall, p.figures.f1);
    std::cout << out;
  }
  std::cout.flush();
  if (!args.html.empty()) {
    PageOptions page;
    page.title = "imgsearch eval --duplicates: " + std::filesystem::path(index_path).filename().string();
    page.facts = {{"index", absolute_path(index_path)},
                  {"images", std::to_string(report.images)},
                  {"ground truth", absolute_path(args.duplicates)},
                  {"true pairs", std::to_string(report.truth_pairs)}};
    write_html_file(args.html, duplicate_eval_page_html(report, page));
  }
  return status;
}

int run_eval(const EvalArgs& args) {
  install_interrupt_handler();
  const std::string index_path = resolve_index_path(args.index);
  if (!args.labels_csv.empty() && args.label_column.empty())
    throw_error(ErrorKind::InvalidArgument, "eval: --labels needs --label-column COL (or COL+COL...)");
  if (args.labels_csv.empty() && !args.label_column.empty())
    throw_error(ErrorKind::InvalidArgument, "eval: --label-column needs --labels CSV");

  int status = kExitOk;
  if (!args.inputs.empty()) {
    // Same as `imgsearch index PATH... -i INDEX`: reuses what is up to date.
    status = update_index(args.inputs, index_path, args.model, args.batch_size, stderr);
    if (status != kExitOk && status != kExitPartial) return status;
  }
  IndexLoadOptions load_options = search_load_options();
  load_options.duplicate_thumbnails = !args.duplicates.empty();  // the crop signal
  load_options.model_vectors_in_memory = true;                      // every image is a query
  load_options.entries = IndexLoadOptions::Entries::Memory;  // labels come from the paths; --holdout removes entries
  ImageIndex index = load_index(index_path, load_options);
  if (!args.duplicates.empty()) return run_duplicate_eval(args, index, index_path, status);
  std::size_t held_back = 0;
  if (args.holdout > 0) {
    // Queries and database both: the index as if it held only the held-out images.
    held_back = index.remove_if([&](const IndexEntry& e) { return !is_held_out(e.path, args.holdout, args.seed); },
                                args.model.threads);
    IMGSEARCH_CHECK(index.size() > 0, ErrorKind::InvalidArgument,
                    "eval: --holdout {} --seed {} holds out none of the {} images", args.holdout, args.seed, held_back);
  }
  if (args.dba >= 0) {
    Augmentation augmentation;
    augmentation.k = args.dba;
    augmentation.alpha = args.dba_alpha;
    index.set_augmentation(augmentation, args.model.threads);
  }
  Labels labels;
  std::string label_source;
  std::vector<std::string> label_columns;
  if (args.labels_csv.empty()) {
    labels = labels_from_parent_folder(index);
    label_source = "parent folder";
  } else {
    label_columns = split(args.label_column, '+');
    labels = labels_from_csv(index, args.labels_csv, args.id_column, label_columns);
    label_source = fmt::format("{} ({} by {})", args.labels_csv, args.label_column, args.id_column);
  }

  EvalOptions options;
  options.ks = args.ks;
  std::sort(options.ks.begin(), options.ks.end());
  options.ks.erase(std::unique(options.ks.begin(), options.ks.end()), options.ks.end());
  options.queries = args.queries;
  options.seed = args.seed;
  options.ef = args.ef;
  if (!args.query_list.empty()) options.query_ids = read_query_list(index, args.query_list);
  options.ns_score = args.metric == "ns";
  if (args.qe >= 0 || args.qe_alpha >= 0) {
    QueryExpansion qe = index.query_expansion();
    if (args.qe >= 0) qe.k = args.qe;
    if (args.qe_alpha >= 0) qe.alpha = args.qe_alpha;
    check_expansion_settings(qe.k, qe.alpha, "eval --qe");
    options.expansion = qe;
  }
  options.threads = args.model.threads;
  options.cancel = &interrupted();
  Progress progress("evaluating", 1000);
  std::size_t shown = 0;
  options.progress = [&](std::size_t done, std::size_t total) {
    const std::size_t permille = total ? done * 1000 / total : 1000;
    if (permille > shown) progress.tick(permille - shown);
    shown = std::max(shown, permille);
  };
  const EvalReport report = evaluate(index, labels, options);
  progress.finish();

  const ModelInfo& m = index.model();
  const HnswParams& h = index.params();
  const std::string precision = precision_text(args, m);
  const bool sampled = report.queries < report.eligible;

  if (args.json) {
    nlohmann::json j;
    j["queries"] = report.queries;
    j["skipped"] = report.skipped;
    j["unlabelled"] = report.unlabelled;
    j["images"] = report.images;
    j["labels"] = report.labels;
    j["mAP"] = report.hnsw.map;
    for (const auto& [k, p] : report.hnsw.precision_at) j[k_key(k)] = p;
    j["R-precision"] = report.hnsw.r_precision;
    if (report.hnsw.ns >= 0) j["N-S"] = report.hnsw.ns;
    j["exact"] = figures_json(report.exact);
    j["post_processing"] = post_processing_json(index, report);
    j["query_list"] = args.query_list.empty() ? nlohmann::json(nullptr) : nlohmann::json(absolute_path(args.query_list));
    j["holdout"] = args.holdout > 0 ? nlohmann::json{{"fraction", args.holdout}, {"seed", args.seed}, {"left_out", held_back}}
                                    : nlohmann::json(nullptr);
    j["ann_recall@10"] = report.ann_recall_at_10;
    j["latency_ms"] = {{"p50", report.latency.p50},
                       {"p95", report.latency.p95},
                       {"p99", report.latency.p99},
                       {"mean", report.latency.mean}};
    j["per_label"] = nlohmann::json::array();
    for (const LabelFigures& f : report.per_label)
      j["per_label"].push_back(
          {{"label", f.label}, {"images", f.images}, {"queries", f.queries}, {"P@10", f.precision_at_10}, {"AP", f.ap}});
    j["pr_curve"] = {{"recall", report.recall_levels},
                     {"hnsw", report.hnsw.pr_curve},
                     {"exact", report.exact.pr_curve}};
    j["index"] = absolute_path(index_path);
    j["model"] = {{"name", m.name}, {"weights", m.weights}, {"path", m.path}, {"content_hash", m.content_hash}};
    j["dimension"] = index.dim();
    j["precision"] = precision;
    j["hnsw"] = {{"M", h.M}, {"ef_construction", h.ef_construction}, {"ef_search", report.ef}, {"depth", report.depth}};
    nlohmann::json ls = {{"source", args.labels_csv.empty() ? "parent folder" : "csv"}};
    if (!args.labels_csv.empty()) {
      ls["csv"] = absolute_path(args.labels_csv);
      ls["id_column"] = args.id_column;
      ls["label_columns"] = label_columns;
    }
    j["label_source"] = ls;
    j["sample"] = sampled ? nlohmann::json{{"queries", report.queries}, {"of", report.eligible}, {"seed", args.seed}}
                          : nlohmann::json(nullptr);
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else {
    std::string out;
    out += fmt::format("index: {} ({} images, {}-d, model {}, precision {})\n", index_path, report.images, index.dim(),
                       model_text(m), precision);
    out += fmt::format("labels: {}; {} labels, {} images without a label (not queries), {} skipped (no other image "
                       "has their label)\n",
                       label_source, report.labels, report.unlabelled, report.skipped);
    out += fmt::format("protocol: {} queries{}{}; each left out of its own ranking; relevant = same label\n",
                       report.queries,
                       args.query_list.empty() ? "" : fmt::format(" from {}", args.query_list),
                       sampled ? fmt::format(" (a sample of {} with seed {})", report.eligible, args.seed) : "");
    if (args.holdout > 0)
      out += fmt::format("holdout: only the images held out by --holdout {:g} --seed {} ({} others left out)\n",
                         args.holdout, args.seed, held_back);
    out += fmt::format("post-processing: {}\n", post_processing_text(index, report));
    out += fmt::format("HNSW: M {}, ef_construction {}, ef {}; HNSW ranking = HNSW top {}, then the rest in exact "
                       "order; mAP and R-precision over the full ranking\n\n",
                       h.M, h.ef_construction, report.ef, report.depth);
    out += fmt::format("{:<16}{:>8}{:>8}\n", "metric", "HNSW", "exact");
    for (int k : report.ks)
      out += fmt::format("{:<16}{:>8.3f}{:>8.3f}\n", k_key(k), report.hnsw.precision_at.at(k),
                         report.exact.precision_at.at(k));
    out += fmt::format("{:<16}{:>8.3f}{:>8.3f}\n", "mAP", report.hnsw.map, report.exact.map);
    out += fmt::format("{:<16}{:>8.3f}{:>8.3f}\n", "R-precision", report.hnsw.r_precision, report.exact.r_precision);
    if (report.hnsw.ns >= 0)
      out += fmt::format("{:<16}{:>8.3f}{:>8.3f}\n", "N-S (top 4)", report.hnsw.ns, report.exact.ns);
    out += fmt::format("{:<16}{:>8.3f}\n", "ANN recall@10", report.ann_recall_at_10);
    out += fmt::format("search latency  p50 {:.3f} ms, p95 {:.3f} ms, p99 {:.3f} ms\n\n", report.latency.p50,
                       report.latency.p95, report.latency.p99);
    std::size_t width = 5;
    const std::size_t rows = std::min<std::size_t>(report.per_label.size(), static_cast<std::size_t>(args.per_label_rows));
    for (std::size_t i = 0; i < rows; ++i) width = std::max(width, report.per_label[i].label.size());
    out += fmt::format("per label, worst AP first:\n{:<{}}  {:>7}  {:>7}  {:>6}  {:>6}\n", "label", width, "images",
                       "queries", "P@10", "AP");
    for (std::size_t i = 0; i < rows; ++i) {
      const LabelFigures& f = report.per_label[i];
      out += fmt::format("{:<{}}  {:>7}  {:>7}  {:>6.3f}  {:>6.3f}\n", f.label, width, f.images, f.queries,
                         f.precision_at_10, f.ap);
    }
    if (rows < report.per_label.size())
      out += fmt::format("... {} more labels (--per-label N shows more; --json has all)\n",
                         report.per_label.size() - rows);
    std::cout << out;
  }
  std::cout.flush();

  if (!args.html.empty()) {
    PageOptions page;
    page.title = "imgsearch eval: " + std::filesystem::path(index_path).filename().string();
    page.facts = {{"index", absolute_path(index_path)},
                  {"images", std::to_string(report.images)},
                  {"model", model_text(m)},
                  {"dimension", std::to_string(index.dim())},
                  {"precision", precision},
                  {"labels", label_source},
                  {"HNSW", fmt::format("M {}, ef_construction {}, ef {}", h.M, h.ef_construction, report.ef)}};
    if (sampled)
      page.facts.emplace_back("sample", fmt::format("{} of {} queries, seed {}", report.queries, report.eligible, args.seed));
    write_html_file(args.html, eval_page_html(report, index, labels, page));
  }
  return status;
}

}  // namespace

void setup_eval(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<EvalArgs>();
  app.add_option("paths", args->inputs, "image folders to index first (reusing an up-to-date index) and evaluate");
  app.add_option("-i,--index", args->index, "index file (default: $IMGSEARCH_INDEX, then ./imgsearch.index)");
  app.add_option("--labels", args->labels_csv, "CSV mapping image ids (file names without extension) to labels "
                                               "(default: each image's parent folder is its label)");
  app.add_option("--id-column", args->id_column, "CSV column holding the image id (default id)");
  app.add_option("--label-column", args->label_column, "CSV label column, or COL+COL... to join several");
  app.add_option("-k", args->ks, "comma-separated k's for P@k (default 1,5,10,20)")
      ->delimiter(',')
      ->check(CLI::Range(1, 10000));
  app.add_option("--queries", args->queries, "evaluate a seeded random sample of this many queries (default: all)")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", args->seed, "seed for --queries and --holdout (default 1)");
  app.add_option("--query-list", args->query_list,
                 "only the images this file lists are queries (one path a line, relative to its folder)");
  app.add_option("--metric", args->metric, "ns: also report UKBench's N-S score (automatic when every label has 4 images)")
      ->check(CLI::IsMember({"ns"}));
  app.add_option("--holdout", args->holdout,
                 "evaluate only the images `learn --holdout F --seed S` held out (queries and database)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--qe", args->qe, "query expansion: the k best hits added to each query (0 = off; default: the index's)")
      ->check(CLI::Range(0, kMaxExpansionK));
  app.add_option("--qe-alpha", args->qe_alpha, "query expansion weight exponent (default: the index's, else 3)")
      ->check(CLI::Range(0.0, double(kMaxAlpha)));
  app.add_option("--dba", args->dba,
                 "evaluate as if indexed with `index --dba K` (in memory; 0 = without augmentation)")
      ->check(CLI::Range(0, kMaxExpansionK));
  app.add_option("--dba-alpha", args->dba_alpha, "augmentation weight exponent for --dba (default 3)")
      ->check(CLI::Range(0.0, double(kMaxAlpha)));
  app.add_option("--ef", args->ef, "HNSW search beam width (default: the index's; at least the largest k + 1)")
      ->check(CLI::Range(1, 100000));
  app.add_flag("--json", args->json, "print one JSON object (keys in docs/eval.md)");
  app.add_option("--html", args->html, "also write a self-contained HTML report to FILE");
  app.add_option("--duplicates", args->duplicates,
                 "measure duplicate detection against this ground truth instead (CSV group,path[,edit] or "
                 "path_a,path_b; JSON groups): pair precision/recall per preset, per signal, per edit, sweeps")
      ->excludes("--labels");
  app.add_option("--threshold", args->dedup_thresholds,
                 "with --duplicates: also measure the near preset with these overrides (dedup --threshold syntax)");
  app.add_option("--per-label", args->per_label_rows, "labels shown in the table (default 30; --json has all)")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--batch-size", args->batch_size, "images per forward pass when indexing (default 8)")
      ->check(CLI::Range(1, 1024));
  args->model.add_to(app);
  app.callback([&runner, args] { runner = [args] { return run_eval(*args); }; });
}

}  // namespace imgsearch::cli
