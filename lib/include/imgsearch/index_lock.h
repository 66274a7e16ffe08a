// An advisory lock that keeps two imgsearch writers off one index at the same time.
#pragma once

#include <string>

namespace imgsearch {

// Takes flock(LOCK_EX) on "<index>.lock" (created beside the index, never deleted: deleting
// it would let a third process lock a fresh inode while the second still holds the old one).
// The lock is advisory: it only keeps out other imgsearch processes, and it is released by
// the kernel when the process dies, so a SIGKILLed writer never leaves a stale lock.
//
// Policy: a second writer fails at once (wait_seconds = 0, the default of the CLI) with
// Error(Locked) "INDEX: index is locked by another imgsearch (pid N)", or, with
// wait_seconds > 0, retries until the lock is free or the time is up.
// Readers (query, info) take no lock: saves are atomic renames, so a reader always sees
// a complete old or complete new file.
class IndexLock {
 public:
  explicit IndexLock(const std::string& index_path, double wait_seconds = 0);
  ~IndexLock();
  IndexLock(const IndexLock&) = delete;
  IndexLock& operator=(const IndexLock&) = delete;

  const std::string& lock_path() const { return lock_path_; }

 private:
  std::string lock_path_;
  int fd_ = -1;
};

}  // namespace imgsearch
