// Post-processing: projection, database-side augmentation, query expansion (refinement.h)
// and the ImageIndex members that keep them correct under add and remove.
#include "imgsearch/refinement.h"

#include "imgsearch/colour_histogram.h"
#include "imgsearch/error.h"
#include "imgsearch/index.h"
#include "binary_file.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace imgsearch {

namespace {

constexpr std::uint32_t kNoNeighbour = 0xFFFFFFFFu;  // fewer than k other entries

// Normalises in place; false for a zero or non-finite row.
bool normalise(float* v, int dim) {
  double norm = 0;
  for (int d = 0; d < dim; ++d) norm += double(v[d]) * v[d];
  if (!std::isfinite(norm) || norm <= 0) return false;
  const float inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (int d = 0; d < dim; ++d) v[d] *= inv;
  return true;
}

float dot(const float* a, const float* b, int dim) {
  float s = 0;
  for (int d = 0; d < dim; ++d) s += a[d] * b[d];
  return s;
}

// rows (n x in_dim), with colours (n x colour_bins) for a colour projection -> out
// (n x out_dim): W (x - mean), or a head's W2 relu(W (x - mean) + b1) + b2; each row
// normalised.
void project_rows(const Projection& p, const float* rows, const float* colours, std::size_t n, float* out) {
  if (n == 0) return;
  const int in = p.input_dim();
  std::vector<float> centred(n * static_cast<std::size_t>(in));
  for (std::size_t i = 0; i < n; ++i) {
    float* c = centred.data() + i * in;
    std::memcpy(c, rows + i * p.in_dim, sizeof(float) * p.in_dim);
    if (p.uses_colour()) colour_input(p, colours + i * p.colour_bins, c + p.in_dim);
    for (int d = 0; d < in; ++d) c[d] -= p.mean[d];
  }
  if (!p.has_hidden_layer()) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), p.out_dim, in, 1.0f, centred.data(), in,
                p.matrix.data(), in, 0.0f, out, p.out_dim);
  } else {
    const int h = p.hidden;
    std::vector<float> hidden(n * static_cast<std::size_t>(h));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), h, in, 1.0f, centred.data(), in,
                p.matrix.data(), in, 0.0f, hidden.data(), h);
    for (std::size_t i = 0; i < n; ++i) {
      float* row = hidden.data() + i * h;
      for (int j = 0; j < h; ++j) row[j] = std::max(row[j] + p.hidden_bias[j], 0.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), p.out_dim, h, 1.0f, hidden.data(), h,
                p.output_matrix.data(), h, 0.0f, out, p.out_dim);
    for (std::size_t i = 0; i < n; ++i)
      for (int d = 0; d < p.out_dim; ++d) out[i * p.out_dim + d] += p.output_bias[d];
  }
  for (std::size_t i = 0; i < n; ++i) {
    // A vector the projection maps to zero has no direction: keep a fixed unit vector so
    // that it stays searchable (and finite) rather than failing the whole index.
    if (!normalise(out + i * p.out_dim, p.out_dim)) {
      std::fill(out + i * p.out_dim, out + (i + 1) * p.out_dim, 0.0f);
      out[i * p.out_dim] = 1;
    }
  }
}

// The colour histograms of `entries` (n x kColourBins) for a colour projection; an entry
// without one (indexed before histograms existed, until `index` fills it in) gets zeros.
std::vector<float> colour_rows(const Projection& p, const IndexEntry* const* entries, std::size_t n) {
  if (!p.uses_colour()) return {};
  std::vector<float> out(n * static_cast<std::size_t>(p.colour_bins), 0.0f);
  for (std::size_t i = 0; i < n; ++i)
    if (entries[i]->colour.size() == static_cast<std::size_t>(p.colour_bins))
      std::memcpy(out.data() + i * p.colour_bins, entries[i]->colour.data(), sizeof(float) * p.colour_bins);
  return out;
}
std::vector<float> colour_rows(const Projection& p, const std::vector<IndexEntry>& entries) {
  std::vector<const IndexEntry*> ptrs;
  for (const IndexEntry& e : entries) ptrs.push_back(&e);
  return colour_rows(p, ptrs.data(), ptrs.size());
}

