// imgsearch info [-i INDEX] [--json]
#include "cli_common.h"

#include <imgsearch/index_info.h>
#include <imgsearch/index_io.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <iostream>

namespace imgsearch::cli {

namespace {

int run_info(const std::string& index_option, bool json) {
  const std::string path = resolve_index_path(index_option);
  // Every section is read and checked (info is how a user checks a file), but the colour
  // histograms are only counted, and a projected index's model vectors and an f16 index's
  // rows stay in the file (at 10^6 images, 5 GB and 2.6 GB not copied).
  IndexLoadOptions options;
  options.colour_histograms = false;
  options.model_vectors_in_memory = false;
  options.search_rows_in_memory = false;
  const ImageIndex index = load_index(path, options);
  const ModelInfo& m = index.model();
  const auto file_size = std::filesystem::file_size(path);
  if (json) {
    std::cout << index_info_json(index, path, file_size) << '\n';
    return kExitOk;
  }
  std::cout << fmt::format("index:      {}\n", path);
  std::cout << fmt::format("images:     {}\n", index.size());
  std::cout << fmt::format("dimension:  {}\n", index.dim());
  const VectorCodes codes = index.vector_codes();
  // Chosen: set by `index --vectors`; otherwise `index` may turn f32 into int8 as the index grows.
  const std::string how = index.vector_codes_chosen() ? "chosen with --vectors"
                          : codes == VectorCodes::F32 ? fmt::format("auto: int8 from {} images", auto_int8_from())
                                                      : "auto";
  std::cout << fmt::format("vectors:    {}{} ({})\n", vector_codes_name(codes),
                           codes == VectorCodes::F32   ? ""
                           : codes == VectorCodes::F16 ? " codes in memory, stored as the file's rows (binary16)"
                                                       : " codes in memory; float32 rows read from the file to rescore",
                           how);
  std::cout << fmt::format("file size:  {} bytes ({:.1f} MiB)\n", file_size, file_size / 1048576.0);
  std::cout << fmt::format("model:      {} ({} weights)\n", m.name, m.weights.empty() ? "unknown" : m.weights);
  std::cout << fmt::format("model file: {}\n", m.path);
  std::cout << fmt::format("model hash: {}\n", m.content_hash);
  const std::string sizes = m.descriptor.pooled()
                                ? fmt::format("shorter side {} -> center crop {}", m.preprocess.resize, m.preprocess.input_size)
                                : fmt::format("whole image, longer side {}", fmt::join(m.descriptor.scales, ", "));
  std::cout << fmt::format("preprocess: {}, mean {:.4g},{:.4g},{:.4g} std {:.4g},{:.4g},{:.4g}\n", sizes,
                           m.preprocess.mean[0], m.preprocess.mean[1], m.preprocess.mean[2], m.preprocess.std[0],
                           m.preprocess.std[1], m.preprocess.std[2]);
  std::cout << fmt::format("descriptor: {}\n", m.descriptor.pooled()
                                                   ? "pooled (the model's output)"
                                                   : "R-MAC (regional max pooling of the feature map, summed over the scales)");
  std::cout << fmt::format("hnsw:       M={} ef_construction={} ef_search={}\n", index.params().M,
                           index.params().ef_construction, index.params().ef_search);
  if (index.tombstones())
    std::cout << fmt::format("deleted:    {} removed images still in the graph ({:.1f} % of its nodes; compacted past {:.0f} %)\n",
                             index.tombstones(), 100.0 * index.tombstones() / index.graph_nodes(),
                             ImageIndex::kCompactFraction * 100);
  const Projection& p = index.projection();
  if (p.enabled())
    std::cout << fmt::format("projection: learned, {}{}{} -> {} dimensions{} ({})\n", p.in_dim,
                             p.uses_colour() ? fmt::format(" + {} colour bins x {:g}", p.colour_bins, p.colour_weight) : "",
                             p.has_hidden_layer() ? fmt::format(" -> {} hidden units (ReLU)", p.hidden) : "",
                             p.out_dim, p.rescore ? ", hits rescored by the model's vectors" : "", p.description);
  const Augmentation& a = index.augmentation();
  if (a.enabled()) std::cout << fmt::format("augmentation: k={} alpha={:g}\n", a.k, a.alpha);
  const QueryExpansion& q = index.query_expansion();
  if (q.enabled()) std::cout << fmt::format("query expansion: k={} alpha={:g} (default for every query)\n", q.k, q.alpha);
  return kExitOk;
}

}  // namespace

void setup_info(CLI::App& app, Runner& runner) {
  auto index = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  app.add_option("-i,--index", *index, "index file (default: $IMGSEARCH_INDEX, then ./imgsearch.index)");
  app.add_flag("--json", *json, "print one JSON object");
  app.callback([&runner, index, json] { runner = [index, json] { return run_info(*index, *json); }; });
}

}  // namespace imgsearch::cli
