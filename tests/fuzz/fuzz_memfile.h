// The loaders take a path; the fuzzers hand them an in-memory file (memfd) through
// /proc/self/fd/N, so no disk I/O happens per input.
#pragma once

#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace fuzz {

class MemFile {
 public:
  MemFile(const std::uint8_t* data, std::size_t size) {
    fd_ = ::memfd_create("imgsearch-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    std::size_t done = 0;
    while (done < size) {
      const ssize_t w = ::write(fd_, data + done, size - done);
      if (w <= 0) std::abort();
      done += static_cast<std::size_t>(w);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// The container checksums (docs/formats.md) stop almost every mutation at the door. This
// returns a copy of `data` with the table's section checksums and the header checksum
// recomputed, so that mutations reach the structural validation behind them. Returns an
// empty vector when there is nothing to fix (too short, or already correct).
inline std::vector<std::uint8_t> with_fixed_checksums(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> b(data, data + size);
  if (size < 24) return {};
  std::uint32_t count;
  std::memcpy(&count, b.data() + 12, 4);
  if (count > 64) return {};
  const std::size_t header = 16 + std::size_t(count) * 32 + 8;
  if (header > size) return {};
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint8_t* e = b.data() + 16 + i * 32;
    std::uint64_t off, len;
    std::memcpy(&off, e + 8, 8);
    std::memcpy(&len, e + 16, 8);
    if (off > size || len > size - off) continue;
    const std::uint64_t sum = XXH3_64bits(b.data() + off, len);
    std::memcpy(e + 24, &sum, 8);
  }
  const std::uint64_t sum = XXH3_64bits(b.data(), header - 8);
  std::memcpy(b.data() + header - 8, &sum, 8);
  if (std::memcmp(b.data(), data, size) == 0) return {};
  return b;
}

}  // namespace fuzz
