// CMake's check (apps/imgsearch/CMakeLists.txt), run as `check index`: does this libgomp
// read OMP_WAIT_POLICY through getenv in its constructor, where the executable's own getenv
// (omp_env.cpp's, compiled in here as it is) answers it? Exit 0 when it does; when it does
// not, omp_settings_origin restarts the check with the variables set, and it exits 1.
#define IMGSEARCH_OMP_ENV_BY_GETENV 1
#include "../apps/imgsearch/omp_env.cpp"

#include <omp.h>

int main(int, char** argv) {
  const bool answered = imgsearch::cli::omp_settings_origin(argv) == imgsearch::cli::OmpSettingsOrigin::Answered;
  return answered && omp_get_max_threads() > 0 ? 0 : 1;
}
