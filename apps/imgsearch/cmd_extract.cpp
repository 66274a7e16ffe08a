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
  ModelArgs model;
};
}  // namespace

void setup_extract(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<ExtractArgs>();
  app.add_option("paths", args->inputs, "image files and directories ('-' reads paths from stdin)")->required();
  app.add_option("-o,--output", args->output, "output file (default: imgsearch.features)");
  app.add_option("--format", args->format, "imgsearch (the features file) or npy (.npy matrix + .txt of paths)")
      ->check(CLI::IsMember({"imgsearch", "npy"}));
  app.add_option("--batch-size", args->batch_size, "images per forward pass (default 8)")->check(CLI::Range(1, 1024));
  args->model.add_to(app);

  app.callback([&runner, args] {
    runner = [args]() -> int {
      install_interrupt_handler();
      ScanResult scan = collect_image_files(expand_stdin(args->inputs));
      for (const ScanProblem& p : scan.problems) report_problem(p.path + ": " + p.reason);
      if (scan.files.empty()) {
        report_problem("no images to extract");
        return kExitFailure;
      }
      auto model = Model::load(resolve_model_path(args->model, nullptr), args->model.options());
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
