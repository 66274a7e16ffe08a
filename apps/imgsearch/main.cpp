// imgsearch: content-based image search. Each subcommand lives in its own file and
// only parses options and prints; the work is in the library.
#include "cli_common.h"
#include "omp_env.h"

#include <imgsearch/error.h>
#include <imgsearch/log.h>

#include <cstdio>
#include <cstdlib>

#include <malloc.h>

int main(int argc, char** argv) {
  using namespace imgsearch;
  using namespace imgsearch::cli;
  const OmpSettingsOrigin omp_origin = omp_settings_origin(argv);
  // glibc gives the memory a thread frees above its arena's top back to the kernel, and
  // LibTorch's next batch faults it in again: extracting Corel photos, 8,800 page faults an
  // image and 45 % of the CPU in the kernel. 256 MiB of top pad keeps a batch's working set
  // mapped (docs/benchmarks.md, "Page faults between batches"). A MALLOC_TOP_PAD_ the user
  // set is glibc's to apply, and wins.
  if (!std::getenv("MALLOC_TOP_PAD_")) mallopt(M_TOP_PAD, 256 << 20);

  CLI::App app{"imgsearch: find the images that look like a query image"};
  app.set_version_flag("--version", "imgsearch " IMGSEARCH_VERSION);
  app.require_subcommand(0, 1);
  bool verbose = false, print_default_model = false;
  app.add_flag("-v,--verbose", verbose, "log more detail to stderr");
  app.add_flag("--print-default-model", print_default_model,
               "print the model used when none is given and the index names none: "
               "$IMGSEARCH_HOME/models/default.pt (or $XDG_DATA_HOME/imgsearch/..., ~/.local/share/imgsearch/...) "
               "if you made one, else the built-in MobileNetV2; and exit");

  Runner runner;
  setup_extract(*app.add_subcommand("extract", "images -> feature vectors file"), runner);
  setup_index(*app.add_subcommand("index", "build or update an index over folders of images"), runner);
  setup_query(*app.add_subcommand("query", "find the indexed images most similar to query images"), runner);
  setup_info(*app.add_subcommand("info", "describe an index"), runner);
  setup_eval(*app.add_subcommand("eval", "measure retrieval quality (P@k, mAP) against labels"), runner);
  setup_serve(*app.add_subcommand("serve", "serve a search page and an HTTP API over an index"), runner);
  setup_dedup(*app.add_subcommand("dedup", "find near-duplicate images; optionally move, link or delete them"), runner);
  setup_learn(*app.add_subcommand("learn", "fit a projection on labelled images (LDA or a trained head) and store it with the index"),
              runner);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (print_default_model) {
    std::printf("%s\n", default_model_path().c_str());
    return kExitOk;
  }
  if (!runner) {
    std::fprintf(stderr, "%s", app.help().c_str());
    return kExitUsage;
  }

  set_log_callback([verbose](LogLevel level, const std::string& message) {
    if (level == LogLevel::Warning) warn(message);
    else if (verbose) std::fprintf(stderr, "imgsearch: %s\n", message.c_str());
  });
  if (verbose) {  // the OpenMP settings omp_env.cpp gave the long-running subcommands
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    const char* spin = std::getenv("GOMP_SPINCOUNT");
    std::fprintf(stderr, "imgsearch: OpenMP: OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s (%s)\n", policy ? policy : "unset",
                 spin ? spin : "unset", to_string(omp_origin));
  }

  try {
    return runner();
  } catch (const Error& e) {
    report_problem(e.what());
    return e.kind() == ErrorKind::InvalidArgument ? kExitUsage
           : e.kind() == ErrorKind::Interrupted   ? kExitInterrupted
                                                  : kExitFailure;
  } catch (const std::exception& e) {
    report_problem(std::string("unexpected error: ") + e.what());
    return kExitFailure;
  }
}
