// The features file written by `imgsearch extract`: vectors and the paths they came from.
// Format: docs/formats.md.
#pragma once

#include "imgsearch/model.h"

#include <string>
#include <vector>

namespace imgsearch {

struct FeatureSet {
  ModelInfo model;
  int dim = 0;
  std::vector<float> vectors;  // size() * dim, row-major, rows L2-normalised
  std::vector<std::string> paths;

  std::size_t size() const { return paths.size(); }
  const float* row(std::size_t i) const { return vectors.data() + i * dim; }
};

// Atomic: writes a temporary file beside `path`, fsyncs it, then renames it over `path`.
void write_features_file(const std::string& path, const FeatureSet& features);
// Validates magic, version, sizes and checksums; throws Error(Format) naming the file.
FeatureSet read_features_file(const std::string& path);

// NumPy interchange: `npy_path` gets a float32 [N, D] .npy, and the same name with
// .txt instead of .npy gets the paths, one a line.
void write_features_npy(const std::string& npy_path, const FeatureSet& features);

}  // namespace imgsearch
