// imgsearch index PATH... [-i INDEX] [-m MODEL] [--rebuild] [--from-features FILE]
#include "cli_common.h"

#include <imgsearch/colour_histogram.h>
#include <imgsearch/duplicate_signals.h>
#include <imgsearch/error.h>
#include <imgsearch/features_file.h>
#include <imgsearch/file_scan.h>
#include <imgsearch/index_io.h>
#include <imgsearch/index_lock.h>

#include <algorithm>
#include <csignal>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sys/stat.h>
#include <unordered_map>
#include <unordered_set>

namespace imgsearch::cli {

namespace {

struct IndexArgs {
  std::vector<std::string> inputs;
  std::string index;
  std::vector<std::string> from_features;  // one file, or the shards of `extract --shard`
  bool rebuild = false;
  int batch_size = 8;
  double wait_lock = 0;  // seconds to wait for another writer; 0 fails at once
  HnswParams hnsw;
  std::string vectors;  // --vectors: f32, f16, int8, or auto (also when empty)
  std::size_t int8_from = kDefaultInt8FromImages;  // --vectors auto's threshold (auto_int8_from)
  int dba = -1;  // -1: keep the index's; 0: off
  float dba_alpha = -1;
  int qe = -1;   // the stored query-expansion default; -1: keep
  float qe_alpha = -1;
  ModelArgs model;
  std::FILE* summary = stdout;  // where "added N, ..." goes (eval keeps stdout for its results)
};

bool file_identity(const std::string& path, IndexEntry& entry) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  entry.path = path;
  entry.size = static_cast<std::uint64_t>(st.st_size);
  entry.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return true;
}

// A writer killed while saving leaves "<index>.tmp-<pid>" behind. With the lock held no
// one else is writing this index, so any such file is stale.
void remove_stale_temporaries(const std::string& index_path) {
  namespace fs = std::filesystem;
  const fs::path p(index_path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const std::string prefix = p.filename().string() + ".tmp-";
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > prefix.size() && name.rfind(prefix, 0) == 0 &&
        name.find_first_not_of("0123456789", prefix.size()) == std::string::npos) {
      std::error_code rm_ec;
      fs::remove(it->path(), rm_ec);
    }
  }
}

// True when `path` is `root` or lies below it.
bool is_under(const std::string& path, const std::string& root) {
  if (path == root) return true;
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
         (root.back() == '/' || path[root.size()] == '/');
}

// Links vectors into the graph with a progress bar (on a terminal): for large collections
// this is the long part of `index --from-features`, and of `index` after extraction. The
// bar starts at the first report, (0, total), when linking starts (with augmentation the
// total includes the existing entries re-linked).
void add_with_progress(ImageIndex& index, const std::vector<IndexEntry>& entries, const float* vectors, int threads) {
  if (entries.empty()) return;
  std::optional<Progress> progress;
  std::size_t shown = 0;
  index.add(entries, vectors, threads, [&](std::size_t done, std::size_t total) {
    if (!progress) progress.emplace("linking", total);
    if (done > shown) progress->tick(done - shown);
    shown = std::max(shown, done);
  });
  if (progress) progress->finish();
}

bool changes_post_processing(const IndexArgs& args) {
  return args.dba >= 0 || args.dba_alpha >= 0 || args.qe >= 0 || args.qe_alpha >= 0 || !args.vectors.empty();
}

// --vectors auto, or no --vectors: the encoding follows the index's size.
bool codes_automatic(const IndexArgs& args) { return args.vectors.empty() || args.vectors == "auto"; }

// The encoding a new index starts with: the user's, or f32 until apply_vector_codes sees
// how many images it will hold.
VectorCodes new_index_codes(const IndexArgs& args) {
  return codes_automatic(args) ? VectorCodes::F32 : parse_vector_codes(args.vectors);
}

