// Turning the paths a user gives into the list of image files to process.
#pragma once

#include <string>
#include <vector>

namespace imgsearch {

struct ScanProblem {
  std::string path;
  std::string reason;
};

struct ScanResult {
  std::vector<std::string> files;  // absolute, lexically normal, in a stable order
  std::vector<ScanProblem> problems;
};

// Files are taken as given (any extension); directories are recursed, keeping files
// with an image extension (a directory named x.jpg is searched, not taken as a file) and
// skipping hidden files and directories; the result is sorted per input. Symlinks to
// files are taken (a dangling or looping one too: decoding then names it and says why);
// symlinks to directories are not followed, and no directory is walked twice, so a
// symlink loop cannot hang the scan. Unreadable directories become `problems` and their
// siblings are still scanned.
ScanResult collect_image_files(const std::vector<std::string>& inputs);

// Shard `shard` (0-based) of `count`: the files sorted and de-duplicated, cut into
// `count` contiguous runs whose sizes differ by at most one. Deterministic, so N machines
// given the same inputs extract disjoint parts that together are the whole list, and the
// shards concatenated in order are the sorted list. Throws Error(InvalidArgument) unless
// 0 <= shard < count.
std::vector<std::string> select_shard(std::vector<std::string> files, int shard, int count);

// Absolute and lexically normal, without resolving symlinks.
std::string absolute_path(const std::string& path);

}  // namespace imgsearch