// The k nearest other rows of `base` (n x dim) for each of `rows`, by exact inner
// product, best first; kNoNeighbour pads when there are fewer than k others.
std::vector<std::uint32_t> nearest_neighbours(const float* base, std::size_t n, int dim, int k,
                                              const std::vector<std::uint32_t>& rows) {
  std::vector<std::uint32_t> out(rows.size() * k, kNoNeighbour);
  if (n < 2) return out;
  const std::size_t block = std::max<std::size_t>(1, std::min<std::size_t>(256, (64u << 20) / (n * sizeof(float))));
  std::vector<float> queries(block * dim), scores(block * n);
  std::vector<std::pair<float, std::uint32_t>> scored;
  for (std::size_t first = 0; first < rows.size(); first += block) {
    const std::size_t b = std::min(block, rows.size() - first);
    for (std::size_t j = 0; j < b; ++j)
      std::memcpy(queries.data() + j * dim, base + static_cast<std::size_t>(rows[first + j]) * dim, sizeof(float) * dim);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(b), static_cast<int>(n), dim, 1.0f,
                queries.data(), dim, base, dim, 0.0f, scores.data(), static_cast<int>(n));
    for (std::size_t j = 0; j < b; ++j) {
      const std::uint32_t self = rows[first + j];
      const float* row = scores.data() + j * n;
      scored.clear();
      for (std::size_t i = 0; i < n; ++i)
        if (i != self) scored.emplace_back(row[i], static_cast<std::uint32_t>(i));
      const std::size_t take = std::min<std::size_t>(k, scored.size());
      std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(take), scored.end(),
                        [](const auto& a, const auto& c) { return a.first > c.first || (a.first == c.first && a.second < c.second); });
      for (std::size_t r = 0; r < take; ++r) out[(first + j) * k + r] = scored[r].second;
    }
  }
  return out;
}

// out = normalise(base[id] + sum of weighted neighbours) for one entry.
void augment_one(const float* base, int dim, std::uint32_t id, const std::uint32_t* neighbours, int k, float alpha,
                 float* out) {
  const float* self = base + static_cast<std::size_t>(id) * dim;
  std::memcpy(out, self, sizeof(float) * dim);
  for (int r = 0; r < k; ++r) {
    if (neighbours[r] == kNoNeighbour) break;
    const float* v = base + static_cast<std::size_t>(neighbours[r]) * dim;
    const float w = expansion_weight(dot(self, v, dim), alpha);
    if (w == 0) continue;
    for (int d = 0; d < dim; ++d) out[d] += w * v[d];
  }
  if (!normalise(out, dim)) std::memcpy(out, self, sizeof(float) * dim);
}

}  // namespace

void check_expansion_settings(int k, float alpha, const char* what) {
  IMGSEARCH_CHECK(k >= 0 && k <= kMaxExpansionK, ErrorKind::InvalidArgument, "{}: k must be in 0..{}, not {}", what,
                  kMaxExpansionK, k);
  IMGSEARCH_CHECK(std::isfinite(alpha) && alpha >= 0 && alpha <= kMaxAlpha, ErrorKind::InvalidArgument,
                  "{}: alpha must be in 0..{}, not {}", what, kMaxAlpha, alpha);
}

float expansion_weight(float score, float alpha) {
  return score <= 0 ? 0.0f : static_cast<float>(std::pow(static_cast<double>(score), static_cast<double>(alpha)));
}