// Before images are linked into the graph, with `images` what the index will hold after
// them. --vectors f32|f16|int8: the user's encoding, kept from then on. --vectors auto (or
// none given): an encoding nobody chose follows the index's size (automatic_vector_codes).
// A change re-links the graph over the new codes (the exact rows are in the file, so no
// model is needed).
void apply_vector_codes(const IndexArgs& args, ImageIndex& index, std::size_t images, std::FILE* summary) {
  const bool automatic = codes_automatic(args);
  if (!automatic) index.set_vector_codes_chosen(true);
  if (args.vectors == "auto") index.set_vector_codes_chosen(false);
  if (automatic && index.vector_codes_chosen()) return;
  const VectorCodes codes = automatic ? automatic_vector_codes(index.vector_codes(), images, args.int8_from)
                                      : parse_vector_codes(args.vectors);
  if (codes == index.vector_codes()) return;
  const char* from = vector_codes_name(index.vector_codes());
  const std::size_t relinked = index.size();
  index.set_vector_codes(codes, args.model.threads);
  std::string why = automatic ? fmt::format("--vectors auto: {} images, int8 from {}", images, args.int8_from) : "";
  if (relinked) why += fmt::format("{}graph re-linked over {} images", why.empty() ? "" : "; ", relinked);
  if (why.empty()) return;  // a new index given its encoding: nothing to report
  // A new (empty) index had no encoding to change from.
  const std::string change = relinked ? fmt::format("{} -> {}", from, vector_codes_name(codes)) : vector_codes_name(codes);
  std::fprintf(summary, "vectors: %s (%s)\n", change.c_str(), why.c_str());
}

// --dba / --qe: the post-processing stored with the index (refinement.h). Augmentation
// recomputes every neighbourhood only when its settings change.
void apply_post_processing(const IndexArgs& args, ImageIndex& index, std::FILE* summary) {
  if (args.dba >= 0 || args.dba_alpha >= 0) {
    Augmentation a = index.augmentation();
    if (args.dba >= 0) a.k = args.dba;
    if (args.dba_alpha >= 0) a.alpha = args.dba_alpha;
    check_expansion_settings(a.k, a.alpha, "index --dba");
    const Augmentation& now = index.augmentation();
    if (a.k != now.k || (a.enabled() && a.alpha != now.alpha)) {
      index.set_augmentation(a, args.model.threads);
      if (a.enabled())
        std::fprintf(summary, "augmentation: each vector now averaged with its %d nearest neighbours (alpha %g)\n", a.k,
                     static_cast<double>(a.alpha));
      else
        std::fprintf(summary, "augmentation: off\n");
    }
  }
  if (args.qe >= 0 || args.qe_alpha >= 0) {
    QueryExpansion q = index.query_expansion();
    if (args.qe >= 0) q.k = args.qe;
    if (args.qe_alpha >= 0) q.alpha = args.qe_alpha;
    index.set_query_expansion(q);
    if (q.enabled())
      std::fprintf(summary, "query expansion: every query adds its %d best hits (alpha %g) by default\n", q.k,
                   static_cast<double>(q.alpha));
    else
      std::fprintf(summary, "query expansion: off\n");
  }
}

// `index -i INDEX --dba K` (or --qe) alone: changes the stored settings, no images needed.
int index_settings_only(const IndexArgs& args, const std::string& index_path) {
  ImageIndex index = load_index(index_path);
  apply_vector_codes(args, index, index.size(), args.summary);
  apply_post_processing(args, index, args.summary);
  save_index(index, index_path);
  return kExitOk;
}

// Merges one or more features files (shards) into the index, one file at a time so that
// only one shard's vectors are in memory besides the index. Every file must come from the
// same model file (content hash) as the first and as an existing index.
int index_from_features(const IndexArgs& args, const std::string& index_path) {
  std::optional<ImageIndex> index;
  std::string model_source;  // what the first model came from, for the mismatch message
  if (!args.rebuild && std::filesystem::exists(index_path)) {
    index.emplace(load_index(index_path));
    model_source = index_path;
  }
  std::unordered_set<std::string> merged;  // paths taken from earlier files of this run
  std::size_t added = 0, updated = 0, duplicates = 0;
  for (const std::string& file : args.from_features) {
    FeatureSet features = read_features_file(file);
    if (!index) {
      index.emplace(features.dim, args.hnsw, features.model, new_index_codes(args));
      model_source = file;
    } else if (index->model().content_hash != features.model.content_hash || index->model_dim() != features.dim) {
      throw_error(ErrorKind::Mismatch,
                  "{}: holds features of model {} ({}, {}-d), but {} has model {} ({}, {}-d); features from different "
                  "models cannot be mixed{}",
                  file, features.model.path, features.model.content_hash, features.dim, model_source,
                  index->model().path, index->model().content_hash, index->model_dim(),
                  model_source == index_path ? " (use --rebuild to start a new index)" : "");
    } else if (index->model().descriptor != features.model.descriptor) {
      throw_error(ErrorKind::Mismatch,
                  "{}: holds {} descriptors, but {} has {}; descriptors cannot be mixed{}", file,
                  features.model.descriptor.name(), model_source, index->model().descriptor.name(),
                  model_source == index_path ? " (use --rebuild to start a new index)" : "");
    }
    std::unordered_map<std::string, std::size_t> position;
    for (std::size_t i = 0; i < features.size(); ++i) position[features.paths[i]] = i;
    std::size_t repeated = 0;  // the same image in an earlier file of this run: the later wins
    const std::size_t replaced = index->remove_if(
        [&](const IndexEntry& e) {
          if (!position.count(e.path)) return false;
          repeated += merged.count(e.path);
          return true;
        },
        args.model.threads);
    updated += replaced - repeated;
    duplicates += repeated;
    std::vector<IndexEntry> entries(features.size());
    for (std::size_t i = 0; i < features.size(); ++i) {
      // The images need not be on this machine: then size and mtime stay 0.
      if (!file_identity(features.paths[i], entries[i])) entries[i].path = features.paths[i];
      merged.insert(features.paths[i]);
    }
    // Shard by shard: a merge of shards smaller than the int8 threshold re-links once, at the
    // shard that crosses it.
    apply_vector_codes(args, *index, index->size() + entries.size(), stdout);
    add_with_progress(*index, entries, features.vectors.data(), args.model.threads);
    added += features.size() - replaced;
  }
  apply_post_processing(args, *index, stdout);
  if (duplicates)
    report_problem(fmt::format("{} images were in more than one features file; the later file's vectors were kept",
                               duplicates));
  save_index(*index, index_path);
  std::printf("added %zu, updated %zu, removed 0, unchanged %zu\n", added, updated, index->size() - merged.size());
  return kExitOk;
}

