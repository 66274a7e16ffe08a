// imgsearch dedup [PATH... | -i INDEX] [--preset exact|near|similar] [--threshold K=V]
//   [--format table|json|tsv|html] [--html FILE] [-o FILE] [--keep RULE] [--prefer DIR]
//   [--query IMAGE...] [--move-to DIR | --hardlink | --symlink | --delete --yes] [--undo MANIFEST]
#include "cli_common.h"

#include <imgsearch/dedup_actions.h>
#include <imgsearch/duplicates.h>
#include <imgsearch/error.h>
#include <imgsearch/file_scan.h>
#include <imgsearch/html_report.h>
#include <imgsearch/index_io.h>
#include <imgsearch/searcher.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace imgsearch::cli {

namespace {

struct DedupArgs {
  std::vector<std::string> inputs;
  std::string index;
  std::string preset = "near";
  std::vector<std::string> thresholds;
  std::string format = "table";
  std::string html, output;
  std::string keep = "largest";
  std::vector<std::string> prefer;
  std::vector<std::string> queries;
  int neighbours = 16;
  std::string move_to, manifest, undo;
  bool hardlink = false, symlink = false, remove = false, yes = false;
  int batch_size = 8;
  ModelArgs model;
};

std::string utc_stamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// The folder all these paths share, for --move-to to keep their layout below it.
std::string common_folder(const std::vector<std::string>& paths) {
  if (paths.empty()) return "/";
  std::string common = std::filesystem::path(paths[0]).parent_path().string();
  for (const std::string& p : paths) {
    while (!common.empty() && common != "/" && !path_is_under(p, common))
      common = std::filesystem::path(common).parent_path().string();
  }
  return common.empty() ? "/" : common;
}

int run_undo(const DedupArgs& args) {
  const DedupUndoReport r = undo_dedup_actions(args.undo);
  for (const std::string& p : r.problems) report_problem(p);
  std::fprintf(stderr, "undo: %zu entries, %zu restored, %zu already in place, %zu not restored\n", r.entries,
               r.restored, r.already_in_place, r.problems.size());
  return r.problems.empty() ? kExitOk : kExitPartial;
}

int run_queries(const DedupArgs& args, const ImageIndex& index, const std::string& index_path,
                const DedupThresholds& thresholds, std::ostream& out) {
  std::unique_ptr<Model> model = load_model_for_index(args.model, index.model(), index_path);
  Searcher searcher(index, *model, args.model.decode());
  const HashNeighbours hashes(index);
  const std::uint8_t collection_crowd = collection_crowding(index, thresholds);
  std::size_t failures = 0;
  for (const std::string& query : expand_stdin(args.queries)) {
    PairMatch best;
    std::uint32_t best_id = 0;
    try {
      DuplicateSignals signals;
      const Image image = searcher.decode_file_with_signals(query, signals);
      const std::vector<float> vector = searcher.embed(image);
      const std::vector<float> colour = searcher.colour_of(image);
      std::vector<std::uint32_t> candidates;
      SearchOptions so;
      so.k = std::max(1, args.neighbours);
      for (const SearchHit& hit : searcher.search(vector.data(), colour.data(), so)) candidates.push_back(hit.id);
      if (thresholds.hash_distance >= 0) {
        const int orientations = thresholds.orientations ? kOrientations : 1;
        for (int o = 0; o < orientations; ++o)
          for (const std::uint32_t id : hashes.within(signals.phash[o], std::min(thresholds.hash_distance, 15)))
            candidates.push_back(id);
      }
      for (std::uint32_t id = 0; id < index.size(); ++id)  // identical bytes: a linear scan of 8-byte hashes
        if (index.entry(id).signals.present && index.entry(id).signals.content_hash == signals.content_hash)
          candidates.push_back(id);
      // The crowd rule: the query's own crowds, and each candidate's (measured on demand).
      const std::uint8_t query_crowd =
          collection_crowd | crowding_of(index, thresholds, signals.present, signals.phash[0], vector.data());
      for (const std::uint32_t id : candidates) {
        PairMatch m = match_external(index, signals, vector.data(), id, thresholds, query_crowd);
        if (m.matched() && query_crowd == 0 && crowding_enabled(thresholds)) {
          const DuplicateSignals& cs = index.entry(id).signals;
          m = match_external(index, signals, vector.data(), id, thresholds, query_crowd,
                             crowding_of(index, thresholds, cs.present, cs.phash[0], index.model_vector(id)));
        }
        if (!m.matched()) continue;
        const bool stronger = !best.matched() || (m.signal == MatchSignal::Content) > (best.signal == MatchSignal::Content) ||
                              ((m.signal == MatchSignal::Content) == (best.signal == MatchSignal::Content) && m.score > best.score);
        if (stronger) {
          best = m;
          best_id = id;
        }
      }
    } catch (const Error& e) {
      report_problem(e.what());
      ++failures;
      continue;
    }
    const std::string found = best.matched() ? index.entry(best_id).path : "";
    if (args.format == "json") {
      nlohmann::json j{{"query", query}, {"duplicate", best.matched() ? nlohmann::json(found) : nlohmann::json(nullptr)}};
      if (best.matched()) {
        j["score"] = std::round(best.score * 10000.0) / 10000.0;
        j["signal"] = match_signal_name(best);
      }
      out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    } else {
      out << query << '\t' << (best.matched() ? found : "-") << '\t' << fmt::format("{:.4f}", best.score) << '\t'
          << match_signal_name(best) << '\n';
    }
    out.flush();
  }
  return failures ? kExitPartial : kExitOk;
}

void print_groups(const DedupArgs& args, const ImageIndex& index, const std::vector<DuplicateGroup>& groups,
                  std::ostream& out) {
  auto signal = [](const GroupMember& m) { return m.match.matched() ? match_signal_name(m.match) : std::string("keeper"); };
  auto score = [](const GroupMember& m) { return std::round(m.match.score * 10000.0) / 10000.0; };
  if (args.format == "json") {
    int number = 0;
    for (const DuplicateGroup& g : groups) {
      nlohmann::json j;
      j["group"] = ++number;
      j["members"] = nlohmann::json::array();
      for (const GroupMember& m : g.members)
        j["members"].push_back(
            {{"path", index.entry(m.id).path}, {"keep", m.keep}, {"score", score(m)}, {"signal", signal(m)}});
      out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
  } else if (args.format == "tsv") {
    out << "group\tpath\tkeep\tscore\tsignal\n";
    int number = 0;
    for (const DuplicateGroup& g : groups) {
      ++number;
      for (const GroupMember& m : g.members)
        out << number << '\t' << index.entry(m.id).path << '\t' << (m.keep ? "keep" : "duplicate") << '\t'
            << fmt::format("{:.4f}", m.match.score) << '\t' << signal(m) << '\n';
    }
  } else if (args.format == "table") {
    int number = 0;
    for (const DuplicateGroup& g : groups) {
      out << fmt::format("group {} ({} images)\n", ++number, g.members.size());
      for (const GroupMember& m : g.members)
        out << fmt::format("  {:<9}  {:>6.4f}  {:<16}  {}\n", m.keep ? "keep" : "duplicate", m.match.score, signal(m),
                           index.entry(m.id).path);
      out << '\n';
    }
  }
}

void write_html(const DedupArgs& args, const ImageIndex& index, const std::vector<DuplicateGroup>& groups,
                const std::string& path, const std::string& index_path) {
  std::vector<DuplicateGroupRows> rows;
  for (const DuplicateGroup& g : groups) {
    DuplicateGroupRows r;
    for (const GroupMember& m : g.members)
      r.push_back({index.entry(m.id).path, m.keep, m.match.score,
                   m.match.matched() ? match_signal_name(m.match) : std::string("keeper")});
    rows.push_back(std::move(r));
  }
  PageOptions page;
  page.title = "imgsearch dedup";
  std::size_t duplicates = 0;
  for (const DuplicateGroup& g : groups)
    for (const GroupMember& m : g.members) duplicates += !m.keep;
  page.facts = {{"index", index_path},
                {"images", std::to_string(index.size())},
                {"preset", args.preset},
                {"keep", args.keep},
                {"groups", std::to_string(groups.size())},
                {"duplicates", std::to_string(duplicates)}};
  write_html_file(path, duplicates_page_html(rows, page));
}

int run_dedup(DedupArgs args) {
  if (!args.undo.empty()) return run_undo(args);
  const int actions = !args.move_to.empty() + args.hardlink + args.symlink + args.remove;
  if (actions > 1) throw_error(ErrorKind::InvalidArgument, "dedup: give at most one of --move-to, --hardlink, --symlink, --delete");
  if (args.remove && !args.yes)
    throw_error(ErrorKind::InvalidArgument,
                "dedup: --delete removes files for good; add --yes to confirm (or use --move-to DIR, which --undo can reverse)");
  if (actions && !args.queries.empty()) throw_error(ErrorKind::InvalidArgument, "dedup: --query does not act on files");
  if (args.format == "html" && args.html.empty() && args.output.empty())
    throw_error(ErrorKind::InvalidArgument, "dedup: --format html needs -o FILE (or use --html FILE)");

  DedupThresholds thresholds = dedup_preset(args.preset);
  for (const std::string& spec : args.thresholds) apply_threshold_override(thresholds, spec);
  const GroupingOptions grouping{parse_keep_rule(args.keep), [&] {
                                   std::vector<std::string> dirs;
                                   for (const std::string& d : args.prefer) dirs.push_back(absolute_path(d));
                                   return dirs;
                                 }()};

  const std::string index_path = resolve_index_path(args.index);
  bool partial = false;
  if (!args.inputs.empty()) {
    install_interrupt_handler();
    const int rc = update_index(args.inputs, index_path, args.model, args.batch_size, stderr);
    if (rc == kExitFailure || rc == kExitInterrupted) return rc;
    partial = rc == kExitPartial;
  }
  const ImageIndex index = load_index(index_path);
  if (const std::size_t without = index.size() - index.signals_count(); without > 0)
    warn(fmt::format("{}: {} of {} images have no duplicate signals (indexed by an older imgsearch); they are compared "
                     "by embedding only. `imgsearch index` on their folders adds them",
                     index_path, without, index.size()));
  else if (const std::size_t no_thumb = static_cast<std::size_t>(std::count_if(
               index.entries().begin(), index.entries().end(), [](const IndexEntry& e) { return e.signals.thumbnail.empty(); }));
           no_thumb > 0 && thresholds.crop_ncc <= 1.0f)
    warn(fmt::format("{}: {} of {} images have no crop thumbnail (indexed by an older imgsearch); crops of them are "
                     "not found. `imgsearch index` on their folders adds it",
                     index_path, no_thumb, index.size()));

  std::ofstream file;
  std::ostream* out = &std::cout;
  if (!args.output.empty() && args.format != "html") {
    file.open(args.output);
    IMGSEARCH_CHECK(file, ErrorKind::Io, "{}: cannot create: {}", args.output, std::strerror(errno));
    out = &file;
  }
  if (!args.queries.empty()) {
    const int rc = run_queries(args, index, index_path, thresholds, *out);
    return partial && rc == kExitOk ? kExitPartial : rc;
  }

  DedupOptions options;
  options.thresholds = thresholds;
  options.neighbours = args.neighbours;
  options.threads = args.model.threads;
  SignalCrowding crowding;
  const std::vector<CandidatePair> pairs = find_duplicate_pairs(index, options, &crowding);
  const std::vector<DuplicateGroup> groups = group_duplicates(index, pairs, thresholds, grouping, &crowding);
  print_groups(args, index, groups, *out);
  if (args.format == "html") write_html(args, index, groups, args.output, index_path);
  if (!args.html.empty()) write_html(args, index, groups, args.html, index_path);
  std::size_t duplicates = 0;
  std::uint64_t bytes = 0;
  for (const DuplicateGroup& g : groups)
    for (const GroupMember& m : g.members)
      if (!m.keep) {
        ++duplicates;
        bytes += index.entry(m.id).size;
      }
  std::fprintf(stderr, "%zu groups, %zu duplicates (%.1f MB) among %zu images\n", groups.size(), duplicates,
               bytes / 1e6, index.size());

  if (actions) {
    DedupActionOptions a;
    a.action = !args.move_to.empty() ? DedupAction::Move
               : args.hardlink       ? DedupAction::Hardlink
               : args.symlink        ? DedupAction::Symlink
                                     : DedupAction::Delete;
    a.index_path = absolute_path(index_path);
    a.manifest = args.manifest.empty() ? "imgsearch-dedup-" + utc_stamp() + ".json" : args.manifest;
    if (a.action == DedupAction::Move) {
      a.move_to = absolute_path(args.move_to);
      std::vector<std::string> paths;
      for (const DuplicateGroup& g : groups)
        for (const GroupMember& m : g.members) paths.push_back(index.entry(m.id).path);
      a.layout_root = common_folder(paths);
    }
    std::fprintf(stderr, "manifest: %s (undo with: imgsearch dedup --undo %s)\n", a.manifest.c_str(), a.manifest.c_str());
    const DedupActionReport r = apply_dedup_actions(index, groups, a);
    for (const std::string& p : r.problems) report_problem(p);
    std::fprintf(stderr, "%s: %zu of %zu files done, %zu left alone", dedup_action_name(a.action), r.done, r.planned,
                 r.problems.size());
    if (r.not_identical)
      std::fprintf(stderr, ", %zu not byte-identical to another member (never linked)", r.not_identical);
    std::fprintf(stderr, "\n");
    if (!r.problems.empty()) partial = true;
  }
  return partial ? kExitPartial : kExitOk;
}

}  // namespace

void setup_dedup(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<DedupArgs>();
  app.add_option("paths", args->inputs, "folders and files: indexed (or the index brought up to date) first");
  app.add_option("-i,--index", args->index, "index file (default: $IMGSEARCH_INDEX, then ./imgsearch.index)");
  app.add_option("--preset", args->preset, "exact (identical bytes), near (default: edited copies) or similar")
      ->check(CLI::IsMember({"exact", "near", "similar"}));
  app.add_option("--threshold", args->thresholds,
                 "override a preset's threshold: phash=N (Hamming, 0..15), phash-cnn=X, close-phash=N and far-phash-cnn=X (the cosine "
                 "a hash match farther than N bits needs), cnn=X (cosine), weak-phash=N and weak-cnn=X "
                 "(both must hold), cap-phash=N and cap-cnn=X (what any two members of a group must pass), centre=X, orientations=0|1, "
                 "crowd-phash=N, crowd-phash-limit=N, crowd-cnn=X, crowd-cnn-limit=N, crowd-fraction=X, crowded-phash=N, crowded-cnn=X "
                 "(the crowd rule for catalogues), crop=X, crop-fine-floor=X, crop-fine=X, crop-cnn=X, cap-crop=X, cap-crop-drop=X, "
                 "cap-crop-drop-ncc=X (the crop signal); repeatable (docs/dedup.md)");
  app.add_option("--format", args->format, "table (default), json (one line per group), tsv or html")
      ->check(CLI::IsMember({"table", "json", "tsv", "html"}));
  app.add_option("--html", args->html, "also write a self-contained HTML page of the groups here");
  app.add_option("-o,--output", args->output, "write the report here instead of stdout");
  app.add_option("--keep", args->keep, "which member to keep: largest (file size, default), oldest, newest, first-path")
      ->check(CLI::IsMember({"largest", "oldest", "newest", "first-path"}));
  app.add_option("--prefer", args->prefer, "files under this folder are kept first and never proposed for removal; repeatable");
  app.add_option("--query", args->queries, "is this image already in the index? one line each ('-' reads stdin)");
  app.add_option("--neighbours", args->neighbours, "embedding neighbours examined per image (default 16)")
      ->check(CLI::Range(0, 1000));
  app.add_option("--move-to", args->move_to, "move duplicates below this folder, keeping their layout");
  app.add_flag("--hardlink", args->hardlink, "replace byte-identical copies by hard links (to the keeper, or the first identical member)");
  app.add_flag("--symlink", args->symlink, "replace byte-identical copies by symbolic links (as --hardlink)");
  app.add_flag("--delete", args->remove, "delete duplicates (needs --yes)");
  app.add_flag("--yes", args->yes, "confirm --delete");
  app.add_option("--manifest", args->manifest, "where the action's manifest goes (default ./imgsearch-dedup-TIME.json)");
  app.add_option("--undo", args->undo, "restore what a manifest lists");
  app.add_option("--batch-size", args->batch_size, "images per forward pass when indexing (default 8)")
      ->check(CLI::Range(1, 1024));
  args->model.add_to(app);
  app.callback([&runner, args] { runner = [args] { return run_dedup(*args); }; });
}

}  // namespace imgsearch::cli
