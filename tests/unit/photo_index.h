// Test helper: an index of the given unit vectors (dim each) as images /photos/0.jpg,
// /photos/1.jpg, ... made by a model named "test", default HNSW settings.
#pragma once

#include <imgsearch/index.h>

#include <string>
#include <vector>

namespace test {

inline imgsearch::ImageIndex photo_index(const std::vector<float>& v, int dim) {
  imgsearch::ModelInfo m;
  m.name = "test";
  m.output_dim = dim;
  m.path = "/models/test.pt";
  m.content_hash = "0123456789abcdef";
  imgsearch::ImageIndex index(dim, imgsearch::HnswParams{}, m);
  std::vector<imgsearch::IndexEntry> e(v.size() / static_cast<std::size_t>(dim));
  for (std::size_t i = 0; i < e.size(); ++i) e[i].path = "/photos/" + std::to_string(i) + ".jpg";
  index.add(e, v.data(), 1);
  return index;
}

}  // namespace test
