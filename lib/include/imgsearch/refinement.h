// Post-processing stored with an index and applied to every search (docs/eval.md,
// "Post-processing"): a learned projection and database-side augmentation change the
// vectors the index searches; alpha query expansion refines every query. The model's own
// vectors are kept beside them, so each can be changed or undone without the images.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace imgsearch {

class ImageIndex;
struct SearchHit;

// alpha-QE (Radenovic, Tolias & Chum, 2018): the query is replaced by the normalised sum of
// itself and its k best hits, each weighted by max(score, 0)^alpha, and searched again.
struct QueryExpansion {
  int k = 0;  // 0 = off
  float alpha = 3;
  bool enabled() const { return k > 0; }
};

// Database-side augmentation: each stored vector is replaced by the normalised sum of
// itself and its k nearest neighbours (by the unaugmented vectors), weighted the same way.
struct Augmentation {
  int k = 0;  // 0 = off
  float alpha = 3;
  bool enabled() const { return k > 0; }
};

// A map fitted by `imgsearch learn`: y = W (x - mean), then L2-normalised; or, for a
// learned head (hidden > 0), y = W2 relu(W (x - mean) + b1) + b2, then L2-normalised. x is
// the normalised model vector, followed, for a colour projection, by
// colour_weight * sqrt(the image's colour histogram) (colour_histogram.h).
struct Projection {
  int in_dim = 0, out_dim = 0;  // in_dim: the model's dimension; out_dim 0 = none
  int colour_bins = 0;          // 0, or kColourBins: the colour histogram is part of x
  float colour_weight = 0;      // its weight against the unit-length model vector
  std::vector<float> mean;      // input_dim()
  std::vector<float> matrix;    // W: first_rows() x input_dim(), row-major
  int hidden = 0;                    // a head's hidden units (BatchNorm folded into W, b1); 0 = linear
  std::vector<float> hidden_bias;    // b1: hidden
  std::vector<float> output_matrix;  // W2: out_dim x hidden, row-major
  std::vector<float> output_bias;    // b2: out_dim
  std::string description;      // JSON object: how it was fitted (informative, but see rescore)
  // A projection for memory, not a new metric (learn_pca): a plain search (no augmentation,
  // no query expansion) ranks its max(ef, k) candidates again by the model vectors' own
  // cosine. Not a field of the file: set on load when the description's "method" is "pca".
  bool rescore = false;
  bool enabled() const { return out_dim > 0; }
  bool uses_colour() const { return colour_bins > 0; }
  int input_dim() const { return in_dim + colour_bins; }
  bool has_hidden_layer() const { return hidden > 0; }
  int first_rows() const { return hidden > 0 ? hidden : out_dim; }
};

// A head's hidden units at most (the loader refuses more).
constexpr int kMaxHiddenUnits = 8192;

// Throws Error(InvalidArgument) unless an enabled projection's colour fields are this
// imgsearch's (0 or kColourBins bins, a positive weight), its sizes agree with each other
// (out_dim <= input_dim() for a linear one, <= hidden for a head) and every value is finite.
void check_projection(const Projection& p);

// The colour part of a projection's input: weight * sqrt(histogram) (sqrt: Hellinger, so
// that small but telling bins count; docs/eval.md), colour_bins floats into `out`.
void colour_input(const Projection& p, const float* histogram, float* out);

// Limits every loader and setter enforces.
constexpr int kMaxExpansionK = 1000;
constexpr float kMaxAlpha = 100;

// Throws Error(InvalidArgument) unless 0 <= k <= kMaxExpansionK and 0 <= alpha <= kMaxAlpha.
void check_expansion_settings(int k, float alpha, const char* what);

// max(score, 0)^alpha: the weight of a neighbour in QE and augmentation.
float expansion_weight(float score, float alpha);

// `out` = normalise(query + sum over the first k hits of weight * index.vector(hit)).
void expand_query(const ImageIndex& index, const float* query, const std::vector<SearchHit>& hits, int k, float alpha,
                  float* out);

// A model vector (index.model_dim() floats, any norm) in the space the index searches:
// normalised, projected when the index has a projection, normalised again. `colour` is
// the image's colour histogram (colour_histogram.h); a colour projection needs it
// (Error(InvalidArgument) when null), other indexes ignore it.
std::vector<float> to_search_space(const ImageIndex& index, const float* model_vector, const float* colour);

// What `query` does with a model vector: to the search space, search (HNSW, or exact),
// then `qe` (a second search from the expanded query). Best first. `not_expanded_from`
// (an entry id, or kNoEntry) is never used to expand: `eval` passes the query image's own
// entry, so that an indexed image is searched as if it were a new one.
constexpr std::uint32_t kNoEntry = 0xFFFFFFFFu;
std::vector<SearchHit> refined_search(const ImageIndex& index, const float* model_vector, const float* colour, int k,
                                      int ef, bool exact, const QueryExpansion& qe,
                                      std::uint32_t not_expanded_from = kNoEntry);

}  // namespace imgsearch