int run_index(IndexArgs args) {
  args.int8_from = auto_int8_from();  // a bad $IMGSEARCH_INT8_FROM fails before any work
  install_interrupt_handler();
  // Past `ulimit -f`, write() must fail with EFBIG (a clear error, the old index kept)
  // rather than the default SIGXFSZ killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  const std::string index_path = resolve_index_path(args.index);
  // One writer at a time, held from load to save (docs/formats.md, "Locking").
  const IndexLock lock(index_path, args.wait_lock);
  remove_stale_temporaries(index_path);
  if (!args.from_features.empty()) return index_from_features(args, index_path);
  if (args.inputs.empty() && changes_post_processing(args) && !args.rebuild) return index_settings_only(args, index_path);
  if (args.inputs.empty()) throw_error(ErrorKind::InvalidArgument, "index: give folders or files to index, or --from-features");

  std::optional<ImageIndex> index;
  if (!args.rebuild && std::filesystem::exists(index_path)) {
    try {
      index.emplace(load_index(index_path));
    } catch (const Error& e) {
      throw_error(e.kind(), "{} (run with --rebuild to start a new index)", e.what());
    }
  }

  std::unique_ptr<Model> model;
  if (index) {
    model = load_model_for_index(args.model, index->model(), index_path);
  } else {
    model = load_model(args.model);
    index.emplace(model->output_dim(), args.hnsw, model->info(), new_index_codes(args));
  }
  if (args.hnsw.ef_search != HnswParams{}.ef_search) index->set_default_ef(args.hnsw.ef_search);

  const std::vector<std::string> inputs = expand_stdin(args.inputs);
  ScanResult scan = collect_image_files(inputs);
  for (const ScanProblem& p : scan.problems) report_problem(p.path + ": " + p.reason);
  std::vector<std::string> roots;
  for (const std::string& input : inputs) roots.push_back(absolute_path(input));

  // Classify what is on disk against what the index holds.
  std::unordered_map<std::string, std::size_t> indexed;
  for (std::size_t i = 0; i < index->size(); ++i) indexed[index->entry(i).path] = i;
  std::unordered_set<std::string> on_disk;
  std::vector<IndexEntry> todo;  // new or changed files
  std::size_t unchanged = 0, updated = 0, unstatable = 0;
  std::unordered_set<std::string> stale;  // changed files: old vector goes
  for (const std::string& file : scan.files) {
    IndexEntry e;
    if (!file_identity(file, e)) {
      report_problem(file + ": cannot stat: " + std::strerror(errno));  // a dangling or looping symlink
      ++unstatable;
      continue;
    }
    on_disk.insert(file);
    auto it = indexed.find(file);
    if (it == indexed.end()) {
      todo.push_back(e);
    } else if (index->entry(it->second).size != e.size || index->entry(it->second).mtime_ns != e.mtime_ns) {
      todo.push_back(e);
      stale.insert(file);
      ++updated;
    } else {
      ++unchanged;
    }
  }
  // Gone: under a root we scanned but not found there, or no longer on disk at all.
  std::size_t removed = 0;
  index->remove_if(
      [&](const IndexEntry& e) {
        if (stale.count(e.path)) return true;
        bool gone = false;
        for (const std::string& root : roots)
          if (is_under(e.path, root) && !on_disk.count(e.path)) gone = true;
        if (!gone) {
          struct stat st {};
          gone = ::stat(e.path.c_str(), &st) != 0;
        }
        if (gone) ++removed;
        return gone;
      },
      args.model.threads);

  std::vector<IndexEntry> added_entries;
  std::vector<float> added_vectors;
  std::size_t failures = 0;
  if (!todo.empty()) {
    std::vector<std::string> files;
    for (const IndexEntry& e : todo) files.push_back(e.path);
    const int dim = index->model_dim();
    std::vector<char> ok(todo.size(), 0);
    std::vector<float> vectors(todo.size() * static_cast<std::size_t>(dim));
    failures = run_extraction(*model, files, args.model, args.batch_size, [&](const ExtractResult& r) {
      std::copy(r.vector, r.vector + dim, vectors.begin() + static_cast<std::ptrdiff_t>(r.input_index * dim));
      if (r.signals) todo[r.input_index].signals = *r.signals;
      if (r.colour) todo[r.input_index].colour = *r.colour;
      ok[r.input_index] = 1;
    });
    // Compact in place: the vectors are the big thing, never hold them twice.
    std::size_t n = 0;
    for (std::size_t i = 0; i < todo.size(); ++i) {
      if (!ok[i]) continue;
      if (n != i) std::copy_n(vectors.begin() + static_cast<std::ptrdiff_t>(i * dim), dim, vectors.begin() + static_cast<std::ptrdiff_t>(n * dim));
      added_entries.push_back(todo[i]);
      ++n;
    }
    vectors.resize(n * static_cast<std::size_t>(dim));
    added_vectors = std::move(vectors);
  }
  // Entries indexed before duplicate signals (or their crop thumbnail, DUPTHUMB) existed
  // get them now: a decode of each file, no model (docs/dedup.md). A file that cannot be
  // read keeps its entry, without signals.
  std::size_t signals_filled = 0;
  if (!interrupted()) {
    std::vector<std::size_t> missing;
    for (std::size_t id = 0; id < index->size(); ++id)
      if (!index->entry(id).signals.present || index->entry(id).signals.thumbnail.empty() ||
          index->entry(id).signals.fine_thumbnail.empty())
        missing.push_back(id);
    if (!missing.empty()) {
      std::vector<std::string> files;
      for (const std::size_t id : missing) files.push_back(index->entry(id).path);
      DecodeOptions decode = args.model.decode();
      decode.min_shorter_side = 2 * model->info().preprocess.resize;  // the pixels extraction sees
      Progress progress("duplicate signals", files.size());
      compute_duplicate_signals(files, decode, args.model.threads, &interrupted(),
                                [&](std::size_t i, const DuplicateSignals& s, const std::string& error) {
                                  progress.tick();
                                  if (!error.empty()) {
                                    warn(error + " (no duplicate signals for it)");
                                    return;
                                  }
                                  index->set_signals(missing[i], s);
                                  ++signals_filled;
                                });
      progress.finish();
    }
  }
  // The same for colour histograms (colour_histogram.h): a decode of each file, no model.
  std::size_t colour_filled = 0;
  if (!interrupted()) {
    std::vector<std::size_t> missing;
    for (std::size_t id = 0; id < index->size(); ++id)
      if (!index->colour(id)) missing.push_back(id);
    if (!missing.empty()) {
      std::vector<std::string> files;
      for (const std::size_t id : missing) files.push_back(index->entry(id).path);
      DecodeOptions decode = args.model.decode();
      decode.min_shorter_side = 2 * model->info().preprocess.resize;  // the pixels extraction sees
      Progress progress("colour histograms", files.size());
      compute_colour_histograms(files, decode, args.model.threads, &interrupted(),
                                [&](std::size_t i, const std::vector<float>& h, const std::string& error) {
                                  progress.tick();
                                  if (!error.empty()) {
                                    warn(error + " (no colour histogram for it)");
                                    return;
                                  }
                                  index->set_colour(missing[i], h);
                                  ++colour_filled;
                                });
      progress.finish();
      // A colour projection maps the filled-in entries differently now: re-apply it.
      if (colour_filled && index->projection().uses_colour()) index->set_projection(index->projection(), args.model.threads);
    }
  }
  std::size_t updated_ok = 0;
  for (const IndexEntry& e : added_entries) updated_ok += stale.count(e.path);
  apply_vector_codes(args, *index, index->size() + added_entries.size(), args.summary);
  add_with_progress(*index, added_entries, added_vectors.data(), args.model.threads);

  if (index->size() == 0) {
    if (interrupted()) {
      report_problem(fmt::format("interrupted before any image was extracted; {} not written", index_path));
      return kExitInterrupted;
    }
    report_problem(fmt::format("{}: nothing could be indexed; index not written", index_path));
    return kExitFailure;
  }
  apply_post_processing(args, *index, args.summary);
  save_index(*index, index_path);
  const std::size_t skipped = failures + unstatable + scan.problems.size();
  std::fprintf(args.summary, "added %zu, updated %zu, removed %zu, unchanged %zu", added_entries.size() - updated_ok,
               updated_ok, removed, unchanged);
  if (skipped) std::fprintf(args.summary, ", failed %zu", skipped);
  if (signals_filled) std::fprintf(args.summary, ", duplicate signals added to %zu", signals_filled);
  if (colour_filled) std::fprintf(args.summary, ", colour histograms added to %zu", colour_filled);
  std::fprintf(args.summary, "\n");
  std::fflush(args.summary);
  if (interrupted()) {
    report_problem(fmt::format("interrupted; {} kept what was extracted so far, run again to finish", index_path));
    return kExitInterrupted;
  }
  return skipped > 0 ? kExitPartial : kExitOk;
}

}  // namespace

