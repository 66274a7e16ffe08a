#include "imgsearch/metrics.h"

#include "imgsearch/error.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace imgsearch {

double precision_at(const std::vector<std::uint32_t>& ranks, int k) {
  IMGSEARCH_CHECK(k > 0, ErrorKind::InvalidArgument, "precision_at: k must be positive, not {}", k);
  const auto hits = std::upper_bound(ranks.begin(), ranks.end(), static_cast<std::uint32_t>(k)) - ranks.begin();
  return static_cast<double>(hits) / k;
}

double average_precision(const std::vector<std::uint32_t>& ranks, std::size_t relevant) {
  if (relevant == 0) return 0;
  double sum = 0;
  for (std::size_t j = 0; j < ranks.size() && j < relevant; ++j) sum += static_cast<double>(j + 1) / ranks[j];
  return sum / static_cast<double>(relevant);
}

double r_precision(const std::vector<std::uint32_t>& ranks, std::size_t relevant) {
  if (relevant == 0) return 0;
  const auto hits = std::upper_bound(ranks.begin(), ranks.end(), static_cast<std::uint32_t>(relevant)) - ranks.begin();
  return static_cast<double>(hits) / static_cast<double>(relevant);
}

std::vector<double> recall_levels(int levels) {
  IMGSEARCH_CHECK(levels >= 2, ErrorKind::InvalidArgument, "recall_levels: need at least 2 levels, not {}", levels);
  std::vector<double> out(static_cast<std::size_t>(levels));
  for (int i = 0; i < levels; ++i) out[static_cast<std::size_t>(i)] = static_cast<double>(i) / (levels - 1);
  return out;
}

void add_interpolated_pr(const std::vector<std::uint32_t>& ranks, std::size_t relevant, std::vector<double>& sum) {
  if (relevant == 0 || sum.size() < 2) return;
  const std::size_t levels = sum.size();
  // Walk the relevant items from the last one back, carrying the best precision seen at
  // this recall or beyond; each level takes the carry of the first item reaching it.
  std::size_t level = levels;
  double best = 0;
  const std::size_t reached = std::min(ranks.size(), relevant);
  // Levels above the highest recall reached get nothing (precision 0 there).
  const double max_recall = static_cast<double>(reached) / static_cast<double>(relevant);
  while (level > 0 && static_cast<double>(level - 1) / static_cast<double>(levels - 1) > max_recall + 1e-12) --level;
  for (std::size_t j = reached; j-- > 0;) {
    best = std::max(best, static_cast<double>(j + 1) / ranks[j]);
    const double recall = static_cast<double>(j + 1) / static_cast<double>(relevant);
    // Levels l with l/(levels-1) <= recall and above the previous (smaller) recall.
    const double prev_recall = static_cast<double>(j) / static_cast<double>(relevant);
    while (level > 0) {
      const double r = static_cast<double>(level - 1) / static_cast<double>(levels - 1);
      if (r > recall + 1e-12) break;
      if (j > 0 && r <= prev_recall + 1e-12) break;
      sum[level - 1] += best;
      --level;
    }
  }
}

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  IMGSEARCH_CHECK(p > 0 && p <= 100, ErrorKind::InvalidArgument, "percentile: p must be in (0, 100], not {}", p);
  std::size_t rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  rank = std::clamp<std::size_t>(rank, 1, values.size());
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank - 1), values.end());
  return values[rank - 1];
}

double recall_at(const std::vector<std::uint32_t>& approximate, const std::vector<std::uint32_t>& exact, int k) {
  IMGSEARCH_CHECK(k > 0, ErrorKind::InvalidArgument, "recall_at: k must be positive, not {}", k);
  const std::size_t ke = std::min<std::size_t>(exact.size(), static_cast<std::size_t>(k));
  const std::size_t ka = std::min<std::size_t>(approximate.size(), static_cast<std::size_t>(k));
  if (ke == 0) return 0;
  std::size_t found = 0;
  for (std::size_t i = 0; i < ka; ++i)
    if (std::find(exact.begin(), exact.begin() + static_cast<std::ptrdiff_t>(ke), approximate[i]) !=
        exact.begin() + static_cast<std::ptrdiff_t>(ke))
      ++found;
  return static_cast<double>(found) / static_cast<double>(ke);
}

std::vector<std::uint32_t> ranks_of_relevant(const float* scores, const std::uint8_t* kind, std::size_t n,
                                             std::uint32_t offset) {
  std::vector<float> rel;
  for (std::size_t i = 0; i < n; ++i)
    if (kind[i] == kRelevant) rel.push_back(scores[i]);
  std::sort(rel.begin(), rel.end(), std::greater<float>());
  // above[j]: non-relevant items ranked above relevant item j, i.e. with score >= rel[j].
  // A non-relevant score s is above every j from the first rel[j] <= s on: count it
  // there, then prefix-sum.
  std::vector<std::uint32_t> above(rel.size() + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    if (kind[i] != kNotRelevant) continue;
    const float s = scores[i];
    const auto pos = std::lower_bound(rel.begin(), rel.end(), s, std::greater<float>()) - rel.begin();
    ++above[static_cast<std::size_t>(pos)];
  }
  std::vector<std::uint32_t> ranks(rel.size());
  std::uint32_t count = 0;
  for (std::size_t j = 0; j < rel.size(); ++j) {
    count += above[j];
    ranks[j] = offset + static_cast<std::uint32_t>(j) + 1 + count;
  }
  return ranks;
}

}  // namespace imgsearch
