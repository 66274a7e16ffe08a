// What `imgsearch info --json` prints about an index, shared with `serve` (GET /api/info).
#pragma once

#include "imgsearch/index.h"

#include <cstdint>
#include <string>

namespace imgsearch {

// One compact JSON object: index, count, dim, file_size, metric, hnsw, model.
std::string index_info_json(const ImageIndex& index, const std::string& path, std::uint64_t file_size);

}  // namespace imgsearch
