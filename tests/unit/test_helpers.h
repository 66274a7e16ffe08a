// Paths and small utilities shared by the unit tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace test {

inline std::string shared(const std::string& rel) { return std::string(IMGSEARCH_SHARED_DIR) + "/" + rel; }
inline std::string source(const std::string& rel) { return std::string(IMGSEARCH_SOURCE_DIR) + "/" + rel; }
inline std::string corel(const std::string& rel) { return shared("datasets/corel1k/images/" + rel); }
inline std::string mobilenet_path() { return shared("models/mobilenet_v2/mobilenet_v2_imagenet_embed.pt"); }
// Exported by tests/cli/setup_models.sh (CTest fixture "models").
inline std::string random_mobilenet_path() { return std::string(IMGSEARCH_TEST_DATA_DIR) + "/models/mobilenet_v2-random.pt"; }

// A scratch directory removed when the test ends.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "imgsearch-unit.XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Reads a float32 C-order .npy matrix.
inline std::vector<float> read_npy_f32(const std::string& path, std::size_t& rows, std::size_t& cols) {
  std::ifstream in(path, std::ios::binary);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not .npy");
  std::uint32_t header_len = 0;
  if (magic[6] == 1) {
    std::uint16_t h = 0;
    in.read(reinterpret_cast<char*>(&h), 2);
    header_len = h;
  } else {
    in.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error(path + ": expected C-order float32");
  const auto open = header.find('(');
  rows = std::stoul(header.substr(open + 1));
  cols = std::stoul(header.substr(header.find(',', open) + 1));
  std::vector<float> data(rows * cols);
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(float)));
  if (!in) throw std::runtime_error(path + ": truncated");
  return data;
}

inline double cosine(const float* a, const float* b, std::size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace test
