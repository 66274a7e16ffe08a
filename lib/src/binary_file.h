// The container shared by every file imgsearch writes (features files and indexes):
// a magic, a format version, a table of named sections, and an XXH3-64 checksum for the
// table and for each section. Layout: docs/formats.md. Little-endian only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <xxhash.h>

namespace imgsearch::detail {

constexpr std::size_t kMagicSize = 8;
constexpr std::size_t kTagSize = 8;
constexpr std::uint32_t kMaxSections = 64;
constexpr std::size_t kSectionAlign = 64;

// Writes to "<path>.tmp-<pid>", then fsync and rename over `path` in commit(); a writer
// destroyed without commit() removes its temporary file, leaving `path` as it was.
class BinaryFileWriter {
 public:
  BinaryFileWriter(const std::string& path, const char (&magic)[kMagicSize + 1], std::uint32_t version,
                   std::uint32_t section_count);
  ~BinaryFileWriter();
  BinaryFileWriter(const BinaryFileWriter&) = delete;
  BinaryFileWriter& operator=(const BinaryFileWriter&) = delete;

  void begin_section(const char* tag);
  void write(const void* data, std::size_t size);
  void write_u32(std::uint32_t v) { write(&v, sizeof v); }
  void write_u64(std::uint64_t v) { write(&v, sizeof v); }
  void write_i64(std::int64_t v) { write(&v, sizeof v); }
  void write_string(const std::string& s);  // u32 length + bytes
  void end_section();
  void commit();

 private:
  void raw_write(const void* data, std::size_t size);
  struct Entry {
    char tag[kTagSize];
    std::uint64_t offset, size, checksum;
  };
  std::string path_, tmp_path_;
  int fd_ = -1;
  std::uint64_t pos_ = 0;
  std::uint32_t version_;
  char magic_[kMagicSize];
  std::vector<Entry> entries_;
  std::uint32_t expected_sections_;
  XXH3_state_t* hash_ = nullptr;
  bool in_section_ = false;
  bool committed_ = false;
  std::vector<char> buffer_;
};

// A read-only mapping of a whole file and a descriptor kept open on it (for pread): a
// compact index keeps its file's float32 rows here instead of in memory (index.cpp).
struct MappedFile {
  const std::uint8_t* data = nullptr;
  std::uint64_t size = 0;
  int fd = -1;
  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  // Drops the mapping's pages from the resident set (MADV_DONTNEED): what stays mapped is
  // read again from the page cache only where it is touched.
  void drop_pages() const;
  // The same for the whole pages inside [begin, begin + bytes) of the mapping.
  void drop_pages(const std::uint8_t* begin, std::size_t bytes) const;
  // Reads `bytes` at `offset` with pread (never the mapping, which faults where the file
  // has been truncated since). False when the file no longer holds them.
  bool read_at(std::uint64_t offset, void* out, std::size_t bytes) const;
};

// Maps a file read-only and checks its header; sections are checksummed when fetched.
class BinaryFileReader {
 public:
  BinaryFileReader(const std::string& path, const char (&magic)[kMagicSize + 1], const char* what,
                   std::uint32_t max_version);
  ~BinaryFileReader();
  BinaryFileReader(const BinaryFileReader&) = delete;
  BinaryFileReader& operator=(const BinaryFileReader&) = delete;

  std::uint32_t version() const { return version_; }
  std::uint64_t file_size() const { return size_; }
  bool has_section(const char* tag) const;
  // Throws Error(Format) when the section is missing or its checksum does not match.
  std::pair<const std::uint8_t*, std::size_t> section(const char* tag) const;
  // section(), handing each chunk of up to `chunk` bytes to `visit` as the checksum passes
  // it, while it is in cache: one pass over a large section where a check would be a second.
  // The checksum fails first; what `visit` found is for the caller to act on afterwards.
  std::pair<const std::uint8_t*, std::size_t> section(
      const char* tag, std::size_t chunk, const std::function<void(const std::uint8_t*, std::size_t)>& visit) const;
  // The same without the checksum (the caller fetches it with section() before it trusts
  // the bytes, or uses it only where any bytes are harmless). Throws when it is missing.
  std::pair<const std::uint8_t*, std::size_t> unverified_section(const char* tag) const;
  [[noreturn]] void fail(const std::string& reason) const;
  // The mapping, to outlive the reader.
  std::shared_ptr<const MappedFile> mapping() const { return map_; }

 private:
  void check_header(const char (&magic)[kMagicSize + 1], const char* what, std::uint32_t max_version);
  std::string path_;
  std::shared_ptr<MappedFile> map_;
  const std::uint8_t* data_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint32_t version_ = 0;
  struct Entry {
    std::string tag;
    std::uint64_t offset, size, checksum;
  };
  std::vector<Entry> entries_;
};

// Bounds-checked cursor over one section; every read that would pass the end throws.
class ByteReader {
 public:
  ByteReader(const BinaryFileReader& file, const char* tag);
  std::uint32_t u32();
  std::uint64_t u64();
  std::int64_t i64();
  std::string string(std::size_t max_length = 1 << 16);
  // The same string checked and skipped, not copied: valid while the section is mapped.
  std::string_view string_view(std::size_t max_length = 1 << 16);
  const std::uint8_t* bytes(std::size_t n);
  std::size_t remaining() const { return size_ - pos_; }
  void expect_end() const;
  [[noreturn]] void fail(const std::string& reason) const;

 private:
  const BinaryFileReader& file_;
  std::string tag_;
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace imgsearch::detail
