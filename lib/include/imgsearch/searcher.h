// The one path from image bytes to ranked hits, shared by `query`, `serve` and `dedup`:
// decode (JPEGs at a reduced DCT scale where that is enough), preprocess, embed, search.
#pragma once

#include "imgsearch/duplicate_signals.h"
#include "imgsearch/image.h"
#include "imgsearch/index.h"
#include "imgsearch/model.h"
#include "imgsearch/refinement.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace imgsearch {

struct SearchOptions {
  int k = 9;
  int ef = 0;          // HNSW beam width; 0 = the index's default (>= k is enforced)
  bool exact = false;  // brute force over every vector instead of HNSW
  // Query expansion (refinement.h): unset = the default stored with the index.
  std::optional<QueryExpansion> expansion;
};

// Loads the model an index was built with, fixing its preprocessing to the index's:
// refuses (Error(Mismatch)) a model file whose content hash differs from the one the
// index recorded, mean/std overrides that contradict the index, or a different output
// dimension. `model_path` is the file to load (the caller resolves defaults).
std::unique_ptr<Model> load_model_for_index(const std::string& model_path, ModelOptions options,
                                            const ModelInfo& index_model, const std::string& index_path);

// Not thread-safe (the model is not): one Searcher per thread, or a lock around embed().
// Searching alone (search()) only reads the index and may run on many threads at once.
class Searcher {
 public:
  // `index` and `model` must outlive the Searcher. `decode.min_shorter_side` is set here.
  Searcher(const ImageIndex& index, Model& model, DecodeOptions decode = {});

  const ImageIndex& index() const { return index_; }
  Model& model() { return model_; }
  const DecodeOptions& decode_options() const { return decode_; }

  // Decodes an image file or buffer the way extraction does; throws Error(Decode/Io)
  // whose message starts with the file name (or `name` for a buffer).
  Image decode_file(const std::string& path) const;
  Image decode_memory(const std::uint8_t* data, std::size_t size, const std::string& name) const;
  // decode_file, plus the image's duplicate signals from the same bytes and pixels (the
  // ones indexing stores, so `dedup --query` compares like with like).
  Image decode_file_with_signals(const std::string& path, DuplicateSignals& signals) const;

  // The image made ready for the model (Model::prepare). Thread-safe.
  ModelInput prepare(const Image& image) const;

  // One or more images -> the model's embeddings (index().model_dim() floats each), one
  // forward pass for all of them. Throws Error(Model) when the model fails.
  std::vector<float> embed(const std::vector<const Image*>& images);
  std::vector<float> embed(const Image& image) { return embed(std::vector<const Image*>{&image}); }
  // The model half of embed(), for images already prepared. `serve` prepares on its
  // request threads and batches the forward passes of concurrent requests through this.
  std::vector<float> embed_prepared(const std::vector<const ModelInput*>& inputs);
  std::vector<float> embed_file(const std::string& path) { return embed(decode_file(path)); }

  // The image's colour histogram (colour_histogram.h), as indexing stores it.
  static std::vector<float> colour_of(const Image& image);

  // The ranked hits for a model embedding (best first), with the index's post-processing:
  // projection, then query expansion (scores are against the expanded query). `colour`
  // is the query image's colour_of(); an index with a colour projection needs it
  // (Error(InvalidArgument) when null), others ignore it.
  std::vector<SearchHit> search(const float* vector, const float* colour, const SearchOptions& options) const;
  // The ranked hits for an indexed image (its model vector searched like a new image's),
  // itself included: rank 1 unless a duplicate ties or augmentation moved its stored vector.
  std::vector<SearchHit> search_by_id(std::uint32_t id, const SearchOptions& options) const;

  // decode, embed, colour_of, search: what `query` does with an image file.
  std::vector<SearchHit> search_file(const std::string& path, const SearchOptions& options) {
    const Image image = decode_file(path);
    const auto v = embed(image);
    const auto colour = colour_of(image);
    return search(v.data(), colour.data(), options);
  }

 private:
  const ImageIndex& index_;
  Model& model_;
  DecodeOptions decode_;
};

}  // namespace imgsearch
