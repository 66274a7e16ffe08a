#include "imgsearch/file_scan.h"

#include "imgsearch/image.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <unordered_set>

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

void scan_directory(const fs::path& root, ScanResult& result) {
  std::vector<std::string> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) {
    result.problems.push_back({root.string(), ec.message()});
    return;
  }
  for (const fs::recursive_directory_iterator end; it != end;) {
    const fs::directory_entry& entry = *it;
    if (is_hidden(entry.path())) {
      if (entry.is_directory(ec)) it.disable_recursion_pending();
    } else {
      std::error_code type_ec;
      const bool directory = entry.is_directory(type_ec);
      if (!directory && has_image_extension(entry.path().string())) {
        found.push_back(absolute_path(entry.path().string()));
      }
    }
    it.increment(ec);
    if (ec) {
      // An unreadable subdirectory: report it and carry on with its siblings.
      result.problems.push_back({it == fs::recursive_directory_iterator() ? root.string() : it->path().string(),
                                 ec.message()});
      ec.clear();
      if (it == fs::recursive_directory_iterator()) break;
    }
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

}  // namespace imgsearch
