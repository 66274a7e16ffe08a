// Errors: the library throws imgsearch::Error and never exits or prints.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace imgsearch {

// What went wrong, coarse enough for a CLI to map to an exit status.
enum class ErrorKind {
  InvalidArgument,  // the caller asked for something impossible
  Io,               // a file could not be opened, read or written
  Format,           // a file is not what it claims: truncated, corrupt, hostile, wrong version
  Decode,           // an image could not be decoded
  Model,            // the model could not be loaded or run
  Mismatch,         // e.g. an index built with another model
  Locked,           // another process holds the index
  Interrupted,      // the caller asked to stop
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
[[noreturn]] void throw_error(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace imgsearch

// FAISS-style check: throws a formatted imgsearch::Error when `cond` is false.
#define IMGSEARCH_CHECK(cond, kind, ...)                          \
  do {                                                            \
    if (!(cond)) ::imgsearch::throw_error(kind, __VA_ARGS__);     \
  } while (0)
