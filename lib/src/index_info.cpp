#include "imgsearch/index_info.h"

#include <nlohmann/json.hpp>

namespace imgsearch {

std::string index_info_json(const ImageIndex& index, const std::string& path, std::uint64_t file_size) {
  nlohmann::json out;
  out["index"] = path;
  out["count"] = index.size();
  out["dim"] = index.dim();
  out["file_size"] = file_size;
  out["metric"] = "cosine";
  out["hnsw"] = {{"M", index.params().M},
                 {"ef_construction", index.params().ef_construction},
                 {"ef_search", index.params().ef_search}};
  out["model"] = nlohmann::json::parse(index.model().to_json());
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace imgsearch
