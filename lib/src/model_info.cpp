// ModelInfo <-> JSON and its validation. Torch-free, so that the file loaders (features
// files, indexes) can live in imgsearch_core without LibTorch.
#include "model_info_json.h"

#include "imgsearch/error.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace imgsearch {

namespace {

std::array<float, 3> read_triple(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  if (!v.is_array() || v.size() != 3) throw std::runtime_error(std::string(key) + " must be 3 numbers");
  return {detail::json_float(v[0], key), detail::json_float(v[1], key), detail::json_float(v[2], key)};
}

}  // namespace

namespace detail {

std::int64_t json_integer(const nlohmann::json& j, const char* key, std::int64_t min, std::int64_t max) {
  const auto& v = j.at(key);
  std::int64_t x = 0;
  if (v.is_number_unsigned()) {
    const std::uint64_t u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(max)) throw std::runtime_error(std::string(key) + " out of range");
    x = static_cast<std::int64_t>(u);
  } else if (v.is_number_integer()) {
    x = v.get<std::int64_t>();
  } else {
    throw std::runtime_error(std::string(key) + " must be an integer");
  }
  if (x < min || x > max) throw std::runtime_error(std::string(key) + " out of range");
  return x;
}

nlohmann::json parse_json_limited(const std::uint8_t* data, std::size_t size, int max_depth) {
  return nlohmann::json::parse(data, data + size, [max_depth](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > max_depth) throw std::runtime_error("JSON nested more than " + std::to_string(max_depth) + " deep");
    return true;
  });
}

float json_float(const nlohmann::json& v, const char* key) {
  if (!v.is_number()) throw std::runtime_error(std::string(key) + " must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > 1e30) throw std::runtime_error(std::string(key) + " out of range");
  return static_cast<float>(d);
}

void apply_model_metadata(const nlohmann::json& j, ModelInfo& info) {
  if (j.contains("name")) info.name = j.at("name").get<std::string>();
  if (j.contains("weights")) info.weights = j.at("weights").get<std::string>();
  if (j.contains("output_dim")) info.output_dim = static_cast<int>(json_integer(j, "output_dim", 0, 1 << 20));
  if (j.contains("input_size")) info.preprocess.input_size = static_cast<int>(json_integer(j, "input_size", 1, 1 << 16));
  if (j.contains("resize")) info.preprocess.resize = static_cast<int>(json_integer(j, "resize", 1, 1 << 16));
  if (j.contains("mean")) info.preprocess.mean = read_triple(j, "mean");
  if (j.contains("std")) info.preprocess.std = read_triple(j, "std");
  if (j.contains("pixel_scale")) info.preprocess.pixel_scale = json_float(j.at("pixel_scale"), "pixel_scale");
  if (j.contains("color")) info.color = j.at("color").get<std::string>();
  if (j.contains("quantized")) info.quantized = j.at("quantized").get<std::string>();
  if (j.contains("descriptor")) {
    const auto& d = j.at("descriptor");
    const std::string type = d.at("type").get<std::string>();
    if (type == "pooled") {
      info.descriptor = Descriptor{};
    } else if (type == "rmac") {
      info.descriptor.kind = DescriptorKind::Rmac;
      info.descriptor.scales.clear();
      const auto& scales = d.at("scales");
      if (!scales.is_array() || scales.empty() || scales.size() > 8)
        throw std::runtime_error("descriptor scales must be 1 to 8 numbers");
      for (const auto& s : scales) {
        const nlohmann::json one{{"scale", s}};
        info.descriptor.scales.push_back(static_cast<int>(json_integer(one, "scale", 16, 2048)));
      }
    } else {
      throw std::runtime_error("unknown descriptor type '" + type + "' (this imgsearch knows pooled and rmac)");
    }
  }
}

void validate_model_info(const ModelInfo& info, const std::string& where) {
  const auto& p = info.preprocess;
  IMGSEARCH_CHECK(p.input_size >= 16 && p.input_size <= 4096, ErrorKind::Model, "{}: bad input size {}", where,
                  p.input_size);
  IMGSEARCH_CHECK(p.resize >= p.input_size && p.resize <= 8192, ErrorKind::Model,
                  "{}: resize {} must be at least the input size {}", where, p.resize, p.input_size);
  for (int c = 0; c < 3; ++c)
    IMGSEARCH_CHECK(std::isfinite(p.mean[c]) && std::isfinite(p.std[c]) && p.std[c] > 0, ErrorKind::Model,
                    "{}: bad mean/std", where);
  IMGSEARCH_CHECK(p.pixel_scale > 0, ErrorKind::Model, "{}: bad pixel_scale", where);
  IMGSEARCH_CHECK(info.color == "RGB" || info.color == "BGR", ErrorKind::Model, "{}: unsupported colour order {}", where,
                  info.color);
  IMGSEARCH_CHECK(info.quantized.empty() || info.quantized == "int8", ErrorKind::Model,
                  "{}: unsupported quantisation '{}' (this imgsearch runs int8)", where, info.quantized);
  IMGSEARCH_CHECK(info.output_dim >= 0 && info.output_dim <= (1 << 20), ErrorKind::Model, "{}: bad output_dim {}", where,
                  info.output_dim);
  // A Descriptor made in code, not parsed: R-MAC needs the scales parse() would allow.
  const auto& scales = info.descriptor.scales;
  IMGSEARCH_CHECK(info.descriptor.pooled() ||
                      (!scales.empty() && scales.size() <= 8 &&
                       std::all_of(scales.begin(), scales.end(), [](int s) { return s >= 16 && s <= 2048; })),
                  ErrorKind::Model, "{}: bad descriptor {} (1 to 8 scales of 16 to 2048 pixels)", where,
                  info.descriptor.name());
}

}  // namespace detail

std::string ModelInfo::to_json() const {
  nlohmann::json j;
  j["name"] = name;
  j["weights"] = weights;
  j["output_dim"] = output_dim;
  j["input_size"] = preprocess.input_size;
  j["resize"] = preprocess.resize;
  j["interpolation"] = "bilinear-antialias";
  j["mean"] = preprocess.mean;
  j["std"] = preprocess.std;
  j["pixel_scale"] = preprocess.pixel_scale;
  j["color"] = color;
  if (!quantized.empty()) j["quantized"] = quantized;
  // The default writes nothing, so files without a descriptor stay as they were.
  if (!descriptor.pooled()) j["descriptor"] = {{"type", "rmac"}, {"scales", descriptor.scales}};
  j["path"] = path;
  j["content_hash"] = content_hash;
  j["embedded_metadata"] = has_embedded_metadata;
  return j.dump();
}

ModelInfo ModelInfo::from_json(const std::string& text) {
  ModelInfo info;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    detail::apply_model_metadata(j, info);
    if (j.contains("path")) info.path = j.at("path").get<std::string>();
    if (j.contains("content_hash")) info.content_hash = j.at("content_hash").get<std::string>();
    if (j.contains("embedded_metadata")) info.has_embedded_metadata = j.at("embedded_metadata").get<bool>();
  } catch (const std::exception& e) {
    throw_error(ErrorKind::Format, "bad model metadata: {}", e.what());
  }
  detail::validate_model_info(info, "model metadata");
  return info;
}

}  // namespace imgsearch
