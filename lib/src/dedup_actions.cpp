#include "imgsearch/dedup_actions.h"

#include "imgsearch/error.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>

namespace imgsearch {

namespace fs = std::filesystem;

const char* dedup_action_name(DedupAction action) {
  switch (action) {
    case DedupAction::Move: return "move";
    case DedupAction::Hardlink: return "hardlink";
    case DedupAction::Symlink: return "symlink";
    case DedupAction::Delete: return "delete";
  }
  return "?";
}

namespace {

constexpr int kManifestVersion = 1;

std::string hex64(std::uint64_t v) { return fmt::format("{:016x}", v); }
std::uint64_t parse_hex64(const std::string& s) {
  IMGSEARCH_CHECK(s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos, ErrorKind::Format,
                  "bad content hash '{}'", s);
  return std::stoull(s, nullptr, 16);
}

std::string tmp_name(const std::string& path) { return path + ".imgsearch-tmp-" + std::to_string(::getpid()); }

void fsync_dir(const std::string& path) {
  const std::string dir = fs::path(path).parent_path().string();
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_all_fsync(const std::string& path, const std::uint8_t* data, std::size_t size, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw_error(ErrorKind::Io, "{}: cannot create: {}", path, std::strerror(errno));
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      ::unlink(path.c_str());
      throw_error(ErrorKind::Io, "{}: write error: {}", path, std::strerror(e));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(path.c_str());
    throw_error(ErrorKind::Io, "{}: cannot flush to disk: {}", path, std::strerror(errno));
  }
}

void set_mtime(const std::string& path, std::int64_t mtime_ns) {
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = static_cast<time_t>(mtime_ns / 1'000'000'000);
  times[1].tv_nsec = static_cast<long>(mtime_ns % 1'000'000'000);
  ::utimensat(AT_FDCWD, path.c_str(), times, 0);
}

// Copies `from` to `to` (which must not exist) through a temporary file: fsync, check the
// bytes against `expected_hash`, set mode and mtime, rename, fsync the folder.
void copy_verified(const std::string& from, const std::string& to, std::uint64_t expected_hash, mode_t mode,
                   std::int64_t mtime_ns) {
  const std::vector<std::uint8_t> bytes = read_image_bytes(from);
  IMGSEARCH_CHECK(content_hash(bytes.data(), bytes.size()) == expected_hash, ErrorKind::Io,
                  "{}: content differs from the recorded hash", from);
  const std::string tmp = tmp_name(to);
  write_all_fsync(tmp, bytes.data(), bytes.size(), mode);
  if (content_hash_file(tmp) != expected_hash) {
    ::unlink(tmp.c_str());
    throw_error(ErrorKind::Io, "{}: the copy does not read back identical", to);
  }
  set_mtime(tmp, mtime_ns);
  if (::rename(tmp.c_str(), to.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw_error(ErrorKind::Io, "{}: cannot rename into place: {}", to, std::strerror(e));
  }
  fsync_dir(to);
}

// A rename, or across filesystems a verified copy and then the unlink of the source.
void move_file(const std::string& from, const std::string& to, std::uint64_t hash, mode_t mode, std::int64_t mtime_ns) {
  std::error_code ec;
  fs::create_directories(fs::path(to).parent_path(), ec);
  if (ec) throw_error(ErrorKind::Io, "{}: cannot create folder: {}", fs::path(to).parent_path().string(), ec.message());
  if (::link(from.c_str(), to.c_str()) == 0) {  // never replaces an existing `to`
    if (::unlink(from.c_str()) != 0) throw_error(ErrorKind::Io, "{}: cannot remove after moving: {}", from, std::strerror(errno));
    fsync_dir(to);
    fsync_dir(from);
    return;
  }
  if (errno == EEXIST) throw_error(ErrorKind::Io, "{}: already exists; not overwritten", to);
  if (errno != EXDEV && errno != EPERM && errno != EMLINK)
    throw_error(ErrorKind::Io, "{}: cannot move to {}: {}", from, to, std::strerror(errno));
  if (::access(to.c_str(), F_OK) == 0) throw_error(ErrorKind::Io, "{}: already exists; not overwritten", to);
  copy_verified(from, to, hash, mode, mtime_ns);
  if (::unlink(from.c_str()) != 0) throw_error(ErrorKind::Io, "{}: copied, but cannot remove: {}", from, std::strerror(errno));
  fsync_dir(from);
}

struct FileState {
  bool exists = false, regular = false, symlink = false;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  ino_t inode = 0;
  dev_t device = 0;
  mode_t mode = 0644;
};

FileState lstat_file(const std::string& path) {
  FileState s;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return s;
  s.exists = true;
  s.regular = S_ISREG(st.st_mode);
  s.symlink = S_ISLNK(st.st_mode);
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  s.inode = st.st_ino;
  s.device = st.st_dev;
  s.mode = st.st_mode & 07777;
  return s;
}

// Unchanged since it was indexed: a regular file with the same size, mtime and bytes.
std::string why_changed(const IndexEntry& e) {
  if (!e.signals.present) return "indexed without a content hash (run `imgsearch index` again first)";
  const FileState s = lstat_file(e.path);
  if (!s.exists) return "no longer exists";
  if (!s.regular) return "is no longer a regular file";
  if (s.size != e.size || s.mtime_ns != e.mtime_ns) return "changed since it was indexed (size or mtime)";
  try {
    if (content_hash_file(e.path) != e.signals.content_hash) return "changed since it was indexed (content)";
  } catch (const Error& err) {
    return err.what();
  }
  return "";
}

struct Planned {
  std::string path, keeper, target;
  std::uint64_t size = 0, hash = 0, keeper_hash = 0;
  std::int64_t mtime_ns = 0;
  const IndexEntry* entry = nullptr;
  const IndexEntry* keeper_entry = nullptr;
};

void write_manifest(const std::string& path, const nlohmann::json& manifest) {
  IMGSEARCH_CHECK(::access(path.c_str(), F_OK) != 0, ErrorKind::Io, "{}: manifest already exists; not overwritten", path);
  const std::string text = manifest.dump(1) + "\n";
  const std::string tmp = tmp_name(path);
  write_all_fsync(tmp, reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), 0644);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw_error(ErrorKind::Io, "{}: cannot write manifest: {}", path, std::strerror(e));
  }
  fsync_dir(path);
}

}  // namespace

DedupActionReport apply_dedup_actions(const ImageIndex& index, const std::vector<DuplicateGroup>& groups,
                                      const DedupActionOptions& options) {
  IMGSEARCH_CHECK(!options.manifest.empty(), ErrorKind::InvalidArgument, "no manifest file given");
  if (options.action == DedupAction::Move)
    IMGSEARCH_CHECK(!options.move_to.empty() && !options.layout_root.empty(), ErrorKind::InvalidArgument,
                    "move: no destination folder");
  std::vector<Planned> plan;
  const bool link = options.action == DedupAction::Hardlink || options.action == DedupAction::Symlink;
  std::size_t not_identical = 0;
  for (const DuplicateGroup& g : groups) {
    // A link replaces a file by another with the same bytes: within a group, each set of
    // byte-identical members is linked to its first member (the keeper when it is one of
    // them), which stays a regular file.
    std::unordered_map<std::uint64_t, std::uint32_t> anchor;
    if (link)
      for (const GroupMember& m : g.members) {
        const IndexEntry& e = index.entry(m.id);
        if (e.signals.present) anchor.emplace(e.signals.content_hash ^ e.size, m.id);
      }
    for (const GroupMember& m : g.members) {
      if (m.keep && !link) continue;
      const IndexEntry& e = index.entry(m.id);
      std::uint32_t keeper_id = g.members.front().id;
      if (link) {
        const auto it = anchor.find(e.signals.content_hash ^ e.size);
        if (it == anchor.end() || it->second == m.id) {
          // The first of its bytes in the group (an anchor), or no signals: not linked.
          if (!m.keep && it != anchor.end()) {
            bool alone = true;
            for (const GroupMember& o : g.members)
              if (o.id != m.id && index.entry(o.id).signals.content_hash == e.signals.content_hash &&
                  index.entry(o.id).size == e.size)
                alone = false;
            not_identical += alone;
          }
          continue;
        }
        if (m.keep) continue;  // a preferred file is never replaced
        keeper_id = it->second;
      }
      const IndexEntry& keeper = index.entry(keeper_id);
      Planned p;
      p.path = e.path;
      p.keeper = keeper.path;
      p.size = e.size;
      p.mtime_ns = e.mtime_ns;
      p.hash = e.signals.content_hash;
      p.keeper_hash = keeper.signals.content_hash;
      p.entry = &e;
      p.keeper_entry = &keeper;
      if (options.action == DedupAction::Move) {
        const fs::path relative = fs::path(e.path).lexically_relative(options.layout_root);
        const std::string rel = relative.string();
        p.target = (fs::path(options.move_to) /
                    (rel.empty() || rel.rfind("..", 0) == 0 ? fs::path(e.path).relative_path() : relative))
                       .lexically_normal()
                       .string();
      }
      plan.push_back(std::move(p));
    }
  }

  nlohmann::json manifest;
  manifest["imgsearch_dedup_manifest"] = kManifestVersion;
  manifest["action"] = dedup_action_name(options.action);
  manifest["index"] = options.index_path;
  if (options.action == DedupAction::Move) manifest["move_to"] = options.move_to;
  nlohmann::json entries = nlohmann::json::array();
  for (const Planned& p : plan) {
    nlohmann::json j{{"path", p.path},
                     {"keeper", p.keeper},
                     {"size", p.size},
                     {"mtime_ns", p.mtime_ns},
                     {"content_hash", hex64(p.hash)},
                     {"keeper_content_hash", hex64(p.keeper_hash)}};
    if (!p.target.empty()) j["target"] = p.target;
    entries.push_back(std::move(j));
  }
  manifest["entries"] = std::move(entries);
  write_manifest(options.manifest, manifest);

  DedupActionReport report;
  report.planned = plan.size();
  report.not_identical = not_identical;
  for (const Planned& p : plan) {
    if (link && (p.hash != p.keeper_hash || p.size != p.keeper_entry->size)) {
      report.problems.push_back(fmt::format("{}: not byte-identical to {}; left alone", p.path, p.keeper));
      continue;
    }
    try {
      if (const std::string why = why_changed(*p.entry); !why.empty()) {
        report.problems.push_back(fmt::format("{}: {}; left alone", p.path, why));
        continue;
      }
      if (options.action != DedupAction::Move) {
        if (const std::string why = why_changed(*p.keeper_entry); !why.empty()) {
          report.problems.push_back(fmt::format("{}: its keeper {} {}; left alone", p.path, p.keeper, why));
          continue;
        }
      }
      const FileState state = lstat_file(p.path);
      switch (options.action) {
        case DedupAction::Move:
          move_file(p.path, p.target, p.hash, state.mode, p.mtime_ns);
          break;
        case DedupAction::Hardlink:
        case DedupAction::Symlink: {
          const std::string tmp = tmp_name(p.path);
          const int rc = options.action == DedupAction::Hardlink ? ::link(p.keeper.c_str(), tmp.c_str())
                                                                 : ::symlink(p.keeper.c_str(), tmp.c_str());
          if (rc != 0)
            throw_error(ErrorKind::Io, "{}: cannot {} to {}: {}", p.path, dedup_action_name(options.action), p.keeper,
                        std::strerror(errno));
          if (content_hash_file(tmp) != p.hash) {  // read through the new link
            ::unlink(tmp.c_str());
            throw_error(ErrorKind::Io, "{}: the link does not read back the same bytes; left alone", p.path);
          }
          if (::rename(tmp.c_str(), p.path.c_str()) != 0) {
            const int e = errno;
            ::unlink(tmp.c_str());
            throw_error(ErrorKind::Io, "{}: cannot replace: {}", p.path, std::strerror(e));
          }
          fsync_dir(p.path);
          break;
        }
        case DedupAction::Delete:
          if (::unlink(p.path.c_str()) != 0) throw_error(ErrorKind::Io, "{}: cannot delete: {}", p.path, std::strerror(errno));
          fsync_dir(p.path);
          break;
      }
      ++report.done;
    } catch (const Error& e) {
      report.problems.push_back(e.what());
    }
  }
  return report;
}

DedupUndoReport undo_dedup_actions(const std::string& manifest_path) {
  nlohmann::json manifest;
  {
    std::ifstream in(manifest_path);
    IMGSEARCH_CHECK(in, ErrorKind::Io, "{}: cannot open: {}", manifest_path, std::strerror(errno));
    try {
      manifest = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      throw_error(ErrorKind::Format, "{}: not a dedup manifest: {}", manifest_path, e.what());
    }
  }
  std::string action;
  try {
    IMGSEARCH_CHECK(manifest.at("imgsearch_dedup_manifest").get<int>() == kManifestVersion, ErrorKind::Format,
                    "unsupported version");
    action = manifest.at("action").get<std::string>();
    IMGSEARCH_CHECK(action == "move" || action == "hardlink" || action == "symlink" || action == "delete",
                    ErrorKind::Format, "unknown action '{}'", action);
    manifest.at("entries").get<nlohmann::json::array_t>();
  } catch (const std::exception& e) {
    throw_error(ErrorKind::Format, "{}: not a dedup manifest: {}", manifest_path, e.what());
  }

  DedupUndoReport report;
  for (const auto& j : manifest.at("entries")) {
    ++report.entries;
    std::string path = "?";
    try {
      path = j.at("path").get<std::string>();
      const std::string keeper = j.at("keeper").get<std::string>();
      const std::uint64_t hash = parse_hex64(j.at("content_hash").get<std::string>());
      const std::uint64_t keeper_hash = parse_hex64(j.at("keeper_content_hash").get<std::string>());
      const std::int64_t mtime_ns = j.at("mtime_ns").get<std::int64_t>();
      const FileState now = lstat_file(path);
      // A regular file that is not a hard link to the keeper is the original (the action
      // never happened, or was undone before) or something new: left alone either way.
      if (now.exists && now.regular) {
        const FileState k = lstat_file(keeper);
        const bool linked = action == "hardlink" && k.exists && now.inode == k.inode && now.device == k.device;
        if (!linked) {
          // Never acted on (left alone, or the run stopped before it), or already undone.
          if (action == "move" && lstat_file(j.at("target").get<std::string>()).exists) {
            report.problems.push_back(fmt::format("{}: both it and {} exist; left alone", path,
                                                  j.at("target").get<std::string>()));
            continue;
          }
          ++report.already_in_place;
          continue;
        }
      }
      if (action == "move") {
        const std::string target = j.at("target").get<std::string>();
        const FileState moved = lstat_file(target);
        if (!moved.exists) {
          report.problems.push_back(fmt::format("{}: neither it nor {} exists; cannot restore", path, target));
          continue;
        }
        if (content_hash_file(target) != hash) {
          report.problems.push_back(fmt::format("{}: {} changed since it was moved; left there", path, target));
          continue;
        }
        move_file(target, path, hash, moved.mode, mtime_ns);
        ++report.restored;
        continue;
      }
      if (action == "delete" && hash != keeper_hash) {
        report.problems.push_back(fmt::format(
            "{}: deleted, and it was not an exact copy of its keeper {}; it cannot be restored", path, keeper));
        continue;
      }
      // A link (or a deleted exact copy): the keeper holds the very same bytes.
      const FileState k = lstat_file(keeper);
      const mode_t mode = now.exists && !now.symlink ? now.mode : (k.exists ? k.mode : 0644);
      if (now.exists) {
        const std::string tmp = tmp_name(path) + "-restore";
        copy_verified(keeper, tmp, hash, mode, mtime_ns);
        if (::rename(tmp.c_str(), path.c_str()) != 0) {
          const int e = errno;
          ::unlink(tmp.c_str());
          throw_error(ErrorKind::Io, "{}: cannot restore: {}", path, std::strerror(e));
        }
        fsync_dir(path);
      } else {
        copy_verified(keeper, path, hash, mode, mtime_ns);
      }
      ++report.restored;
    } catch (const std::exception& e) {
      report.problems.push_back(fmt::format("{}: {}", path, e.what()));
    }
  }
  return report;
}

}  // namespace imgsearch
