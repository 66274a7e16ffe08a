// imgsearch learn -i INDEX --labels CSV --id-column COL --label-column COL[+COL...]
//                 [--method lda|head] [--dim N] [--shrinkage S] [--hidden N --epochs N]
//                 [--holdout F --seed S] [--colour auto|on|off --colour-weight W]
//                 | learn -i INDEX --pca --dim N [--sample N --seed S]
//                 | learn -i INDEX --reset
// Fits a projection on the labelled images (LDA, or a small trained head), or without
// labels on the directions that hold most of the vectors' energy (PCA, to save memory), and
// stores it with the index: docs/eval.md.
#include "cli_common.h"

#include <imgsearch/colour_histogram.h>
#include <imgsearch/error.h>
#include <imgsearch/evaluation.h>
#include <imgsearch/file_scan.h>
#include <imgsearch/index_io.h>
#include <imgsearch/index_lock.h>
#include <imgsearch/learn.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <iostream>
#include <sstream>

namespace imgsearch::cli {

namespace {

struct LearnArgs {
  std::string index;
  std::string labels_csv;
  std::string id_column = "id";
  std::string label_column;
  int dim = 0;  // 0: 64 for LDA, 128 for the head, 256 for PCA
  std::string method = "lda";
  int hidden = LearnOptions{}.hidden;
  int epochs = LearnOptions{}.epochs;
  bool head_options = false, lda_options = false;  // --hidden/--epochs, --shrinkage given
  bool pca = false;
  std::size_t sample = LearnOptions{}.max_fit_images;
  double shrinkage = LearnOptions{}.shrinkage;
  double holdout = 0;
  std::uint64_t seed = 1;
  std::string colour = "auto";
  double colour_weight = LearnOptions{}.colour_weight;
  bool reset = false;
  bool json = false;
  double wait_lock = 0;
  int threads = 0;
};

std::vector<std::string> split_columns(const std::string& text) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, '+')) out.push_back(part);
  return out;
}

// --colour auto: on when a label column is about colour (its name says colour or color);
// the histogram then improves the fit (docs/eval.md), and it only adds noise otherwise.
bool colour_column(const std::string& name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("colour") != std::string::npos || lower.find("color") != std::string::npos;
}

std::string megabytes(std::uint64_t bytes) { return fmt::format("{:.1f} MB", bytes / 1e6); }

// What every fit reports, PCA or LDA: as JSON fields, and as the text's last lines.
void add_report(nlohmann::json& out, const LearnReport& r, double total) {
  out["images"] = r.images;
  out["fitted"] = r.fitted;
  out["in_dim"] = r.in_dim;
  out["out_dim"] = r.out_dim;
  out["fit_seconds"] = r.fit_seconds;
  out["apply_seconds"] = r.apply_seconds;
  out["seconds"] = total;
  out["vector_bytes_before"] = r.vector_bytes_before;
  out["vector_bytes_after"] = r.vector_bytes_after;
}
void print_report_end(const LearnReport& r, double total) {
  std::printf("every stored vector and every query is projected from now on; new images too\n");
  std::printf("vectors searched: %s -> %s; the model's vectors stay in the file for `learn --reset`\n",
              megabytes(r.vector_bytes_before).c_str(), megabytes(r.vector_bytes_after).c_str());
  std::printf("time: fit %.1f s, projecting and rebuilding the graph %.1f s, %.1f s in all\n", r.fit_seconds,
              r.apply_seconds, total);
}

int run_pca(const LearnArgs& args, ImageIndex& index, const std::string& index_path) {
  LearnOptions options;
  options.dim = args.dim > 0 ? args.dim : 256;
  options.seed = args.seed;
  options.threads = args.threads;
  options.max_fit_images = args.sample;
  nlohmann::json description = {{"method", "pca"}, {"sample", args.sample}, {"seed", args.seed}};
  options.description = description.dump();
  const auto start = std::chrono::steady_clock::now();
  const LearnReport r = learn_pca(index, options);
  save_index(index, index_path);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (args.json) {
    add_report(description, r, total);
    description["energy_kept"] = r.energy_kept;
    std::cout << description.dump() << '\n';
    return kExitOk;
  }
  std::printf("learned a PCA projection %d -> %d dimensions from %zu of %zu images (no labels); it keeps %.1f %% of "
              "their vectors' energy\n",
              r.in_dim, r.out_dim, r.fitted, r.images, 100 * r.energy_kept);
  print_report_end(r, total);
  return kExitOk;
}

