// What the subcommands share: exit statuses, model and index resolution, progress, output.
#pragma once

#include <imgsearch/extractor.h>
#include <imgsearch/index.h>
#include <imgsearch/model.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace imgsearch::cli {

// Exit statuses (docs/cli.md). Scripts rely on them: never renumber.
enum ExitStatus : int {
  kExitOk = 0,       // everything succeeded
  kExitFailure = 1,  // the command failed, or no input could be processed
  kExitUsage = 2,    // bad command line
  kExitPartial = 3,  // done, but some inputs were skipped (each named on stderr)
  kExitInterrupted = 130,  // stopped by SIGINT/SIGTERM; work done so far was kept
};

using Runner = std::function<int()>;

void setup_extract(CLI::App& app, Runner& runner);
void setup_index(CLI::App& app, Runner& runner);
void setup_query(CLI::App& app, Runner& runner);
void setup_info(CLI::App& app, Runner& runner);
void setup_eval(CLI::App& app, Runner& runner);
void setup_serve(CLI::App& app, Runner& runner);
void setup_dedup(CLI::App& app, Runner& runner);
void setup_learn(CLI::App& app, Runner& runner);

// Model options shared by extract, index and query.
struct ModelArgs {
  std::string model;
  std::string mean, std;
  int input_size = 0, resize = 0;
  std::string precision = "auto";
  std::string descriptor;  // empty: the model's (or the index's)
  int threads = 0;
  std::uint64_t max_pixels = DecodeOptions{}.max_pixels;

  void add_to(CLI::App& app);
  ModelOverrides overrides() const;
  ModelOptions options() const;
  DecodeOptions decode() const;
};

// The model file to use: -m, then $IMGSEARCH_MODEL, then `index_model` (the one an
// index was built with; if that file is gone, the built-in model when its content hash
// matches), then default_model_path().
std::string resolve_model_path(const ModelArgs& args, const ModelInfo* index_model);
// A model the user made the default (exported_default_model_path()) if there is one,
// else the built-in model.
std::string default_model_path();
// $IMGSEARCH_HOME/models/default.pt, else $XDG_DATA_HOME/imgsearch/models/default.pt,
// else ~/.local/share/imgsearch/models/default.pt.
std::string exported_default_model_path();
// The real ImageNet MobileNetV2 shipped with imgsearch (float16 weights, metadata
// embedded): <dir of the binary>/../share/imgsearch/models/, else the install prefix's.
std::string builtin_model_path();
inline constexpr const char* kBuiltinModelFile = "mobilenet_v2_imagenet.pt";
// -i, then $IMGSEARCH_INDEX, then ./imgsearch.index.
std::string resolve_index_path(const std::string& option);
// The size at which `index --vectors auto` turns an index's float32 rows into int8 codes:
// $IMGSEARCH_INT8_FROM, or kDefaultInt8FromImages (vector_encoding.h).
std::size_t auto_int8_from();

// Loads the model the options name (resolve_model_path without an index).
std::unique_ptr<Model> load_model(const ModelArgs& args);
// Keeps large freed buffers in the heap for a model that makes them (R-MAC's feature maps).
void tune_allocator_for(const ModelInfo& model);

// Loads the model for an index: its recorded file and preprocessing, refusing a
// different model file with a clear error.
std::unique_ptr<Model> load_model_for_index(const ModelArgs& args, const ModelInfo& index_model,
                                            const std::string& index_path);

// "-" among the inputs is replaced by the lines of stdin.
std::vector<std::string> expand_stdin(const std::vector<std::string>& inputs);

// One line per failure on stderr: "imgsearch: PATH: reason".
void report_problem(const std::string& message);
void warn(const std::string& message);

// Set by SIGINT/SIGTERM once install_interrupt_handler() ran.
void install_interrupt_handler();
const std::atomic<bool>& interrupted();

// A progress line on stderr, only when stderr is a terminal.
class Progress {
 public:
  Progress(std::string label, std::size_t total);
  ~Progress();
  void tick(std::size_t n = 1);
  void finish();

 private:
  std::string label_;
  std::size_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  void draw(bool force);
};

// `imgsearch index INPUTS -i INDEX` with default HNSW settings: adds new and changed files,
// drops gone ones, leaves an up-to-date index alone. The summary line goes to `summary`.
// Returns index's exit status.
int update_index(const std::vector<std::string>& inputs, const std::string& index_path, const ModelArgs& model,
                 int batch_size, std::FILE* summary);

// Runs the extraction pipeline with progress, reporting each failure on stderr.
// Calls on_vector for each success. Returns the number of failures.
std::size_t run_extraction(Model& model, const std::vector<std::string>& files, const ModelArgs& args, int batch_size,
                           const std::function<void(const ExtractResult&)>& on_vector);


}  // namespace imgsearch::cli