void expand_query(const ImageIndex& index, const float* query, const std::vector<SearchHit>& hits, int k, float alpha,
                  float* out) {
  const int dim = index.dim();
  std::memcpy(out, query, sizeof(float) * dim);
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(std::max(k, 0)), hits.size());
  std::vector<float> v(static_cast<std::size_t>(dim));  // copied: a server never decodes a whole f16 index
  for (std::size_t r = 0; r < n; ++r) {
    const float w = expansion_weight(hits[r].score, alpha);
    if (w == 0) continue;
    index.copy_vector(hits[r].id, v.data());
    for (int d = 0; d < dim; ++d) out[d] += w * v[d];
  }
  if (!normalise(out, dim)) std::memcpy(out, query, sizeof(float) * dim);
}

void check_projection(const Projection& p) {
  if (!p.enabled()) return;
  IMGSEARCH_CHECK(p.colour_bins == 0 || p.colour_bins == kColourBins, ErrorKind::InvalidArgument,
                  "projection: {} colour bins (this imgsearch makes {})", p.colour_bins, kColourBins);
  IMGSEARCH_CHECK(!p.uses_colour() || (std::isfinite(p.colour_weight) && p.colour_weight > 0), ErrorKind::InvalidArgument,
                  "projection: bad colour weight");
  const auto input = static_cast<std::size_t>(p.input_dim());
  const auto rows = static_cast<std::size_t>(p.first_rows());
  const bool head = p.has_hidden_layer();
  IMGSEARCH_CHECK(p.out_dim >= 1 && p.hidden >= 0 && p.hidden <= kMaxHiddenUnits &&
                      p.out_dim <= (head ? p.hidden : p.input_dim()) && p.mean.size() == input &&
                      p.matrix.size() == input * rows &&
                      p.hidden_bias.size() == (head ? rows : 0) &&
                      p.output_matrix.size() == (head ? rows * static_cast<std::size_t>(p.out_dim) : 0) &&
                      p.output_bias.size() == (head ? static_cast<std::size_t>(p.out_dim) : 0),
                  ErrorKind::InvalidArgument, "projection: inconsistent sizes");
  auto finite = [](const std::vector<float>& v, const char* what) {
    for (float x : v) IMGSEARCH_CHECK(std::isfinite(x), ErrorKind::InvalidArgument, "projection: non-finite {}", what);
  };
  finite(p.mean, "mean");
  finite(p.matrix, "matrix");
  finite(p.hidden_bias, "hidden bias");
  finite(p.output_matrix, "output matrix");
  finite(p.output_bias, "output bias");
}

void colour_input(const Projection& p, const float* histogram, float* out) {
  for (int b = 0; b < p.colour_bins; ++b) out[b] = p.colour_weight * std::sqrt(std::max(histogram[b], 0.0f));
}

std::vector<float> to_search_space(const ImageIndex& index, const float* model_vector, const float* colour) {
  const int model_dim = index.model_dim();
  std::vector<float> v(model_vector, model_vector + model_dim);
  IMGSEARCH_CHECK(normalise(v.data(), model_dim), ErrorKind::InvalidArgument, "query: zero or non-finite vector");
  if (!index.projection().enabled()) return v;
  IMGSEARCH_CHECK(colour || !index.projection().uses_colour(), ErrorKind::InvalidArgument,
                  "query: the index's learned projection takes the image's colour histogram, and none was given");
  std::vector<float> out(static_cast<std::size_t>(index.projection().out_dim));
  project_rows(index.projection(), v.data(), colour, 1, out.data());
  return out;
}

namespace {

// A compressing projection's candidates, ranked again by the model vectors' cosine.
std::vector<SearchHit> rescored_by_model(const ImageIndex& index, const float* model_vector, std::vector<SearchHit> hits,
                                         int k) {
  const int dim = index.model_dim();
  std::vector<float> query(model_vector, model_vector + dim);
  normalise(query.data(), dim);  // to_search_space has checked it
  for (SearchHit& h : hits) {
    const std::vector<float> v = index.model_vector_copy(h.id);
    h.score = static_cast<float>(dot(query.data(), v.data(), dim));
  }
  std::sort(hits.begin(), hits.end(), [](const SearchHit& a, const SearchHit& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  });
  if (hits.size() > static_cast<std::size_t>(k)) hits.resize(static_cast<std::size_t>(k));
  return hits;
}

}  // namespace