int run_learn(const LearnArgs& args) {
  std::signal(SIGXFSZ, SIG_IGN);
  const std::string index_path = resolve_index_path(args.index);
  if (args.reset && !args.labels_csv.empty())
    throw_error(ErrorKind::InvalidArgument, "learn: --reset takes no --labels");
  if (args.pca && (args.reset || !args.labels_csv.empty() || !args.label_column.empty()))
    throw_error(ErrorKind::InvalidArgument, "learn: --pca takes no labels and no --reset");
  if (args.pca && args.method != "lda")
    throw_error(ErrorKind::InvalidArgument, "learn: --pca takes no --method");
  if (args.method == "lda" && args.head_options)
    throw_error(ErrorKind::InvalidArgument, "learn: --hidden and --epochs are for --method head");
  if (args.method == "head" && args.lda_options)
    throw_error(ErrorKind::InvalidArgument, "learn: --shrinkage is for --method lda");
  if (!args.reset && !args.pca && (args.labels_csv.empty() || args.label_column.empty()))
    throw_error(ErrorKind::InvalidArgument, "learn: give --labels CSV and --label-column COL (or --pca, or --reset)");
  const IndexLock lock(index_path, args.wait_lock);
  ImageIndex index = load_index(index_path);

  if (args.reset) {
    if (!index.projection().enabled()) {
      std::printf("%s has no learned projection; nothing to reset\n", index_path.c_str());
      return kExitOk;
    }
    const int before = index.dim();
    index.set_projection(Projection{}, args.threads);
    save_index(index, index_path);
    std::printf("removed the learned projection: %zu images searched with the model's %d-d vectors again (was %d-d)\n",
                index.size(), index.dim(), before);
    return kExitOk;
  }

  if (args.pca) return run_pca(args, index, index_path);

  const std::vector<std::string> columns = split_columns(args.label_column);
  const Labels labels = labels_from_csv(index, args.labels_csv, args.id_column, columns);
  const bool head = args.method == "head";
  LearnOptions options;
  options.method = head ? LearnMethod::Head : LearnMethod::Lda;
  options.dim = args.dim > 0 ? args.dim : head ? 128 : 64;
  options.hidden = args.hidden;
  options.epochs = args.epochs;
  options.shrinkage = args.shrinkage;
  options.holdout = args.holdout;
  options.seed = args.seed;
  options.threads = args.threads;
  options.colour = args.colour == "on" ||
                   (args.colour == "auto" && std::any_of(columns.begin(), columns.end(), colour_column));
  options.colour_weight = args.colour_weight;
  nlohmann::json description = {{"method", args.method},
                                {"labels", absolute_path(args.labels_csv)},
                                {"id_column", args.id_column},
                                {"label_columns", columns},
                                {"holdout", args.holdout},
                                {"seed", args.seed}};
  if (head) {
    description["hidden"] = args.hidden;
  } else {
    description["shrinkage"] = args.shrinkage;
  }
  if (options.colour) {
    description["colour_bins"] = kColourBins;
    description["colour_weight"] = args.colour_weight;
  }
  options.description = description.dump();
  const auto start = std::chrono::steady_clock::now();
  const LearnReport r = learn_projection(index, labels, options);
  description = nlohmann::json::parse(index.projection().description);  // as stored: a head's adds "epochs"
  save_index(index, index_path);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (args.json) {
    add_report(description, r, total);
    description["labelled"] = r.labelled;
    description["held_out"] = r.held_out;
    description["label_count"] = r.labels;
    description["colour"] = options.colour;
    std::cout << description.dump() << '\n';
    return kExitOk;
  }
  if (head)
    std::printf("learned a head %d -> %d hidden units -> %d dimensions from %zu images with %zu labels (%s), %d epochs\n",
                r.in_dim, args.hidden, r.out_dim, r.fitted, r.labels, args.label_column.c_str(), r.epochs);
  else
    std::printf("learned an LDA projection %d -> %d dimensions from %zu images with %zu labels (%s), shrinkage %g\n",
                r.in_dim, r.out_dim, r.fitted, r.labels, args.label_column.c_str(), args.shrinkage);
  if (options.colour)
    std::printf("input: the model's %d-d vector and the image's %d-bin colour histogram (weight %g)\n",
                r.in_dim - r.colour_bins, r.colour_bins, args.colour_weight);
  std::printf("images: %zu in the index, %zu labelled, %zu held out (--holdout %g --seed %llu), %zu fitted on\n",
              r.images, r.labelled, r.held_out, args.holdout, static_cast<unsigned long long>(args.seed), r.fitted);
  print_report_end(r, total);
  return kExitOk;
}

}  // namespace

