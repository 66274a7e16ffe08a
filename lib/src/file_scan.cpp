#include "imgsearch/file_scan.h"

#include "imgsearch/error.h"
#include "imgsearch/image.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <set>
#include <unordered_set>
#include <utility>

#include <sys/stat.h>

namespace fs = std::filesystem;

namespace imgsearch {

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(fs::path(path), ec);
  if (ec) absolute = fs::path(path);
  std::string text = absolute.lexically_normal().string();
  // "dir/" normalises to "dir/"; drop the trailing separator so both spellings agree.
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

namespace {

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// Walks a directory tree with an explicit stack (no recursion depth limit). Symlinked
// directories are not followed, and a directory reached twice (a bind mount of its own
// parent) is walked once, so no cycle can hang the scan. A directory that cannot be read
// is reported and skipped; its siblings are still walked.
void scan_directory(const fs::path& root, ScanResult& result) {
  std::vector<std::string> found;
  std::set<std::pair<dev_t, ino_t>> visited;
  std::vector<fs::path> pending{root};
  while (!pending.empty()) {
    const fs::path dir = std::move(pending.back());
    pending.pop_back();
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0 && !visited.insert({st.st_dev, st.st_ino}).second) continue;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
      result.problems.push_back({dir.string(), "cannot read directory: " + ec.message()});
      continue;
    }
    for (const fs::directory_iterator end; it != end; it.increment(ec)) {
      const fs::directory_entry& entry = *it;
      if (is_hidden(entry.path())) continue;
      std::error_code type_ec;
      const fs::file_status own = entry.symlink_status(type_ec);
      if (fs::is_directory(own)) {
        pending.push_back(entry.path());
        continue;
      }
      // A symlink to a directory is not followed. A symlink to a file is taken; a
      // dangling or looping one too, so that decoding names it and says why.
      if (fs::is_symlink(own) && fs::is_directory(entry.status(type_ec))) continue;
      if (has_image_extension(entry.path().filename().string())) found.push_back(absolute_path(entry.path().string()));
    }
    if (ec) result.problems.push_back({dir.string(), "error reading directory: " + ec.message()});
  }
  std::sort(found.begin(), found.end());
  result.files.insert(result.files.end(), found.begin(), found.end());
}

}  // namespace

ScanResult collect_image_files(const std::vector<std::string>& inputs) {
  ScanResult result;
  for (const std::string& input : inputs) {
    std::error_code ec;
    const fs::file_status status = fs::status(input, ec);
    if (ec || !fs::exists(status)) {
      result.problems.push_back({input, ec ? ec.message() : "no such file or directory"});
    } else if (fs::is_directory(status)) {
      scan_directory(fs::path(input), result);
    } else {
      result.files.push_back(absolute_path(input));
    }
  }
  // The same file named twice (or via a folder and directly) is processed once.
  std::unordered_set<std::string> seen;
  std::vector<std::string> unique;
  unique.reserve(result.files.size());
  for (std::string& f : result.files) {
    if (seen.insert(f).second) unique.push_back(std::move(f));
  }
  result.files = std::move(unique);
  return result;
}

std::vector<std::string> select_shard(std::vector<std::string> files, int shard, int count) {
  IMGSEARCH_CHECK(count >= 1 && shard >= 0 && shard < count, ErrorKind::InvalidArgument,
                  "bad shard {}/{}: expected I/N with 0 <= I < N", shard, count);
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  const std::size_t n = files.size();
  const std::size_t begin = n * static_cast<std::size_t>(shard) / static_cast<std::size_t>(count);
  const std::size_t end = n * (static_cast<std::size_t>(shard) + 1) / static_cast<std::size_t>(count);
  return std::vector<std::string>(std::make_move_iterator(files.begin() + static_cast<std::ptrdiff_t>(begin)),
                                  std::make_move_iterator(files.begin() + static_cast<std::ptrdiff_t>(end)));
}

}  // namespace imgsearch
