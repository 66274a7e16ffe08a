#include "imgsearch/searcher.h"

#include "imgsearch/colour_histogram.h"
#include "imgsearch/error.h"
#include "imgsearch/preprocess.h"

#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace imgsearch {

std::unique_ptr<Model> load_model_for_index(const std::string& model_path, ModelOptions options,
                                            const ModelInfo& index_model, const std::string& index_path) {
  if (::access(model_path.c_str(), R_OK) != 0)
    throw_error(ErrorKind::Model, "{}: cannot open model: {}{}", model_path, std::strerror(errno),
                model_path == index_model.path ? fmt::format(" (index {} was built with it)", index_path) : "");
  if (!index_model.content_hash.empty()) {
    const std::string hash = hash_file(model_path);
    if (hash != index_model.content_hash)
      throw_error(ErrorKind::Mismatch,
                  "{}: the index was built with model {} ({}, hash {}), but {} has hash {}; query with that model, "
                  "or rebuild the index with `imgsearch index --rebuild -m {}`",
                  index_path, index_model.path, index_model.name, index_model.content_hash, model_path, hash,
                  model_path);
  }
  // The index fixes the preprocessing its vectors were made with.
  ModelOverrides& o = options.overrides;
  if (o.mean && *o.mean != index_model.preprocess.mean)
    throw_error(ErrorKind::Mismatch, "{}: --mean differs from the preprocessing the index was built with", index_path);
  if (o.std && *o.std != index_model.preprocess.std)
    throw_error(ErrorKind::Mismatch, "{}: --std differs from the preprocessing the index was built with", index_path);
  o.mean = index_model.preprocess.mean;
  o.std = index_model.preprocess.std;
  o.input_size = index_model.preprocess.input_size;
  o.resize = index_model.preprocess.resize;
  if (o.descriptor && *o.descriptor != index_model.descriptor)
    throw_error(ErrorKind::Mismatch,
                "{}: --descriptor {} differs from the index's descriptor {}; an index keeps one (`imgsearch index "
                "--rebuild --descriptor {}` makes a new one)",
                index_path, o.descriptor->name(), index_model.descriptor.name(), o.descriptor->name());
  o.descriptor = index_model.descriptor;
  auto model = Model::load(model_path, options);
  if (index_model.output_dim > 0 && model->info().output_dim > 0 && model->info().output_dim != index_model.output_dim)
    throw_error(ErrorKind::Mismatch, "{}: model {} gives {}-d vectors, the index holds {}-d", index_path, model_path,
                model->info().output_dim, index_model.output_dim);
  return model;
}

Searcher::Searcher(const ImageIndex& index, Model& model, DecodeOptions decode)
    : index_(index), model_(model), decode_(decode) {
  // Extraction decodes JPEGs at a reduced DCT scale when the shorter side stays at least
  // twice the resize target; queries must see the same pixels to get the same vectors.
  decode_.min_shorter_side = model_.min_decode_shorter_side();
}

Image Searcher::decode_file(const std::string& path) const { return decode_image_file(path, decode_); }

Image Searcher::decode_file_with_signals(const std::string& path, DuplicateSignals& signals) const {
  return decode_with_signals(path, decode_, signals);
}

Image Searcher::decode_memory(const std::uint8_t* data, std::size_t size, const std::string& name) const {
  return decode_image_memory(data, size, decode_, name);
}

ModelInput Searcher::prepare(const Image& image) const { return model_.prepare(image); }

std::vector<float> Searcher::embed(const std::vector<const Image*>& images) {
  std::vector<ModelInput> prepared;
  prepared.reserve(images.size());
  for (const Image* image : images) prepared.push_back(prepare(*image));
  std::vector<const ModelInput*> inputs;
  for (const ModelInput& in : prepared) inputs.push_back(&in);
  return embed_prepared(inputs);
}

std::vector<float> Searcher::embed_prepared(const std::vector<const ModelInput*>& inputs) {
  if (inputs.empty()) return {};
  const int dim = model_.output_dim();
  IMGSEARCH_CHECK(dim == index_.model_dim(), ErrorKind::Mismatch, "model {} gives {}-d vectors, the index holds {}-d",
                  model_.info().path, dim, index_.model_dim());
  std::vector<float> out(static_cast<std::size_t>(dim) * inputs.size());
  model_.embed(inputs, out.data());
  return out;
}

std::vector<float> Searcher::colour_of(const Image& image) { return colour_histogram(image); }

std::vector<SearchHit> Searcher::search(const float* vector, const float* colour, const SearchOptions& options) const {
  IMGSEARCH_CHECK(options.k >= 1, ErrorKind::InvalidArgument, "k must be at least 1, got {}", options.k);
  const QueryExpansion expansion = options.expansion ? *options.expansion : index_.query_expansion();
  return refined_search(index_, vector, colour, options.k, options.ef, options.exact, expansion);
}

std::vector<SearchHit> Searcher::search_by_id(std::uint32_t id, const SearchOptions& options) const {
  IMGSEARCH_CHECK(id < index_.size(), ErrorKind::InvalidArgument, "no image with id {} (the index holds {})", id,
                  index_.size());
  return search(index_.model_vector_copy(id).data(), index_.colour(id), options);
}

}  // namespace imgsearch