void setup_learn(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<LearnArgs>();
  app.add_option("-i,--index", args->index, "index file (default: $IMGSEARCH_INDEX, then ./imgsearch.index)");
  app.add_option("--labels", args->labels_csv, "CSV mapping image ids (file names without extension) to labels");
  app.add_option("--id-column", args->id_column, "CSV column holding the image id (default id)");
  app.add_option("--label-column", args->label_column, "CSV label column, or COL+COL... to join several");
  app.add_option("--method", args->method,
                 "lda (default: linear, fitted in seconds) or head (a small network trained on the CPU: better "
                 "rankings on unseen images, about a minute for 20k images)")
      ->check(CLI::IsMember({"lda", "head"}));
  app.add_option("--dim", args->dim,
                 "output dimension (LDA: default 64, at most the number of labels - 1; head: default 128; PCA: "
                 "default 256, below the model's)")
      ->check(CLI::Range(1, 65536));
  app.add_option("--hidden", args->hidden, "head: hidden units (default 1024)")->check(CLI::Range(1, kMaxHiddenUnits));
  app.add_option("--epochs", args->epochs,
                 "head: passes over the labelled images (default: 10, more for small sets: at least 600 batches)")
      ->check(CLI::Range(1, 1000));
  app.add_flag("--pca", args->pca,
               "no labels: project onto the directions holding most of the vectors' energy (saves memory)");
  app.add_option("--sample", args->sample, "PCA: fit on a seeded sample of at most this many images (default 100000)")
      ->check(CLI::Range(std::size_t(2), std::size_t(1) << 32));
  app.add_option("--shrinkage", args->shrinkage, "within-label scatter shrinkage, 0..1 (default 0.1)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--holdout", args->holdout, "keep this seeded fraction of the labelled images out of the fit")
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--seed", args->seed, "seed for --holdout, --sample and the head's training (default 1)");
  app.add_option("--colour", args->colour,
                 "also fit on each image's colour histogram: auto (default: when a label column's name says "
                 "colour or color), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app.add_option("--colour-weight", args->colour_weight,
                 "weight of the colour histogram against the unit-length CNN vector (default 0.5)")
      ->check(CLI::Range(0.001, 100.0));
  app.add_flag("--reset", args->reset, "remove the learned projection");
  app.add_flag("--json", args->json, "print one JSON object");
  app.add_option("--wait-lock", args->wait_lock, "wait up to this many seconds for another writer (default 0)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--threads", args->threads, "threads (default: all cores)")->check(CLI::Range(0, 1024));
  app.callback([&app, &runner, args] {
    args->head_options = app.count("--hidden") + app.count("--epochs") > 0;
    args->lda_options = app.count("--shrinkage") > 0;
    runner = [args] { return run_learn(*args); };
  });
}

}  // namespace imgsearch::cli
