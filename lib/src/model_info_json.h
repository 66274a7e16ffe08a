// Internal: the model metadata JSON shared by Model::load (embedded "imgsearch.json") and
// the file loaders (the "model" object in features files and indexes).
#pragma once

#include "imgsearch/model.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace imgsearch::detail {

// Checked JSON numbers: nlohmann's get<int>() on 1e300 or get<float>() on 1e300 is an
// out-of-range conversion (undefined behaviour); these throw std::runtime_error instead.
std::int64_t json_integer(const nlohmann::json& j, const char* key, std::int64_t min, std::int64_t max);
float json_float(const nlohmann::json& v, const char* key);

// Parses JSON nested at most `max_depth` deep (dump() and the destructor recurse, so a
// hostile "[[[[..." must not reach them); throws std::exception on bad content.
nlohmann::json parse_json_limited(const std::uint8_t* data, std::size_t size, int max_depth = 16);

// Reads the exporter's metadata keys into `info`; throws std::exception on bad content.
void apply_model_metadata(const nlohmann::json& j, ModelInfo& info);
// Throws Error(Model) naming `where` when a field is out of range.
void validate_model_info(const ModelInfo& info, const std::string& where);

}  // namespace imgsearch::detail
