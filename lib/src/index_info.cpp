#include "imgsearch/index_info.h"

#include <nlohmann/json.hpp>

namespace imgsearch {

std::string index_info_json(const ImageIndex& index, const std::string& path, std::uint64_t file_size) {
  nlohmann::json out;
  out["index"] = path;
  out["count"] = index.size();
  out["tombstones"] = index.tombstones();  // removed images' nodes still in the graph
  out["dim"] = index.dim();
  out["file_size"] = file_size;
  out["metric"] = "cosine";
  out["vectors"] = vector_codes_name(index.vector_codes());
  out["vectors_chosen"] = index.vector_codes_chosen();  // false: `index --vectors auto` may change it
  out["hnsw"] = {{"M", index.params().M},
                 {"ef_construction", index.params().ef_construction},
                 {"ef_search", index.params().ef_search}};
  out["model"] = nlohmann::json::parse(index.model().to_json());
  out["model_dim"] = index.model_dim();
  const Projection& p = index.projection();
  out["projection"] = p.enabled() ? nlohmann::json{{"in_dim", p.in_dim},
                                                   {"out_dim", p.out_dim},
                                                   {"fitted", nlohmann::json::parse(p.description.empty() ? "{}" : p.description,
                                                                                    nullptr, false)}}
                                  : nlohmann::json(nullptr);
  if (p.enabled()) out["projection"]["rescore"] = p.rescore;
  if (p.has_hidden_layer()) out["projection"]["hidden"] = p.hidden;
  if (p.uses_colour()) {
    out["projection"]["colour_bins"] = p.colour_bins;
    out["projection"]["colour_weight"] = p.colour_weight;
  }
  out["colour_histograms"] = index.colour_count();  // entries with one (COLRHIST)
  const Augmentation& a = index.augmentation();
  out["augmentation"] = a.enabled() ? nlohmann::json{{"k", a.k}, {"alpha", a.alpha}} : nlohmann::json(nullptr);
  const QueryExpansion& q = index.query_expansion();
  out["query_expansion"] = q.enabled() ? nlohmann::json{{"k", q.k}, {"alpha", q.alpha}} : nlohmann::json(nullptr);
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace imgsearch
