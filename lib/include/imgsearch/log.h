// The library reports progress and warnings through a callback, never to stdout/stderr.
#pragma once

#include <functional>
#include <string>

namespace imgsearch {

enum class LogLevel { Debug, Info, Warning };

using LogCallback = std::function<void(LogLevel, const std::string&)>;

// Replaces the process-wide log callback (default: discard). Thread-safe.
void set_log_callback(LogCallback callback);
void log(LogLevel level, const std::string& message);

}  // namespace imgsearch
