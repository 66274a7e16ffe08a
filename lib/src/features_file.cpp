#include "imgsearch/features_file.h"

#include "binary_file.h"
#include "imgsearch/error.h"
#include "meta_section.h"
#include "model_info_json.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

namespace imgsearch {

namespace {
constexpr char kMagic[] = "IMGSFEAT";
// Version 2: the vectors are not the model's pooled output (model "descriptor"); written
// only then, so that an older imgsearch refuses them instead of mixing them with its own.
constexpr std::uint32_t kVersion = 2;
constexpr std::int64_t kMaxDim = 1 << 16;
}  // namespace

void write_features_file(const std::string& path, const FeatureSet& f) {
  IMGSEARCH_CHECK(f.dim > 0 && f.vectors.size() == f.size() * static_cast<std::size_t>(f.dim), ErrorKind::InvalidArgument,
                  "{}: inconsistent feature set ({} paths, {} floats, dim {})", path, f.size(), f.vectors.size(), f.dim);
  detail::BinaryFileWriter out(path, kMagic, f.model.descriptor.pooled() ? 1 : kVersion, 3);
  nlohmann::json meta;
  meta["count"] = f.size();
  meta["dim"] = f.dim;
  meta["dtype"] = "float32";
  meta["normalized"] = true;
  meta["model"] = nlohmann::json::parse(f.model.to_json());
  const std::string meta_text = meta.dump();
  out.begin_section("META");
  out.write(meta_text.data(), meta_text.size());
  out.end_section();
  out.begin_section("VECS");
  out.write(f.vectors.data(), f.vectors.size() * sizeof(float));
  out.end_section();
  out.begin_section("PATHS");
  for (const std::string& p : f.paths) out.write_string(p);
  out.end_section();
  out.commit();
}

FeatureSet read_features_file(const std::string& path) {
  detail::BinaryFileReader in(path, kMagic, "features file", kVersion);
  FeatureSet f;
  std::uint64_t count = 0;
  detail::read_meta_section(in, path, [&](const nlohmann::json& meta) {
    count = static_cast<std::uint64_t>(detail::json_integer(meta, "count", 0, std::numeric_limits<std::int64_t>::max()));
    f.dim = static_cast<int>(detail::json_integer(meta, "dim", 1, kMaxDim));
    if (meta.at("dtype").get<std::string>() != "float32") in.fail("unsupported dtype");
    f.model = ModelInfo::from_json(meta.at("model").dump());
    if (in.version() < 2 && !f.model.descriptor.pooled()) in.fail("a version 1 file names a descriptor");
  });
  const auto [vecs, vecs_size] = in.section("VECS");
  // Check the count against the bytes actually present before allocating anything.
  if (count > vecs_size / (sizeof(float) * f.dim) || vecs_size != count * f.dim * sizeof(float))
    in.fail("vector section holds " + std::to_string(vecs_size) + " bytes, not " + std::to_string(count) + " x " +
            std::to_string(f.dim) + " floats");
  f.vectors.resize(count * f.dim);
  if (vecs_size > 0) std::memcpy(f.vectors.data(), vecs, vecs_size);
  for (std::size_t i = 0; i < f.vectors.size(); ++i)
    if (!std::isfinite(f.vectors[i])) in.fail("vector " + std::to_string(i / f.dim) + " holds NaN or infinity");
  detail::ByteReader paths(in, "PATHS");
  if (count > paths.remaining() / 4) in.fail("path section too short for " + std::to_string(count) + " paths");
  f.paths.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) f.paths.push_back(paths.string());
  paths.expect_end();
  return f;
}

void write_features_npy(const std::string& npy_path, const FeatureSet& f) {
  // NPY v1.0: magic, version, header length, a Python dict literal padded to 64 bytes.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(f.size()) + ", " +
                       std::to_string(f.dim) + "), }";
  const std::size_t preamble = 10;
  while ((preamble + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string txt_path = npy_path;
  if (txt_path.size() >= 4 && txt_path.compare(txt_path.size() - 4, 4, ".npy") == 0) txt_path.resize(txt_path.size() - 4);
  txt_path += ".txt";

  const std::string tmp = npy_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    IMGSEARCH_CHECK(out.good(), ErrorKind::Io, "{}: cannot create", tmp);
    const std::uint16_t header_len = static_cast<std::uint16_t>(header.size());
    out.write("\x93NUMPY\x01\x00", 8);
    out.write(reinterpret_cast<const char*>(&header_len), 2);
    out << header;
    out.write(reinterpret_cast<const char*>(f.vectors.data()), static_cast<std::streamsize>(f.vectors.size() * sizeof(float)));
    out.flush();
    IMGSEARCH_CHECK(out.good(), ErrorKind::Io, "{}: write failed", tmp);
  }
  const std::string txt_tmp = txt_path + ".tmp";
  {
    std::ofstream out(txt_tmp, std::ios::trunc);
    IMGSEARCH_CHECK(out.good(), ErrorKind::Io, "{}: cannot create", txt_tmp);
    for (const std::string& p : f.paths) out << p << '\n';
    out.flush();
    IMGSEARCH_CHECK(out.good(), ErrorKind::Io, "{}: write failed", txt_tmp);
  }
  IMGSEARCH_CHECK(std::rename(tmp.c_str(), npy_path.c_str()) == 0, ErrorKind::Io, "{}: cannot rename", npy_path);
  IMGSEARCH_CHECK(std::rename(txt_tmp.c_str(), txt_path.c_str()) == 0, ErrorKind::Io, "{}: cannot rename", txt_path);
}

}  // namespace imgsearch
