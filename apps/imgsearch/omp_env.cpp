// Gives imgsearch's long-running subcommands libgomp's passive wait policy, without
// restarting the process where this libgomp allows.
//
// Why: OpenMP threads (LibTorch's intra-op pool) spin while they wait, by default. With
// any other busy process on the machine the spinning threads steal the cores the working
// ones need, and inference gets tens of times slower; OMP_WAIT_POLICY=PASSIVE keeps it at
// about the share of the CPU that is left, but costs ~10 % on an idle machine, where
// threads sleep and wake between every pair of layers. A short spin (GOMP_SPINCOUNT=3000,
// a few microseconds; libgomp honours it over the policy) bridges those gaps and is still
// gone long before a time slice ends, so it keeps both (docs/benchmarks.md).
//
// How: libgomp reads the variables once, in its own ELF constructor, before main, and
// libc's initialiser (which runs before it) resets `environ` to the original array, so
// they cannot be added to the environment in time. But libgomp (GCC 12's, Debian's) reads
// them with getenv(), and the executable comes first in the dynamic loader's symbol
// lookup: this file defines getenv (exported: CMakeLists.txt), which answers the two
// variables from the decision taken in the executable's .preinit_array (which the loader
// runs before any library's constructor) and everything else from `environ`, as libc's
// does. Nothing restarts and the real environment is untouched (children inherit none of
// it). Where libgomp does not read them that way (CMake's check of this libgomp, or, at
// run time, libgomp never asked before main), the process restarts itself with the
// variables set: from .preinit_array when known at build time (libraries mapped, none
// initialised), else from main (LibTorch's start-up paid twice, but correct).
//
// Raw code, no libc string functions and no sanitizer instrumentation (CMakeLists.txt):
// this runs before AddressSanitizer may have initialised, and getenv is called from
// every library's constructors.
#include "omp_env.h"

#include <unistd.h>

#include <cstddef>

extern "C" char** environ;

namespace {

bool has_prefix(const char* s, const char* prefix) {
  for (; *prefix; ++s, ++prefix)
    if (*s != *prefix) return false;
  return true;
}

bool equal(const char* a, const char* b) {
  for (; *a && *a == *b; ++a, ++b) {
  }
  return *a == *b;
}

// The first argument that is not an option is the subcommand, as CLI11 sees it in main.
const char* subcommand_of(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (argv[i] && argv[i][0] != '-') return argv[i];
  return nullptr;
}

char kPolicyName[] = "OMP_WAIT_POLICY";
char kSpinName[] = "GOMP_SPINCOUNT";
char kPolicy[] = "OMP_WAIT_POLICY=PASSIVE";
char kSpin[] = "GOMP_SPINCOUNT=3000";
constexpr int kMaxEnvironment = 1 << 16;  // beyond that, run as we are

using imgsearch::cli::OmpSettingsOrigin;
// Set in .preinit_array, before any other code of the process runs: while it is Answered,
// getenv answers the two variables.
OmpSettingsOrigin origin = OmpSettingsOrigin::Defaults;
bool policy_was_read = false;  // someone (libgomp) asked for OMP_WAIT_POLICY through getenv

// `query` and `info` are left alone: a cold query must start fast, and batch-1 inference
// is where spinning still pays.
bool runs_long(const char* sub) {
  static const char* const kNames[] = {"extract", "index", "eval", "serve", "dedup", "learn"};
  for (const char* name : kNames)
    if (equal(sub, name)) return true;
  return false;
}

// Restarts this executable with the two variables added; returns only on failure.
void restart_with(char** argv, char** envp) {
  int n = 0;
  while (envp[n]) ++n;
  char** env = static_cast<char**>(__builtin_alloca(sizeof(char*) * (static_cast<unsigned>(n) + 3)));
  for (int i = 0; i < n; ++i) env[i] = envp[i];
  env[n] = kPolicy;
  env[n + 1] = kSpin;
  env[n + 2] = nullptr;
  ::execve("/proc/self/exe", argv, env);
}

void decide(int argc, char** argv, char** envp) {
  if (argc < 2 || !argv || !envp) return;
  for (int n = 0; envp[n]; ++n) {
    // A policy the user set is always kept (and a restarted process stops here).
    if (has_prefix(envp[n], "OMP_WAIT_POLICY=") || has_prefix(envp[n], "GOMP_SPINCOUNT=")) {
      origin = OmpSettingsOrigin::Environment;
      return;
    }
    if (n >= kMaxEnvironment) return;
  }
  const char* sub = subcommand_of(argc, argv);
  if (!sub || !runs_long(sub)) return;
#if IMGSEARCH_OMP_ENV_BY_GETENV
  origin = OmpSettingsOrigin::Answered;
#else
  restart_with(argv, envp);
#endif
}

// glibc calls .preinit_array entries with (argc, argv, envp), executables only.
[[gnu::section(".preinit_array"), gnu::used]] void (*const preinit_entry)(int, char**, char**) = &decide;

}  // namespace

// libc's getenv, but for the two variables while they are answered.
extern "C" char* getenv(const char* name) {
  if (!name) return nullptr;
  if (origin == OmpSettingsOrigin::Answered) {
    if (equal(name, kPolicyName)) {
      policy_was_read = true;
      return kPolicy + sizeof kPolicyName;
    }
    if (equal(name, kSpinName)) return kSpin + sizeof kSpinName;
  }
  if (!environ || !*name) return nullptr;
  std::size_t len = 0;
  while (name[len]) ++len;
  for (char** e = environ; *e; ++e) {
    std::size_t i = 0;
    while (i < len && (*e)[i] == name[i]) ++i;
    if (i == len && (*e)[i] == '=') return *e + len + 1;
  }
  return nullptr;
}

namespace imgsearch::cli {

OmpSettingsOrigin omp_settings_origin(char** argv) {
  if (origin == OmpSettingsOrigin::Answered && !policy_was_read) {
    // This libgomp did not ask through getenv: give it the variables the slow way. (If
    // the restart fails, libgomp runs on its defaults, and -v says so.)
    origin = OmpSettingsOrigin::Defaults;
    if (environ) restart_with(argv, environ);
  }
  return origin;
}

const char* to_string(OmpSettingsOrigin o) {
  switch (o) {
    case OmpSettingsOrigin::Defaults: return "libgomp's defaults";
    case OmpSettingsOrigin::Environment: return "from the environment";
    case OmpSettingsOrigin::Answered: return "given to libgomp at start-up, no restart";
  }
  return "?";
}

}  // namespace imgsearch::cli
