// Retrieval metrics, as pure functions of where the relevant items landed in a ranking.
//
// A ranking is summarised by `ranks`: the 1-based positions of the relevant items,
// ascending, and `relevant`: how many relevant items exist in all (a relevant item that
// the ranking never reached counts as missed). Definitions: docs/eval.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace imgsearch {

// Fraction of the first k positions that hold a relevant item.
double precision_at(const std::vector<std::uint32_t>& ranks, int k);
// Mean over the relevant items of the precision at each one's rank; items never reached
// contribute 0 (TREC's non-interpolated average precision). 0 when relevant == 0.
double average_precision(const std::vector<std::uint32_t>& ranks, std::size_t relevant);
// Precision at position R, R = relevant (= recall at R).
double r_precision(const std::vector<std::uint32_t>& ranks, std::size_t relevant);

// Recall levels 0, 1/(levels-1), ..., 1 of the interpolated precision-recall curve.
std::vector<double> recall_levels(int levels = 21);
// Interpolated precision at each recall level: the best precision reached at that
// recall or beyond (0 where that recall is never reached). Adds into `sum` (size levels).
void add_interpolated_pr(const std::vector<std::uint32_t>& ranks, std::size_t relevant, std::vector<double>& sum);

// Nearest-rank percentile (p in (0, 100]) of `values`; 0 for no values. Reorders values.
double percentile(std::vector<double>& values, double p);

// |a ∩ b| / k, over the first k ids of each list (ANN recall@k against the exact top k).
double recall_at(const std::vector<std::uint32_t>& approximate, const std::vector<std::uint32_t>& exact, int k);

// Where the relevant items of a scored collection rank, for a ranking by descending score
// in which a non-relevant item ties against a relevant one (pessimistic about ties).
// For i in [0, n): scores[i], and kind[i] = kRelevant, kNotRelevant or kLeftOut (not in the
// ranking at all, e.g. the query itself). Positions start after `offset`. O(n log R).
enum RankKind : std::uint8_t { kNotRelevant = 0, kRelevant = 1, kLeftOut = 2 };
std::vector<std::uint32_t> ranks_of_relevant(const float* scores, const std::uint8_t* kind, std::size_t n,
                                             std::uint32_t offset = 0);

}  // namespace imgsearch
