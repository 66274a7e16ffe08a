#include "binary_file.h"

#include "imgsearch/error.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "imgsearch files are little-endian");

namespace imgsearch::detail {

namespace {

constexpr std::size_t kEntryBytes = kTagSize + 3 * sizeof(std::uint64_t);

std::uint64_t header_bytes(std::uint32_t sections) {
  return kMagicSize + 2 * sizeof(std::uint32_t) + std::uint64_t(sections) * kEntryBytes + sizeof(std::uint64_t);
}

void write_all(int fd, const char* bytes, std::size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, bytes, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_error(ErrorKind::Io, "{}: write failed: {} (the previous file, if any, is unchanged)", path,
                  std::strerror(errno));
    }
    bytes += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::uint64_t align_up(std::uint64_t v) { return (v + kSectionAlign - 1) / kSectionAlign * kSectionAlign; }

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

BinaryFileWriter::BinaryFileWriter(const std::string& path, const char (&magic)[kMagicSize + 1], std::uint32_t version,
                                   std::uint32_t section_count)
    : path_(path), version_(version), expected_sections_(section_count) {
  std::memcpy(magic_, magic, kMagicSize);
  tmp_path_ = path + ".tmp-" + std::to_string(::getpid());
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_error(ErrorKind::Io, "{}: cannot create: {}", tmp_path_, std::strerror(errno));
  hash_ = XXH3_createState();
  buffer_.reserve(1 << 20);
  // The header is written last, once the table is known; reserve its space.
  const std::vector<char> zeros(align_up(header_bytes(section_count)), 0);
  raw_write(zeros.data(), zeros.size());
}

BinaryFileWriter::~BinaryFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
  if (hash_) XXH3_freeState(hash_);
}

void BinaryFileWriter::raw_write(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  pos_ += size;
  if (buffer_.size() + size <= buffer_.capacity()) {
    buffer_.insert(buffer_.end(), p, p + size);
    return;
  }
  write_all(fd_, buffer_.data(), buffer_.size(), path_);
  buffer_.clear();
  if (size >= buffer_.capacity()) {
    write_all(fd_, p, size, path_);
  } else {
    buffer_.insert(buffer_.end(), p, p + size);
  }
}

void BinaryFileWriter::begin_section(const char* tag) {
  IMGSEARCH_CHECK(!in_section_ && entries_.size() < expected_sections_, ErrorKind::InvalidArgument,
                  "{}: internal error: unexpected section {}", path_, tag);
  const std::uint64_t aligned = align_up(pos_);
  const std::vector<char> pad(aligned - pos_, 0);
  raw_write(pad.data(), pad.size());
  Entry e{};
  std::memcpy(e.tag, tag, std::min(std::strlen(tag), kTagSize));
  e.offset = pos_;
  entries_.push_back(e);
  XXH3_64bits_reset(hash_);
  in_section_ = true;
}

void BinaryFileWriter::write(const void* data, std::size_t size) {
  XXH3_64bits_update(hash_, data, size);
  raw_write(data, size);
}

void BinaryFileWriter::write_string(const std::string& s) {
  write_u32(static_cast<std::uint32_t>(s.size()));
  write(s.data(), s.size());
}

void BinaryFileWriter::end_section() {
  Entry& e = entries_.back();
  e.size = pos_ - e.offset;
  e.checksum = XXH3_64bits_digest(hash_);
  in_section_ = false;
}

void BinaryFileWriter::commit() {
  IMGSEARCH_CHECK(!in_section_ && entries_.size() == expected_sections_, ErrorKind::InvalidArgument,
                  "{}: internal error: {} of {} sections written", path_, entries_.size(), expected_sections_);
  std::vector<char> header;
  auto put = [&](const void* p, std::size_t n) {
    header.insert(header.end(), static_cast<const char*>(p), static_cast<const char*>(p) + n);
  };
  put(magic_, kMagicSize);
  put(&version_, sizeof version_);
  const std::uint32_t count = expected_sections_;
  put(&count, sizeof count);
  for (const Entry& e : entries_) {
    put(e.tag, kTagSize);
    put(&e.offset, 8);
    put(&e.size, 8);
    put(&e.checksum, 8);
  }
  const std::uint64_t checksum = XXH3_64bits(header.data(), header.size());
  put(&checksum, sizeof checksum);
  // Flush the body, then the header in place.
  write_all(fd_, buffer_.data(), buffer_.size(), path_);
  buffer_.clear();
  if (::pwrite(fd_, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()))
    throw_error(ErrorKind::Io, "{}: write failed: {}", path_, std::strerror(errno));
  if (::fsync(fd_) != 0) throw_error(ErrorKind::Io, "{}: fsync failed: {}", path_, std::strerror(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw_error(ErrorKind::Io, "{}: close failed: {}", path_, std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    throw_error(ErrorKind::Io, "{}: cannot replace: {}", path_, std::strerror(errno));
  committed_ = true;
  // Make the rename itself durable.
  const int dir = ::open(directory_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

BinaryFileReader::BinaryFileReader(const std::string& path, const char (&magic)[kMagicSize + 1], const char* what,
                                   std::uint32_t max_version)
    : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_error(ErrorKind::Io, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_error(ErrorKind::Io, "{}: not a regular file", path);
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  if (size_ < header_bytes(0)) {
    ::close(fd);
    throw_error(ErrorKind::Format, "{}: not an imgsearch {} (file too short: {} bytes)", path, what, size_);
  }
  void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    throw_error(ErrorKind::Io, "{}: cannot map: {}", path, std::strerror(err));
  }
  // From here the mapping and the descriptor are owned (a throwing constructor runs no
  // destructor, but its members' destructors do: the fuzzers once ran out of address
  // space on rejected files' mappings).
  map_ = std::make_shared<MappedFile>();
  map_->data = static_cast<const std::uint8_t*>(map);
  map_->size = size_;
  map_->fd = fd;
  data_ = map_->data;
  check_header(magic, what, max_version);
}

MappedFile::~MappedFile() {
  if (data) ::munmap(const_cast<std::uint8_t*>(data), size);
  if (fd >= 0) ::close(fd);
}

void MappedFile::drop_pages() const {
  if (data) ::madvise(const_cast<std::uint8_t*>(data), size, MADV_DONTNEED);
}

void MappedFile::drop_pages(const std::uint8_t* begin, std::size_t bytes) const {
  if (!data || begin < data || begin + bytes > data + size) return;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uintptr_t from = (reinterpret_cast<std::uintptr_t>(begin) + page - 1) / page * page;
  const std::uintptr_t to = (reinterpret_cast<std::uintptr_t>(begin) + bytes) / page * page;
  if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
}

bool MappedFile::read_at(std::uint64_t offset, void* out, std::size_t bytes) const {
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t got = ::pread(fd, static_cast<char*>(out) + done, bytes - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

void BinaryFileReader::check_header(const char (&magic)[kMagicSize + 1], const char* what, std::uint32_t max_version) {
  if (std::memcmp(data_, magic, kMagicSize) != 0) fail(std::string("not an imgsearch ") + what + " (wrong magic)");
  std::uint32_t count = 0;
  std::memcpy(&version_, data_ + kMagicSize, 4);
  std::memcpy(&count, data_ + kMagicSize + 4, 4);
  if (version_ == 0 || version_ > max_version)
    fail("format version " + std::to_string(version_) + " is not supported (this imgsearch reads versions up to " +
         std::to_string(max_version) + "; a newer imgsearch wrote it?)");
  if (count > kMaxSections) fail("corrupt header (section count " + std::to_string(count) + ")");
  const std::uint64_t hb = header_bytes(count);
  if (hb > size_) fail("truncated header");
  std::uint64_t stored = 0;
  std::memcpy(&stored, data_ + hb - 8, 8);
  if (XXH3_64bits(data_, hb - 8) != stored) fail("corrupt header (checksum mismatch)");
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint8_t* p = data_ + kMagicSize + 8 + std::size_t(i) * kEntryBytes;
    Entry e;
    e.tag.assign(reinterpret_cast<const char*>(p), strnlen(reinterpret_cast<const char*>(p), kTagSize));
    std::memcpy(&e.offset, p + kTagSize, 8);
    std::memcpy(&e.size, p + kTagSize + 8, 8);
    std::memcpy(&e.checksum, p + kTagSize + 16, 8);
    if (e.offset < hb || e.offset > size_ || e.size > size_ - e.offset)
      fail("truncated or corrupt (section " + e.tag + " lies outside the file)");
    entries_.push_back(std::move(e));
  }
}

BinaryFileReader::~BinaryFileReader() = default;

void BinaryFileReader::fail(const std::string& reason) const { throw_error(ErrorKind::Format, "{}: {}", path_, reason); }

bool BinaryFileReader::has_section(const char* tag) const {
  for (const Entry& e : entries_)
    if (e.tag == tag) return true;
  return false;
}

std::pair<const std::uint8_t*, std::size_t> BinaryFileReader::section(const char* tag) const {
  return section(tag, 0, nullptr);
}

std::pair<const std::uint8_t*, std::size_t> BinaryFileReader::section(
    const char* tag, std::size_t chunk, const std::function<void(const std::uint8_t*, std::size_t)>& visit) const {
  for (const Entry& e : entries_) {
    if (e.tag != tag) continue;
    const std::uint8_t* p = data_ + e.offset;
    const std::size_t size = static_cast<std::size_t>(e.size);
    std::uint64_t hash;
    if (!visit) {
      hash = XXH3_64bits(p, size);
    } else {
      std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(), XXH3_freeState);
      if (!state) throw std::bad_alloc();
      XXH3_64bits_reset(state.get());
      for (std::size_t at = 0; at < size; at += chunk) {
        const std::size_t n = std::min(chunk, size - at);
        XXH3_64bits_update(state.get(), p + at, n);
        visit(p + at, n);
      }
      hash = XXH3_64bits_digest(state.get());
    }
    if (hash != e.checksum) fail(std::string("corrupt (checksum mismatch in section ") + tag + ")");
    return {p, size};
  }
  fail(std::string("missing section ") + tag);
}

std::pair<const std::uint8_t*, std::size_t> BinaryFileReader::unverified_section(const char* tag) const {
  for (const Entry& e : entries_)
    if (e.tag == tag) return {data_ + e.offset, static_cast<std::size_t>(e.size)};
  fail(std::string("missing section ") + tag);
}

ByteReader::ByteReader(const BinaryFileReader& file, const char* tag) : file_(file), tag_(tag) {
  const auto s = file.section(tag);
  data_ = s.first;
  size_ = s.second;
}

void ByteReader::fail(const std::string& reason) const { file_.fail("corrupt section " + tag_ + ": " + reason); }

const std::uint8_t* ByteReader::bytes(std::size_t n) {
  if (n > size_ - pos_) fail("unexpected end");
  const std::uint8_t* p = data_ + pos_;
  pos_ += n;
  return p;
}

std::uint32_t ByteReader::u32() {
  std::uint32_t v;
  std::memcpy(&v, bytes(4), 4);
  return v;
}

std::uint64_t ByteReader::u64() {
  std::uint64_t v;
  std::memcpy(&v, bytes(8), 8);
  return v;
}

std::int64_t ByteReader::i64() {
  std::int64_t v;
  std::memcpy(&v, bytes(8), 8);
  return v;
}

std::string ByteReader::string(std::size_t max_length) { return std::string(string_view(max_length)); }

std::string_view ByteReader::string_view(std::size_t max_length) {
  const std::uint32_t n = u32();
  if (n > max_length) fail("string length " + std::to_string(n) + " too large");
  const std::uint8_t* p = bytes(n);
  return {reinterpret_cast<const char*>(p), n};
}

void ByteReader::expect_end() const {
  if (pos_ != size_) fail(std::to_string(size_ - pos_) + " unexpected trailing bytes");
}

}  // namespace imgsearch::detail
