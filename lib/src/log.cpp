#include "imgsearch/log.h"

#include <mutex>

namespace imgsearch {
namespace {
std::mutex g_mutex;
LogCallback g_callback;
}  // namespace

void set_log_callback(LogCallback callback) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_callback = std::move(callback);
}

void log(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_callback) g_callback(level, message);
}

}  // namespace imgsearch
