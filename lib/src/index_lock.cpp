#include "imgsearch/index_lock.h"

#include "imgsearch/error.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <thread>
#include <unistd.h>

namespace imgsearch {

namespace {

// The pid the holder wrote into the lock file, for the message; "" if unreadable.
std::string holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string s(buf, static_cast<std::size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.find_first_not_of("0123456789") == std::string::npos ? s : "";
}

}  // namespace

IndexLock::IndexLock(const std::string& index_path, double wait_seconds) : lock_path_(index_path + ".lock") {
  fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_error(ErrorKind::Io, "{}: cannot create lock file: {}", lock_path_, std::strerror(errno));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds);
  for (;;) {
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) break;
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) {
      ::close(fd_);
      throw_error(ErrorKind::Io, "{}: cannot lock: {}", lock_path_, std::strerror(err));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      const std::string pid = holder_pid(fd_);
      ::close(fd_);
      throw_error(ErrorKind::Locked, "{}: index is locked by another imgsearch{}{}", index_path,
                  pid.empty() ? "" : " (pid " + pid + ")",
                  wait_seconds > 0 ? fmt::format("; gave up after {:g} s", wait_seconds) : std::string());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Record the holder for the next one's message (best effort).
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t w = ::pwrite(fd_, pid.data(), pid.size(), 0);
  }
}

IndexLock::~IndexLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace imgsearch
