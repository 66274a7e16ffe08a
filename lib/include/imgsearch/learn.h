// `imgsearch learn`: a projection fitted on the labelled images of an index (LDA with
// shrinkage, or a small head trained on the CPU), stored with the index and applied to
// every stored vector and every query.
#pragma once

#include "imgsearch/evaluation.h"
#include "imgsearch/index.h"

#include <cstdint>
#include <string>

namespace imgsearch {

enum class LearnMethod {
  Lda,   // linear discriminant analysis: closed form, seconds
  Head,  // Linear-BatchNorm-ReLU-Linear trained with a proxy loss: non-linear, better, slower
};

struct LearnOptions {
  LearnMethod method = LearnMethod::Lda;
  int dim = 64;             // output dimension; LDA: at most labels - 1 (fewer are used then)
  double shrinkage = 0.1;   // within-class scatter blended towards its mean variance: (1-s) Sw + s tr(Sw)/D I
  double holdout = 0;       // fraction of the labelled images kept out of the fit (is_held_out)
  std::uint64_t seed = 1;
  // Fit on [model vector ; colour_weight * sqrt(colour histogram)] (refinement.h): a
  // colour projection, for labels about colour. Needs every fitted image's histogram.
  bool colour = false;
  double colour_weight = 0.5;
  int threads = 0;          // 0 = all cores
  int hidden = 1024;        // Head: hidden units
  int epochs = 0;           // Head: passes over the fitted images; 0 = auto: 10, more for small sets (kMinHeadSteps)
  std::size_t max_fit_images = 100000;  // learn_pca: a seeded sample of at most this many images
  std::string description;  // recorded with the projection (labels used, ...); JSON object text or ""
};

// The auto epoch count trains for at least this many batches, so that a few hundred
// labelled images are not left half-trained.
constexpr int kMinHeadSteps = 600;

struct LearnReport {
  std::size_t images = 0;     // in the index
  std::size_t labelled = 0;   // with a label
  std::size_t held_out = 0;   // labelled, kept out of the fit
  std::size_t fitted = 0;     // images the projection was fitted on
  std::size_t labels = 0;     // distinct labels among them
  int epochs = 0;             // Head: the passes trained
  int in_dim = 0, out_dim = 0;  // in_dim: the model's, plus colour_bins
  int colour_bins = 0;
  double fit_seconds = 0, apply_seconds = 0;
  std::uint64_t vector_bytes_before = 0, vector_bytes_after = 0;  // the vectors searched (size() x dim x 4)
  double energy_kept = 0;  // learn_pca: the fitted vectors' squared length the kept directions hold, 0..1
};

// Fits linear discriminant analysis (or, with LearnMethod::Head, trains the head, seeded
// by options.seed) on the model vectors (with options.colour, and their colour histograms)
// of the labelled, not held-out images and sets it as the index's projection (replacing any
// earlier one): the search vectors become W (x - mean), or the head's output, normalised.
// A head's description gets "epochs": the passes trained. Throws Error(InvalidArgument)
// when fewer than two labels with two images each remain.
LearnReport learn_projection(ImageIndex& index, const Labels& labels, const LearnOptions& options);

// Without labels: the out_dim = options.dim directions that hold most of the model
// vectors' energy (PCA of their second moment, not centred, no whitening), fitted on a
// seeded sample of at most options.max_fit_images images (options.seed), set as the
// index's projection. Not centred, the projection is a rotation followed by a cut, so
// cosines stay close to the model's own when energy_kept is near 1: it saves memory and
// search time, not a gain in quality (docs/eval.md). dim must be below the model's.
LearnReport learn_pca(ImageIndex& index, const LearnOptions& options);

}  // namespace imgsearch
