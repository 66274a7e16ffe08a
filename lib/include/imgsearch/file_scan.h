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

// Files are taken as given (any extension); directories are recursed in sorted order,
// keeping files with an image extension and skipping hidden files and directories.
// Directory symlinks are not followed, so symlink loops cannot hang the scan.
ScanResult collect_image_files(const std::vector<std::string>& inputs);

// Absolute and lexically normal, without resolving symlinks.
std::string absolute_path(const std::string& path);

}  // namespace imgsearch
