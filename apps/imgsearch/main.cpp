// imgsearch: content-based image search. Each subcommand lives in its own file and
// only parses options and prints; the work is in the library.
#include "cli_common.h"

#include <imgsearch/error.h>
#include <imgsearch/log.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace {

// OpenMP threads (LibTorch's intra-op pool) spin while they wait, by default. With any
// other busy process on the machine the spinning threads steal the cores the working
// ones need, and inference gets tens of times slower; OMP_WAIT_POLICY=PASSIVE keeps it
// at about the share of the CPU that is left, but costs ~10 % on an idle machine, where
// threads sleep and wake between every pair of layers. A short spin (GOMP_SPINCOUNT=3000,
// a few microseconds; libgomp, which LibTorch uses here, honours it over the policy)
// bridges those gaps and is still gone long before a time slice ends, so it keeps both:
// docs/benchmarks.md has the figures. libgomp reads the variables when it is loaded,
// before main, so for the long-running subcommands the process restarts itself once
// with them set. `query` is left alone: a cold query must start fast, and batch-1
// inference is where spinning still pays. A policy the user set is always kept.
void ensure_passive_omp_wait(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  const char* subcommand = nullptr;
  for (int i = 1; i < argc && !subcommand; ++i)
    if (argv[i][0] != '-') subcommand = argv[i];
  if (!subcommand || (std::strcmp(subcommand, "extract") != 0 && std::strcmp(subcommand, "index") != 0 &&
                      std::strcmp(subcommand, "eval") != 0 && std::strcmp(subcommand, "serve") != 0 &&
                      std::strcmp(subcommand, "dedup") != 0 &&
                      std::strcmp(subcommand, "learn") != 0))
    return;
  if (::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0 || ::setenv("GOMP_SPINCOUNT", "3000", 1) != 0) return;
  ::execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

}  // namespace

int main(int argc, char** argv) {
  using namespace imgsearch;
  using namespace imgsearch::cli;
  ensure_passive_omp_wait(argc, argv);

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
  setup_learn(*app.add_subcommand("learn", "fit a projection on labelled images (LDA) and store it with the index"),
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