int update_index(const std::vector<std::string>& inputs, const std::string& index_path, const ModelArgs& model,
                 int batch_size, std::FILE* summary) {
  IndexArgs args;
  args.inputs = inputs;
  args.index = index_path;
  args.model = model;
  args.batch_size = batch_size;
  args.summary = summary;
  return run_index(args);
}

void setup_index(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<IndexArgs>();
  app.add_option("paths", args->inputs, "image folders and files to index ('-' reads paths from stdin)");
  app.add_option("-i,--index", args->index, "index file (default: $IMGSEARCH_INDEX, then ./imgsearch.index)");
  app.add_option("--from-features", args->from_features,
                 "build from `imgsearch extract` outputs, without the model: one file, or the shards of "
                 "`extract --shard` (all from the same model file)")
      ->expected(1, -1);
  app.add_flag("--rebuild", args->rebuild, "ignore the existing index and start over");
  app.add_option("--wait-lock", args->wait_lock,
                 "when another imgsearch is writing this index, wait up to this many seconds (default 0: fail at once)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--batch-size", args->batch_size, "images per forward pass (default 8)")->check(CLI::Range(1, 1024));
  app.add_option("--hnsw-m", args->hnsw.M, "HNSW links per node (default 16)")->check(CLI::Range(2, 256));
  app.add_option("--ef-construction", args->hnsw.ef_construction, "HNSW build beam width (default 200)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--ef", args->hnsw.ef_search, "default HNSW search beam width stored in the index (default 64)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--vectors", args->vectors,
                 fmt::format("what the graph searches: f32, f16 or int8 codes, whose best candidates are rescored "
                             "with the exact float32 vectors of the index file; kept with the index, and changing it "
                             "re-links the graph. auto (the default): f32 until the index holds {} images "
                             "($IMGSEARCH_INT8_FROM), int8 from there, unless an encoding was chosen",
                             kDefaultInt8FromImages))
      ->check(CLI::IsMember({"auto", "f32", "f16", "int8"}));
  app.add_option("--dba", args->dba,
                 "database-side augmentation: store each vector averaged with its K nearest neighbours (0 = off; "
                 "kept with the index)")
      ->check(CLI::Range(0, kMaxExpansionK));
  app.add_option("--dba-alpha", args->dba_alpha, "augmentation weight exponent (default 3)")
      ->check(CLI::Range(0.0, double(kMaxAlpha)));
  app.add_option("--qe", args->qe, "default query expansion stored with the index: add the K best hits to each query "
                                   "and search again (0 = off)")
      ->check(CLI::Range(0, kMaxExpansionK));
  app.add_option("--qe-alpha", args->qe_alpha, "query expansion weight exponent (default 3)")
      ->check(CLI::Range(0.0, double(kMaxAlpha)));
  args->model.add_to(app);
  app.callback([&runner, args] { runner = [args] { return run_index(*args); }; });
}

}  // namespace imgsearch::cli
