// imgsearch extract PATH... [-o FILE] [--format imgsearch|npy]
#include "cli_common.h"

#include <imgsearch/error.h>
#include <imgsearch/features_file.h>
#include <imgsearch/file_scan.h>

#include <cstring>

namespace imgsearch::cli {

namespace {
struct ExtractArgs {
  std::vector<std::string> inputs;
  std::string output = "imgsearch.features";
  std::string format = "imgsearch";
  int batch_size = 8;
  std::string shard;  // "I/N"; empty = everything
  ModelArgs model;
};

// "I/N" -> {I, N}; CLI11 has checked the shape.
std::pair<int, int> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  return {std::stoi(text.substr(0, slash)), std::stoi(text.substr(slash + 1))};
}
}  // namespace

void setup_extract(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<ExtractArgs>();
  app.add_option("paths", args->inputs, "image files and directories ('-' reads paths from stdin)")->required();
  app.add_option("-o,--output", args->output, "output file (default: imgsearch.features)");
  app.add_option("--format", args->format, "imgsearch (the features file) or npy (.npy matrix + .txt of paths)")
      ->check(CLI::IsMember({"imgsearch", "npy"}));
  app.add_option("--batch-size", args->batch_size, "images per forward pass (default 8)")->check(CLI::Range(1, 1024));
  app.add_option("--shard", args->shard,
                 "extract only part I of N (0-based) of the sorted input files, for running one shard per "
                 "machine; merge with `index --from-features`")
      ->check([](const std::string& text) -> std::string {
        const auto slash = text.find('/');
        const auto digits = [](const std::string& s) {
          return !s.empty() && s.size() <= 6 && s.find_first_not_of("0123456789") == std::string::npos;
        };
        if (slash == std::string::npos || !digits(text.substr(0, slash)) || !digits(text.substr(slash + 1)))
          return "expected I/N, e.g. 0/4";
        const int i = std::stoi(text.substr(0, slash)), n = std::stoi(text.substr(slash + 1));
        if (n < 1 || i >= n) return "expected 0 <= I < N in I/N";
        return "";
      });
  args->model.add_to(app);

  app.callback([&runner, args] {
    runner = [args]() -> int {
      install_interrupt_handler();
      ScanResult scan = collect_image_files(expand_stdin(args->inputs));
      for (const ScanProblem& p : scan.problems) report_problem(p.path + ": " + p.reason);
      if (!args->shard.empty() && !scan.files.empty()) {
        const auto [shard, count] = parse_shard(args->shard);
        const std::size_t all = scan.files.size();
        scan.files = select_shard(std::move(scan.files), shard, count);
        std::fprintf(stderr, "imgsearch: shard %d/%d: %zu of %zu images\n", shard, count, scan.files.size(), all);
        if (scan.files.empty()) {
          // More shards than images: an empty part is a valid outcome, not an error.
          report_problem(fmt::format("shard {}/{} has no images (only {} in all); nothing written", shard, count, all));
          return kExitOk;
        }
      }
      if (scan.files.empty()) {
        report_problem("no images to extract");
        return kExitFailure;
      }
      auto model = load_model(args->model);
      FeatureSet features;
      features.dim = model->output_dim();
      features.model = model->info();
      // Results arrive in completion order; keep the input order in the file.
      std::vector<std::vector<float>> rows(scan.files.size());
      const std::size_t failures = run_extraction(*model, scan.files, args->model, args->batch_size, [&](const ExtractResult& r) {
        rows[r.input_index].assign(r.vector, r.vector + features.dim);
      });
      for (std::size_t i = 0; i < rows.size(); ++i) {
        if (rows[i].empty()) continue;
        features.paths.push_back(scan.files[i]);
        features.vectors.insert(features.vectors.end(), rows[i].begin(), rows[i].end());
        std::vector<float>().swap(rows[i]);
      }
      if (features.size() == 0) {
        report_problem("no image could be processed; nothing written");
        return kExitFailure;
      }
      if (args->format == "npy")
        write_features_npy(args->output, features);
      else
        write_features_file(args->output, features);
      const std::size_t skipped = failures + scan.problems.size();
      std::fprintf(stderr, "imgsearch: extracted %zu images (%d-d, %s) to %s; %zu skipped%s\n", features.size(),
                   features.dim, model->info().name.c_str(), args->output.c_str(), skipped,
                   interrupted() ? "; interrupted" : "");
      if (interrupted()) return kExitInterrupted;
      return skipped > 0 ? kExitPartial : kExitOk;
    };
  });
}

}  // namespace imgsearch::cli
