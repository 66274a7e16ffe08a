// Gives imgsearch's long-running subcommands libgomp's passive wait policy without
// running LibTorch's start-up twice.
//
// Why: OpenMP threads (LibTorch's intra-op pool) spin while they wait, by default. With
// any other busy process on the machine the spinning threads steal the cores the working
// ones need, and inference gets tens of times slower; OMP_WAIT_POLICY=PASSIVE keeps it at
// about the share of the CPU that is left, but costs ~10 % on an idle machine, where
// threads sleep and wake between every pair of layers. A short spin (GOMP_SPINCOUNT=3000,
// a few microseconds; libgomp honours it over the policy) bridges those gaps and is still
// gone long before a time slice ends, so it keeps both (docs/benchmarks.md).
//
// How: libgomp reads the variables once, in its own ELF constructor, before main. Setting
// them in main is too late; restarting from main ran LibTorch's static initialisers
// (operator registration, ~0.4 s idle, over 1 s on a busy machine) twice. The dynamic
// loader runs an executable's .preinit_array before the constructors of every shared
// library, libc's included, so the restart happens here with the libraries mapped and
// relocated but none initialised. Setting the variables in place would not work (libc's
// initialiser, next, resets `environ` to the original array), so: raw execve, no libc
// state, no libc string functions, and no sanitizer instrumentation (CMakeLists.txt): this
// may run before AddressSanitizer has initialised.
#include <unistd.h>

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

char kPolicy[] = "OMP_WAIT_POLICY=PASSIVE";
char kSpin[] = "GOMP_SPINCOUNT=3000";
constexpr int kMaxEnvironment = 1 << 16;  // beyond that, run as we are

// `query` and `info` are left alone: a cold query must start fast, and batch-1 inference
// is where spinning still pays.
bool runs_long(const char* sub) {
  static const char* const kNames[] = {"extract", "index", "eval", "serve", "dedup", "learn"};
  for (const char* name : kNames)
    if (equal(sub, name)) return true;
  return false;
}

void restart_with_passive_omp_wait(int argc, char** argv, char** envp) {
  if (argc < 2 || !argv || !envp) return;
  int n = 0;
  for (; envp[n]; ++n) {
    // A policy the user set is always kept (and the restarted process stops here).
    if (has_prefix(envp[n], "OMP_WAIT_POLICY=") || has_prefix(envp[n], "GOMP_SPINCOUNT=")) return;
    if (n >= kMaxEnvironment) return;
  }
  const char* sub = subcommand_of(argc, argv);
  if (!sub || !runs_long(sub)) return;
  char** env = static_cast<char**>(__builtin_alloca(sizeof(char*) * (static_cast<unsigned>(n) + 3)));
  for (int i = 0; i < n; ++i) env[i] = envp[i];
  env[n] = kPolicy;
  env[n + 1] = kSpin;
  env[n + 2] = nullptr;
  ::execve("/proc/self/exe", argv, env);  // returns only on failure: then run as we are
}

// glibc calls .preinit_array entries with (argc, argv, envp), executables only.
[[gnu::section(".preinit_array"), gnu::used]] void (*const preinit_entry)(int, char**, char**) =
    &restart_with_passive_omp_wait;

}  // namespace
