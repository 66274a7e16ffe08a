// How the long-running subcommands' OpenMP wait policy reached libgomp (omp_env.cpp).
#pragma once

namespace imgsearch::cli {

enum class OmpSettingsOrigin {
  Defaults,     // query, info: libgomp's own defaults
  Environment,  // set by the user, or by the restart where this libgomp needs one
  Answered,     // answered to libgomp's getenv at start-up, no restart
};

// Called first in main. Where libgomp was to be answered but never asked, restarts the
// process with the variables set (and does not return).
OmpSettingsOrigin omp_settings_origin(char** argv);
const char* to_string(OmpSettingsOrigin origin);

}  // namespace imgsearch::cli