std::vector<SearchHit> refined_search(const ImageIndex& index, const float* model_vector, const float* colour, int k,
                                      int ef, bool exact, const QueryExpansion& qe, std::uint32_t not_expanded_from) {
  const std::vector<float> query = to_search_space(index, model_vector, colour);
  auto run = [&](const float* q, int kk) { return exact ? index.search_exact(q, kk) : index.search(q, kk, ef); };
  if (!qe.enabled() && index.projection().rescore && !index.augmentation().enabled()) {
    const int candidates = std::max(k, ef > 0 ? ef : index.params().ef_search);
    return rescored_by_model(index, model_vector, run(query.data(), candidates), k);
  }
  if (!qe.enabled()) return run(query.data(), k);
  const int extra = not_expanded_from == kNoEntry ? 0 : 1;
  std::vector<SearchHit> first = run(query.data(), std::max(k, qe.k + extra));
  first.erase(std::remove_if(first.begin(), first.end(), [&](const SearchHit& h) { return h.id == not_expanded_from; }),
              first.end());
  std::vector<float> expanded(query.size());
  expand_query(index, query.data(), first, qe.k, qe.alpha, expanded.data());
  return run(expanded.data(), k);
}

// ---- ImageIndex: the post-processing members ----

const float* ImageIndex::model_vector(std::size_t id) const {
  if (!transformed()) return vector(id);
  IMGSEARCH_CHECK(id < size(), ErrorKind::InvalidArgument, "index: no entry {}", id);
  return (mapped_model_vectors_ ? mapped_model_vectors_ : model_vectors_.data()) + id * static_cast<std::size_t>(model_dim_);
}

std::vector<float> ImageIndex::model_vector_copy(std::size_t id) const {
  IMGSEARCH_CHECK(id < size(), ErrorKind::InvalidArgument, "index: no entry {}", id);
  const std::size_t dim = static_cast<std::size_t>(model_dim_);
  if (!mapped_model_vectors_) {
    const float* v = model_vector(id);
    return std::vector<float>(v, v + dim);
  }
  std::vector<float> out(dim);
  const std::size_t bytes = dim * sizeof(float);
  const auto offset = static_cast<std::uint64_t>(reinterpret_cast<const std::uint8_t*>(mapped_model_vectors_) -
                                                 model_file_->data) + id * bytes;
  IMGSEARCH_CHECK(model_file_->read_at(offset, out.data(), bytes), ErrorKind::Io,
                  "index: the file was truncated or changed since it was loaded (image {}'s vector is unreadable); "
                  "load it again", id);
  for (const float v : out)
    IMGSEARCH_CHECK(std::isfinite(v), ErrorKind::Io, "index: the file was changed since it was loaded (image {}'s "
                    "vector holds NaN or infinity); load it again", id);
  return out;
}

void ImageIndex::own_model_vectors() {
  if (!mapped_model_vectors_) return;
  model_vectors_.assign(mapped_model_vectors_, mapped_model_vectors_ + size() * static_cast<std::size_t>(model_dim_));
  mapped_model_vectors_ = nullptr;
  model_file_.reset();
}

void ImageIndex::set_query_expansion(QueryExpansion qe) {
  check_expansion_settings(qe.k, qe.alpha, "query expansion");
  query_expansion_ = qe;
}

std::vector<float> ImageIndex::base_vectors() const {
  const std::size_t n = size();
  // model_vectors_ is filled exactly while post-processing is (or is being) set.
  const float* model = mapped_model_vectors_ ? mapped_model_vectors_
                       : model_vectors_.empty() && n > 0 ? nullptr : model_vectors_.data();
  std::vector<float> own;
  if (!model) {  // the search vectors are the model vectors
    own.resize(n * static_cast<std::size_t>(model_dim_));
    for (std::size_t i = 0; i < n; ++i) std::memcpy(own.data() + i * model_dim_, vector(i), sizeof(float) * model_dim_);
    model = own.data();
  }
  if (!projection_.enabled()) return own.empty() ? std::vector<float>(model, model + n * model_dim_) : own;
  std::vector<float> out(n * static_cast<std::size_t>(projection_.out_dim));
  project_rows(projection_, model, colour_rows(projection_, entries_).data(), n, out.data());
  return out;
}

