// The extraction pipeline: decoding and preprocessing on worker threads feed batched
// inference through a bounded queue, so the CNN never waits for JPEG decoding.
#pragma once

#include "imgsearch/duplicate_signals.h"
#include "imgsearch/image.h"
#include "imgsearch/model.h"

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace imgsearch {

struct ExtractOptions {
  int threads = 0;     // decode workers; 0 = all cores
  int batch_size = 8;  // images per forward pass
  DecodeOptions decode;
  const std::atomic<bool>* cancel = nullptr;  // set it to stop early; results so far stand
};

struct ExtractResult {
  std::size_t input_index = 0;  // position in the input list
  std::string path;
  bool ok = false;
  std::string error;           // why it failed, when !ok
  const float* vector = nullptr;  // model.output_dim() floats when ok; valid during the callback
  // Computed from the same bytes and decoded pixels as the vector (a few percent of the
  // decode); valid during the callback, present when ok.
  const DuplicateSignals* signals = nullptr;
  const std::vector<float>* colour = nullptr;  // colour_histogram.h; the same validity
};

// Calls on_result once per input (on the calling thread, in completion order).
// A file that cannot be decoded gives a failed result; it never stops the run.
// Returns the number of inputs that succeeded.
std::size_t extract_features(Model& model, const std::vector<std::string>& paths, const ExtractOptions& options,
                             const std::function<void(const ExtractResult&)>& on_result);

}  // namespace imgsearch
