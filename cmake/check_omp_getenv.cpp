// CMake's check (apps/imgsearch/CMakeLists.txt): does this libgomp read OMP_WAIT_POLICY
// through getenv in its constructor, where an executable's own getenv answers it?
// Exit 0 when it does (imgsearch then sets the wait policy without restarting).
#include <omp.h>

#include <cstddef>

extern "C" char** environ;

namespace {
bool asked_before_main = false;
bool in_main = false;
}  // namespace

extern "C" char* getenv(const char* name) {
  static char passive[] = "PASSIVE";
  const char* want = "OMP_WAIT_POLICY";
  const char* n = name;
  for (; *want && *want == *n; ++want, ++n) {
  }
  if (!*want && !*n) {
    if (!in_main) asked_before_main = true;
    return passive;
  }
  if (!environ) return nullptr;
  std::size_t len = 0;
  while (name[len]) ++len;
  for (char** e = environ; *e; ++e) {
    std::size_t i = 0;
    while (i < len && (*e)[i] == name[i]) ++i;
    if (i == len && (*e)[i] == '=') return *e + len + 1;
  }
  return nullptr;
}

int main() {
  in_main = true;
  return asked_before_main && omp_get_max_threads() > 0 ? 0 : 1;
}