namespace {
int base_dim(const Projection& p, int model_dim) { return p.enabled() ? p.out_dim : model_dim; }

std::vector<std::uint32_t> all_ids(std::size_t n) {
  std::vector<std::uint32_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::uint32_t>(i);
  return ids;
}
}  // namespace

void ImageIndex::set_augmentation(Augmentation augmentation, int threads) {
  check_expansion_settings(augmentation.k, augmentation.alpha, "augmentation");
  if (!augmentation.enabled() && !augmentation_.enabled()) return;
  require_changeable("setting an augmentation");
  own_model_vectors();
  const std::size_t n = size();
  if (!transformed()) {  // from here on the model vectors are kept apart
    model_vectors_.resize(n * static_cast<std::size_t>(model_dim_));
    for (std::size_t i = 0; i < n; ++i)
      std::memcpy(model_vectors_.data() + i * model_dim_, vector(i), sizeof(float) * model_dim_);
  }
  const int dim = base_dim(projection_, model_dim_);
  std::vector<float> base = base_vectors();
  augmentation_ = augmentation;
  augmentation_neighbours_.clear();
  if (augmentation.enabled()) {
    augmentation_neighbours_ = nearest_neighbours(base.data(), n, dim, augmentation.k, all_ids(n));
    std::vector<float> augmented(base.size());
    for (std::size_t i = 0; i < n; ++i)
      augment_one(base.data(), dim, static_cast<std::uint32_t>(i), augmentation_neighbours_.data() + i * augmentation.k,
                  augmentation.k, augmentation.alpha, augmented.data() + i * dim);
    base = std::move(augmented);
  }
  if (!augmentation.enabled()) augmentation_ = Augmentation{};
  rebuild(std::vector<IndexEntry>(entries_), base.data(), dim, threads);
  if (!transformed()) model_vectors_.clear();
}

void ImageIndex::set_projection(Projection projection, int threads) {
  require_changeable("setting a projection");
  if (projection.enabled()) {
    IMGSEARCH_CHECK(projection.in_dim == model_dim_, ErrorKind::Mismatch,
                    "projection: takes {}-d vectors, the index holds {}-d", projection.in_dim, model_dim_);
    check_projection(projection);
  } else {
    projection = Projection{};
  }
  own_model_vectors();
  const std::size_t n = size();
  if (!transformed()) {
    model_vectors_.resize(n * static_cast<std::size_t>(model_dim_));
    for (std::size_t i = 0; i < n; ++i)
      std::memcpy(model_vectors_.data() + i * model_dim_, vector(i), sizeof(float) * model_dim_);
  }
  projection_ = std::move(projection);
  // Neighbours change with the space: set_augmentation recomputes them and rebuilds.
  const Augmentation augmentation = augmentation_;
  augmentation_ = Augmentation{};
  if (augmentation.enabled()) {
    augmentation_ = augmentation;  // keeps model_vectors_ while it works
    set_augmentation(augmentation, threads);
    return;
  }
  const std::vector<float> base = base_vectors();
  rebuild(std::vector<IndexEntry>(entries_), base.data(), base_dim(projection_, model_dim_), threads);
  if (!transformed()) model_vectors_.clear();
}

