// Measuring near-duplicate detection against a ground truth: pair precision, recall and F1
// for each dedup preset, for each signal alone (the baselines), recall per edit type, and
// threshold sweeps. Used by `imgsearch eval --duplicates`; protocol in docs/dedup.md.
#pragma once

#include "imgsearch/duplicates.h"
#include "imgsearch/index.h"

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

namespace imgsearch {

struct DuplicateTruth {
  std::unordered_set<std::uint64_t> pairs;  // (min id << 32) | max id
  std::vector<std::string> edit;            // per index id: "original", an edit name, or ""
  std::size_t listed = 0;                   // paths the file names
  std::vector<std::string> missing;         // of those, not in the index
};

// Accepts: a CSV with a header holding "group" and "path" columns (optionally "edit":
// rows with "original" are the source of their group's edits), a CSV with "path_a" and
// "path_b" (one true pair per row), `imgsearch dedup --format json` output (one group per
// line), or a JSON array of groups, each an array of paths. Relative paths are taken
// from the current directory. Throws Error(Io/Format) naming the file.
DuplicateTruth load_duplicate_truth(const std::string& path, const ImageIndex& index);

struct PairFigures {
  std::size_t predicted = 0, correct = 0, truth = 0;
  double precision = 0, recall = 0, f1 = 0;
};

struct EditRecall {
  std::string edit;
  std::size_t pairs = 0, found = 0;  // (original, copy with this edit) pairs
};

struct DuplicateMethodResult {
  std::string name;         // "preset near", "cnn >= 0.90", ...
  bool grouped = false;     // presets: pairs within the groups; signals alone: raw pairs
  PairFigures figures;
  std::vector<EditRecall> per_edit;  // sorted by edit name
};

struct SweepPoint {
  std::string signal;  // "phash" (Hamming <=, all orientations) or "cnn" (cosine >=)
  double threshold = 0;
  PairFigures figures;
};

struct DuplicateEvalReport {
  std::size_t images = 0, truth_pairs = 0;
  std::vector<DuplicateMethodResult> methods;
  std::vector<SweepPoint> sweep;
};

// `neighbours`: embedding neighbours per image for the cosine signals (the presets use
// the default of `dedup`).
// `extra`: further settings measured like the presets (grouped), under their names.
DuplicateEvalReport evaluate_duplicates(const ImageIndex& index, const DuplicateTruth& truth, int neighbours = 64,
                                        int threads = 0,
                                        const std::vector<std::pair<std::string, DedupThresholds>>& extra = {});

}  // namespace imgsearch