void ImageIndex::add_transformed(const std::vector<IndexEntry>& entries, const float* vectors, int threads,
                                 const LinkProgress& progress) {
  own_model_vectors();
  const std::size_t n = size(), m = entries.size();
  const int dim = base_dim(projection_, model_dim_);
  std::vector<float> model_rows(vectors, vectors + m * static_cast<std::size_t>(model_dim_));
  for (std::size_t i = 0; i < m; ++i)
    IMGSEARCH_CHECK(normalise(model_rows.data() + i * model_dim_, model_dim_), ErrorKind::InvalidArgument,
                    "{}: zero or non-finite vector", entries[i].path);
  if (!augmentation_.enabled()) {
    // Projected only: the new rows alone (projecting every existing one again would make
    // adding in batches quadratic).
    std::vector<float> added(m * static_cast<std::size_t>(dim));
    project_rows(projection_, model_rows.data(), colour_rows(projection_, entries).data(), m, added.data());
    add_search_vectors(entries, added.data(), threads, progress);
    model_vectors_.insert(model_vectors_.end(), model_rows.begin(), model_rows.end());
    return;
  }
  std::vector<float> base = base_vectors();  // the n existing, then the m new
  base.resize((n + m) * static_cast<std::size_t>(dim));
  if (projection_.enabled())
    project_rows(projection_, model_rows.data(), colour_rows(projection_, entries).data(), m, base.data() + n * dim);
  else std::memcpy(base.data() + n * dim, model_rows.data(), sizeof(float) * m * dim);

  // The new entries' neighbourhoods, and every existing entry whose k nearest now include
  // a new one (its augmented vector changes): one (m x (n + m)) product.
  const int k = augmentation_.k;
  const std::size_t total = n + m;
  std::vector<std::uint32_t> new_ids(m);
  for (std::size_t j = 0; j < m; ++j) new_ids[j] = static_cast<std::uint32_t>(n + j);
  std::vector<std::uint32_t> neighbours = augmentation_neighbours_;
  neighbours.resize(total * k, kNoNeighbour);
  {
    const std::vector<std::uint32_t> fresh = nearest_neighbours(base.data(), total, dim, k, new_ids);
    std::copy(fresh.begin(), fresh.end(), neighbours.begin() + static_cast<std::ptrdiff_t>(n * k));
  }
  std::vector<std::uint32_t> changed;
  if (n > 0) {
    std::vector<float> scores(m * n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), dim, 1.0f,
                base.data() + n * dim, dim, base.data(), dim, 0.0f, scores.data(), static_cast<int>(n));
    std::vector<std::pair<float, std::uint32_t>> candidates;
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t* list = neighbours.data() + i * k;
      const float* self = base.data() + i * dim;
      // The k-th neighbour's score: a new entry must beat it to enter the list.
      float kth = -std::numeric_limits<float>::infinity();
      if (list[k - 1] != kNoNeighbour) kth = dot(self, base.data() + static_cast<std::size_t>(list[k - 1]) * dim, dim);
      bool enters = false;
      for (std::size_t j = 0; j < m && !enters; ++j) enters = scores[j * n + i] > kth;
      if (!enters) continue;
      candidates.clear();
      for (int r = 0; r < k && list[r] != kNoNeighbour; ++r)
        candidates.emplace_back(dot(self, base.data() + static_cast<std::size_t>(list[r]) * dim, dim), list[r]);
      for (std::size_t j = 0; j < m; ++j) candidates.emplace_back(scores[j * n + i], static_cast<std::uint32_t>(n + j));
      const std::size_t take = std::min<std::size_t>(k, candidates.size());
      std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(take), candidates.end(),
                        [](const auto& a, const auto& c) { return a.first > c.first || (a.first == c.first && a.second < c.second); });
      for (std::size_t r = 0; r < take; ++r) list[r] = candidates[r].second;
      changed.push_back(static_cast<std::uint32_t>(i));
    }
  }
  std::vector<float> augmented_new(m * dim), augmented_changed(changed.size() * dim);
  for (std::size_t j = 0; j < m; ++j)
    augment_one(base.data(), dim, new_ids[j], neighbours.data() + (n + j) * k, k, augmentation_.alpha,
                augmented_new.data() + j * dim);
  for (std::size_t c = 0; c < changed.size(); ++c)
    augment_one(base.data(), dim, changed[c], neighbours.data() + static_cast<std::size_t>(changed[c]) * k, k,
                augmentation_.alpha, augmented_changed.data() + c * dim);
  // Progress counts the new entries, then the existing ones re-linked with new vectors.
  const std::size_t links = m + changed.size();
  add_search_vectors(entries, augmented_new.data(), threads, progress, 0, links);
  replace_search_vectors(changed, augmented_changed.data(), progress, m, links);
  model_vectors_.insert(model_vectors_.end(), model_rows.begin(), model_rows.end());
  augmentation_neighbours_ = std::move(neighbours);
}

ImageIndex::SearchVectorChanges ImageIndex::remove_transformed(const std::vector<std::uint32_t>& keep) {
  own_model_vectors();
  const std::size_t n = size();
  std::vector<std::uint32_t> new_id(n, kNoNeighbour);
  for (std::size_t j = 0; j < keep.size(); ++j) new_id[keep[j]] = static_cast<std::uint32_t>(j);
  for (std::size_t j = 0; j < keep.size(); ++j)
    if (j != keep[j])
      std::memcpy(model_vectors_.data() + j * model_dim_, model_vectors_.data() + keep[j] * static_cast<std::size_t>(model_dim_),
                  sizeof(float) * model_dim_);
  model_vectors_.resize(keep.size() * static_cast<std::size_t>(model_dim_));
  SearchVectorChanges changes;
  if (!augmentation_.enabled()) return changes;  // a projection alone maps each vector by itself

  // Entries that lost a neighbour get a new neighbourhood and a new augmented vector; the
  // others keep theirs (their neighbours are all still there).
  const int k = augmentation_.k;
  const int dim = dim_;
  std::vector<std::uint32_t> neighbours(keep.size() * k, kNoNeighbour);
  for (std::size_t j = 0; j < keep.size(); ++j) {
    const std::uint32_t* old = augmentation_neighbours_.data() + static_cast<std::size_t>(keep[j]) * k;
    bool lost = false;  // a short list (fewer than k others) stays short: only a dropped member matters
    for (int r = 0; r < k && old[r] != kNoNeighbour; ++r) {
      if (new_id[old[r]] == kNoNeighbour) lost = true;
      neighbours[j * k + r] = new_id[old[r]];
    }
    if (lost) changes.ids.push_back(static_cast<std::uint32_t>(j));
  }
  if (!changes.ids.empty()) {
    // The kept entries' base vectors, from the compacted model vectors.
    std::vector<float> base(keep.size() * static_cast<std::size_t>(dim));
    if (projection_.enabled()) {
      std::vector<const IndexEntry*> kept;
      for (std::uint32_t id : keep) kept.push_back(&entries_[id]);
      project_rows(projection_, model_vectors_.data(), colour_rows(projection_, kept.data(), kept.size()).data(),
                   keep.size(), base.data());
    }
    else std::memcpy(base.data(), model_vectors_.data(), sizeof(float) * base.size());
    const std::vector<std::uint32_t> fresh = nearest_neighbours(base.data(), keep.size(), dim, k, changes.ids);
    changes.vectors.resize(changes.ids.size() * static_cast<std::size_t>(dim));
    for (std::size_t c = 0; c < changes.ids.size(); ++c) {
      const std::size_t id = changes.ids[c];
      std::copy(fresh.begin() + static_cast<std::ptrdiff_t>(c * k), fresh.begin() + static_cast<std::ptrdiff_t>((c + 1) * k),
                neighbours.begin() + static_cast<std::ptrdiff_t>(id * k));
      augment_one(base.data(), dim, changes.ids[c], neighbours.data() + id * k, k, augmentation_.alpha,
                  changes.vectors.data() + c * dim);
    }
  }
  augmentation_neighbours_ = std::move(neighbours);
  return changes;
}

}  // namespace imgsearch
