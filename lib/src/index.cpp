#include "imgsearch/index.h"
#include "imgsearch/colour_histogram.h"
#include "parallel_for.h"

#include "imgsearch/error.h"
#include "imgsearch/log.h"
#include "binary_file.h"
#include "entries_in_file.h"
#include "index_graph.h"
#include "vector_codes.h"

#include <fmt/format.h>
#include <hnswlib/hnswlib.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <exception>
#include <new>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include <sys/mman.h>
#include <unistd.h>

namespace imgsearch {

// hnswlib labels: a live node's label is its entry id (ids stay dense: a removal renumbers
// the survivors by relabelling their nodes, which leaves the graph alone). A tombstone (a
// node hnswlib has marked deleted: searches pass through it and never return it) gets a
// label from this range instead, outside label_lookup_, so no search or update can reach
// it by label.
constexpr hnswlib::labeltype kTombstoneLabel = hnswlib::labeltype(1) << 62;

namespace {
// hnswlib's view of a compact encoding (vector_codes.h). By address, a graph node holds
// the address of its code rather than the code: an f16 index loaded with its rows left in
// the file (search_rows_in_memory = false) points its nodes at them, so the load neither
// allocates nor copies them (at 10^6 x 1280-d the graph is 0.15 GB instead of 2.7 GB of
// fresh memory the kernel must zero first). Only then: the extra dependent load per
// distance made a graph built by address link 2.2x slower.
class CodeSpace : public hnswlib::SpaceInterface<float> {
 public:
  CodeSpace(const detail::CodeEncoding& e, bool by_address)
      : e_(e), by_address_(by_address), codes_{e.hnsw_distance(), e.hnsw_param()} {}
  std::size_t get_data_size() override { return by_address_ ? sizeof(const std::uint8_t*) : e_.code_size(); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return by_address_ ? &distance_by_address : e_.hnsw_distance(); }
  void* get_dist_func_param() override {
    return by_address_ ? static_cast<void*>(&codes_) : const_cast<void*>(e_.hnsw_param());
  }

 private:
  struct CodeDistance {
    detail::CodeDistance distance;
    const void* param;
  };
  static float distance_by_address(const void* a, const void* b, const void* param) {
    const auto* codes = static_cast<const CodeDistance*>(param);
    const void *code_a, *code_b;
    std::memcpy(&code_a, a, sizeof code_a);
    std::memcpy(&code_b, b, sizeof code_b);
    return codes->distance(code_a, code_b, codes->param);
  }
  const detail::CodeEncoding& e_;
  bool by_address_;
  CodeDistance codes_;
};
constexpr std::uint64_t kRowInMemory = std::uint64_t(1) << 63;
// An f16 index loaded from a file with binary16 rows (docs/formats.md, "rows"): the codes
// are the rows, so a row is this flag | its node's hnswlib internal id.
constexpr std::uint64_t kRowInGraph = std::uint64_t(1) << 62;
}  // namespace

namespace {
// Rows in fixed blocks: growing never copies them (a contiguous vector's doubling would
// hold the old and new arrays at once, the peak of a large build) and a row's address
// stays valid. `width` is a row's length, the same at every call.
template <typename T>
class BlockRows {
 public:
  T* row(std::size_t r, std::size_t width) const { return blocks_[r / kRows].get() + (r % kRows) * width; }
  // Room for n more rows; returns the first one's number.
  std::size_t grow(std::size_t n, std::size_t width) {
    const std::size_t first = rows_;
    rows_ += n;
    while (blocks_.size() * kRows < rows_) blocks_.emplace_back(new T[kRows * width]);
    return first;
  }

 private:
  static constexpr std::size_t kRows = 4096;
  std::vector<std::unique_ptr<T[]>> blocks_;
  std::size_t rows_ = 0;
};
}  // namespace

struct ImageIndex::Impl {
  // Float32 inner product: the graph's space for f32, and exact scoring for every encoding.
  std::unique_ptr<hnswlib::InnerProductSpace> space;
  VectorCodes codes = VectorCodes::F32;
  std::unique_ptr<detail::CodeEncoding> encoding;  // compact codes only
  std::unique_ptr<CodeSpace> code_space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;  // null while empty
  // Compact codes: the exact rows, each entry's either in the index file (a row number),
  // added in this process (kRowInMemory | a row of `memory`), or its own graph code
  // (kRowInGraph | internal id: f16 rows loaded from a file).
  std::shared_ptr<const detail::MappedFile> file;
  const std::uint8_t* file_rows = nullptr;
  // Rows a load left unchecked (check_rows_when_read): each one's XXH3-64 in the mapped
  // file, checked with the row whenever it is read.
  const std::uint8_t* row_sums = nullptr;
  std::string file_path;
  // A bit a row: checked once already. From then on the row is trusted as a whole load
  // trusts the rows it checked (1 bit an image; a search reads ~64 rows, mostly the same).
  std::unique_ptr<std::atomic<std::uint64_t>[]> rows_checked;
  void check_row(std::uint64_t r, const float* row, int dim) const {
    const std::uint64_t bit = std::uint64_t(1) << (r % 64);
    if (rows_checked[r / 64].load(std::memory_order_relaxed) & bit) return;
    std::uint64_t want = 0;
    const std::size_t bytes = static_cast<std::size_t>(dim) * sizeof(float);
    const bool ok = file->read_at(static_cast<std::uint64_t>(row_sums - file->data) + r * 8, &want, 8) &&
                    XXH3_64bits(row, bytes) == want;
    IMGSEARCH_CHECK(ok, ErrorKind::Format,
                    "{}: corrupt (row {} of VECS does not match its checksum in ROWSUMS, or the file changed since it "
                    "was loaded)", file_path, r);
    bool finite = true;
    for (int d = 0; d < dim; ++d) finite &= std::isfinite(row[d]);
    IMGSEARCH_CHECK(finite, ErrorKind::Format, "{}: vector {} holds NaN or infinity", file_path, r);
    rows_checked[r / 64].fetch_or(bit, std::memory_order_relaxed);
  }
  // Rows added here (float32), and the codes by address of rows added here (the loaded
  // ones are in the file).
  BlockRows<float> memory;
  BlockRows<std::uint8_t> added_codes;
  std::vector<std::uint64_t> row_of;
  float* memory_row(std::size_t r, int dim) const { return memory.row(r, static_cast<std::size_t>(dim)); }
  std::size_t grow_memory(std::size_t n, int dim) { return memory.grow(n, static_cast<std::size_t>(dim)); }
  std::uint8_t* code_at(std::size_t c) const { return added_codes.row(c, encoding->code_size()); }
  std::size_t grow_codes(std::size_t n) { return added_codes.grow(n, encoding->code_size()); }
  std::vector<hnswlib::tableint> internal_of;             // entry id -> hnswlib internal id
  // hnswlib's label_lookup_ (label -> internal id, one allocation a node) is only read by
  // an addPoint that updates a label; a load leaves it empty (at 10^6, 0.1 s to fill and
  // as much to free at exit, for a query that never updates) until map_labels. It holds
  // every live label or (after such a load) fewer.
  void map_labels() {
    if (!hnsw || hnsw->label_lookup_.size() == internal_of.size()) return;
    for (std::size_t id = 0; id < internal_of.size(); ++id) hnsw->label_lookup_[id] = internal_of[id];
  }
  // hnswlib 0.6.2 takes the beam width as state (setEf), not as a search argument:
  // searches with the beam already set share the lock; changing it takes it alone, so
  // that concurrent searches (serve) never race on it.
  mutable std::shared_mutex ef_mutex;
  std::size_t current_ef = 0;

  Impl(int dim, VectorCodes c)
      : space(std::make_unique<hnswlib::InnerProductSpace>(static_cast<std::size_t>(dim))), codes(c) {
    if (codes != VectorCodes::F32) {
      encoding = detail::make_code_encoding(codes, dim);
      code_space = std::make_unique<CodeSpace>(*encoding, false);
    }
  }
  bool compact() const { return codes != VectorCodes::F32; }
  // Set by restore_graph before the graph exists: an f16 index's nodes point at the rows
  // of its mapped file.
  bool codes_by_address = false;
  bool by_address() const { return codes_by_address; }
  void search_codes_by_address() {
    codes_by_address = true;
    code_space = std::make_unique<CodeSpace>(*encoding, true);
  }
  // What hnswlib is handed for a code: the code, or (by address) `holder` set to it.
  const void* graph_point(const std::uint8_t* code, const std::uint8_t*& holder) const {
    holder = code;
    return by_address() ? static_cast<const void*>(&holder) : code;
  }
  hnswlib::SpaceInterface<float>* graph_space() const {
    return compact() ? static_cast<hnswlib::SpaceInterface<float>*>(code_space.get()) : space.get();
  }
  // Graph rows as floats for vector(), which hands out pointers: decoded all at once on
  // first use (search() never needs them: it decodes the few rows it rescores).
  mutable std::once_flag decode_once;
  mutable std::unique_ptr<float[]> decoded;  // hnswlib internal id x dim
  const float* row(std::uint64_t where, int dim) const {
    if (where & kRowInMemory) return memory_row(where & ~kRowInMemory, dim);
    const std::size_t d = static_cast<std::size_t>(dim);
    if (where & kRowInGraph) {
      std::call_once(decode_once, [&] {
        const std::size_t nodes = hnsw->cur_element_count;
        decoded.reset(new float[std::max<std::size_t>(1, nodes * d)]);
        parallel_for(0, nodes, resolve_threads(0), [&](std::size_t i) {
          encoding->decode(graph_code(i), decoded.get() + i * d);
        }, /*min_parallel=*/1024);
      });
      return decoded.get() + (where & ~kRowInGraph) * d;
    }
    const float* in_file = reinterpret_cast<const float*>(file_rows + where * d * sizeof(float));
    if (row_sums) check_row(where, in_file, dim);
    return in_file;
  }
  const std::uint8_t* graph_code(std::size_t internal) const {
    const char* data = hnsw->getDataByInternalId(static_cast<hnswlib::tableint>(internal));
    if (!by_address()) return reinterpret_cast<const std::uint8_t*>(data);
    const std::uint8_t* code;
    std::memcpy(&code, data, sizeof code);
    return code;
  }
  // The row into `buffer` by pread when it is in the file, so that rescoring never maps
  // file pages into the resident set, and a file truncated under a long-running reader
  // throws instead of faulting.
  const float* read_row(std::uint64_t where, int dim, float* buffer) const {
    if (where & kRowInMemory) return row(where, dim);
    if (where & kRowInGraph) {
      encoding->decode(graph_code(where & ~kRowInGraph), buffer);
      return buffer;
    }
    const std::size_t bytes = static_cast<std::size_t>(dim) * sizeof(float);
    IMGSEARCH_CHECK(file->read_at(static_cast<std::uint64_t>(file_rows - file->data) + where * bytes, buffer, bytes),
                    ErrorKind::Io, "index: the file was truncated since it was loaded (a vector is unreadable); load "
                    "it again");
    if (row_sums) check_row(where, buffer, dim);
    return buffer;
  }
};

namespace {

// hnswlib 0.6.2's search loops prefetch the id one past the last link of a list
// (`*(datal + j + 1)` in searchBaseLayer, `*(data + j + 1)` in searchBaseLayerST). For a
// full list on an upper layer that reads 4 bytes past the malloc'd block (ASan,
// heap-buffer-overflow); for a full layer-0 list it reads the first float of the vector
// as an id and computes a wild prefetch address (UBSan, pointer overflow). Both were
// found by the fuzzers. Every list, on every layer, is widened by one id slot before
// anything is allocated with those sizes; the slot stays 0 (each element is zeroed when
// it is added or restored), so the stray prefetch reads a valid id.
std::unique_ptr<hnswlib::HierarchicalNSW<float>> new_hnsw(hnswlib::SpaceInterface<float>* space, std::size_t max_elements,
                                                           int M, int ef_construction) {
  auto h = std::make_unique<hnswlib::HierarchicalNSW<float>>(space, max_elements, static_cast<std::size_t>(M),
                                                              static_cast<std::size_t>(ef_construction));
  h->size_links_per_element_ += sizeof(hnswlib::tableint);
  h->size_links_level0_ += sizeof(hnswlib::tableint);
  h->size_data_per_element_ = h->size_links_level0_ + h->data_size_ + sizeof(hnswlib::labeltype);
  h->offsetData_ = h->size_links_level0_;
  h->label_offset_ = h->size_links_level0_ + h->data_size_;
  std::free(h->data_level0_memory_);
  h->data_level0_memory_ = static_cast<char*>(std::malloc(std::max<std::size_t>(1, max_elements * h->size_data_per_element_)));
  if (!h->data_level0_memory_) throw std::bad_alloc();
  return h;
}


// Faults [p, p + bytes) in with one call per core (Linux 5.14+; elsewhere nothing happens):
// a graph or code block at 10^6 x 1280-d is GBs, and a page fault at a time made a third of
// a load. Most of the call is the kernel zeroing each page it hands out.
void populate(void* p, std::size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t begin = (first + page - 1) / page * page, end = (first + bytes) / page * page;
  if (end <= begin + 64 * page) return;
  const std::size_t parts = static_cast<std::size_t>(resolve_threads(0));
  const std::uintptr_t step = ((end - begin) / parts + page - 1) / page * page;
  parallel_for(0, parts, static_cast<int>(parts), [&](std::size_t part) {
    const std::uintptr_t from = begin + part * step, to = std::min(end, from + step);
    if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
  });
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace

ImageIndex::ImageIndex(int dim, HnswParams params, ModelInfo model, VectorCodes codes)
    : dim_(dim), params_(params), model_(std::move(model)), model_dim_(dim) {
  IMGSEARCH_CHECK(dim > 0 && dim <= (1 << 16), ErrorKind::InvalidArgument, "index: bad dimension {}", dim);
  IMGSEARCH_CHECK(params.M >= 2 && params.M <= 256, ErrorKind::InvalidArgument, "index: M must be in 2..256, not {}",
                  params.M);
  IMGSEARCH_CHECK(params.ef_construction >= 1 && params.ef_search >= 1, ErrorKind::InvalidArgument,
                  "index: ef values must be positive");
  impl_ = std::make_unique<Impl>(dim, codes);
}

ImageIndex::~ImageIndex() = default;
ImageIndex::ImageIndex(ImageIndex&&) noexcept = default;
ImageIndex& ImageIndex::operator=(ImageIndex&&) noexcept = default;

std::size_t ImageIndex::size() const {
  return entries_in_file_ ? static_cast<std::size_t>(entries_in_file_->count) : entries_.size();
}

void ImageIndex::require_changeable(const char* what) const {
  IMGSEARCH_CHECK(!entries_in_file_, ErrorKind::InvalidArgument,
                  "{}: loaded for searching only (its entries stay in the file); {} needs the index loaded whole",
                  entries_in_file_->path, what);
}

const IndexEntry& ImageIndex::entry(std::size_t id) const {
  require_changeable("a whole entry");
  IMGSEARCH_CHECK(id < entries_.size(), ErrorKind::InvalidArgument, "index: no entry {}", id);
  return entries_[id];
}

const std::vector<IndexEntry>& ImageIndex::entries() const {
  require_changeable("the list of entries");
  return entries_;
}

IndexEntry ImageIndex::entry_info(std::size_t id) const {
  IMGSEARCH_CHECK(id < size(), ErrorKind::InvalidArgument, "index: no entry {}", id);
  if (entries_in_file_) return detail::read_entry(*entries_in_file_, id);
  const IndexEntry& e = entries_[id];
  return IndexEntry{e.path, e.size, e.mtime_ns, {}, {}};
}

void ImageIndex::set_signals(std::size_t id, const DuplicateSignals& signals) {
  require_changeable("setting duplicate signals");
  IMGSEARCH_CHECK(id < entries_.size(), ErrorKind::InvalidArgument, "index: no entry {}", id);
  entries_[id].signals = signals;
}

const float* ImageIndex::vector(std::size_t id) const {
  IMGSEARCH_CHECK(id < size(), ErrorKind::InvalidArgument, "index: no entry {}", id);
  if (impl_->compact()) return impl_->row(impl_->row_of[id], dim_);
  return reinterpret_cast<const float*>(impl_->hnsw->getDataByInternalId(impl_->internal_of[id]));
}

void ImageIndex::copy_vector(std::size_t id, float* out) const {
  IMGSEARCH_CHECK(id < size(), ErrorKind::InvalidArgument, "index: no entry {}", id);
  const float* row = impl_->compact() ? impl_->read_row(impl_->row_of[id], dim_, out) : vector(id);
  if (row != out) std::memcpy(out, row, sizeof(float) * dim_);
}

VectorCodes ImageIndex::vector_codes() const { return impl_->codes; }

void ImageIndex::set_vector_codes(VectorCodes codes, int threads) {
  if (codes == impl_->codes) return;
  require_changeable("changing the vector encoding");
  std::vector<float> rows(entries_.size() * dim_);
  for (std::size_t i = 0; i < entries_.size(); ++i) std::memcpy(rows.data() + i * dim_, vector(i), sizeof(float) * dim_);
  log(LogLevel::Info, fmt::format("index: vectors {} -> {}: re-linking the graph over {} entries",
                                  vector_codes_name(impl_->codes), vector_codes_name(codes), entries_.size()));
  std::vector<IndexEntry> entries = std::move(entries_);
  entries_.clear();
  impl_ = std::make_unique<Impl>(dim_, codes);
  add_search_vectors(entries, rows.data(), threads);
}

std::size_t ImageIndex::signals_count() const {
  require_changeable("counting duplicate signals");
  return static_cast<std::size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const IndexEntry& e) { return e.signals.present; }));
}

void ImageIndex::set_colour(std::size_t id, std::vector<float> colour) {
  require_changeable("setting a colour histogram");
  IMGSEARCH_CHECK(id < entries_.size(), ErrorKind::InvalidArgument, "index: no entry {}", id);
  IMGSEARCH_CHECK(colour.size() == static_cast<std::size_t>(kColourBins), ErrorKind::InvalidArgument,
                  "index: a colour histogram has {} bins, not {}", kColourBins, colour.size());
  for (float v : colour)
    IMGSEARCH_CHECK(std::isfinite(v) && v >= 0 && v <= 1, ErrorKind::InvalidArgument, "index: bad colour histogram");
  entries_[id].colour = std::move(colour);
}

std::size_t ImageIndex::colour_count() const {
  return colours_left_in_file_ + static_cast<std::size_t>(std::count_if(
                                     entries_.begin(), entries_.end(), [](const IndexEntry& e) { return !e.colour.empty(); }));
}

void ImageIndex::add(const std::vector<IndexEntry>& entries, const float* vectors, int threads,
                     const LinkProgress& progress) {
  if (entries.empty()) return;
  require_changeable("adding images");
  for (const IndexEntry& e : entries)
    IMGSEARCH_CHECK(e.colour.empty() || e.colour.size() == static_cast<std::size_t>(kColourBins),
                    ErrorKind::InvalidArgument, "{}: a colour histogram has {} bins, not {}", e.path, kColourBins,
                    e.colour.size());
  if (transformed()) return add_transformed(entries, vectors, threads, progress);
  add_search_vectors(entries, vectors, threads, progress);
}

namespace {
constexpr std::size_t kProgressEvery = 1024;  // links between two progress calls
}  // namespace

void ImageIndex::add_search_vectors(const std::vector<IndexEntry>& entries, const float* vectors, int threads,
                                    const LinkProgress& progress, std::size_t done_before, std::size_t total_links) {
  if (entries.empty()) return;
  if (total_links == 0) total_links = done_before + entries.size();
  const std::size_t base = entries_.size();
  const std::size_t total = base + entries.size();
  // Graph nodes after the add: tombstones keep their slots (hnswlib 0.6 cannot reuse
  // them) until a compaction.
  const std::size_t nodes = graph_nodes() + entries.size();
  // Callers may hand in raw model output: every row is checked before anything changes,
  // then normalised one at a time into a small buffer that hnswlib copies from, so the
  // vectors are never held twice (44k x 1280 floats are 225 MB).
  std::vector<float> inv_norms(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const float* r = vectors + i * dim_;
    double norm = 0;
    for (int d = 0; d < dim_; ++d) norm += double(r[d]) * r[d];
    IMGSEARCH_CHECK(std::isfinite(norm) && norm > 0, ErrorKind::InvalidArgument, "{}: zero or non-finite vector",
                    entries[i].path);
    inv_norms[i] = static_cast<float>(1.0 / std::sqrt(norm));
  }
  std::atomic<std::size_t> linked{0};
  std::mutex progress_mutex;
  if (progress && done_before == 0) progress(0, total_links);  // linking starts: the total is known
  Impl& impl = *impl_;
  // Compact codes: the exact rows are kept beside the graph, which gets the codes.
  const std::size_t memory_base = impl.compact() ? impl.grow_memory(entries.size(), dim_) : 0;
  const std::size_t code_base = impl.by_address() ? impl.grow_codes(entries.size()) : 0;
  auto add_point = [&](std::size_t i) {
    thread_local std::vector<float> row;
    thread_local std::vector<std::uint8_t> code;
    row.resize(dim_);
    float* out = impl.compact() ? impl.memory_row(memory_base + i, dim_) : row.data();
    const float* r = vectors + i * dim_;
    for (int d = 0; d < dim_; ++d) out[d] = r[d] * inv_norms[i];
    if (impl.compact()) {
      code.resize(impl.encoding->code_size());
      std::uint8_t* c = impl.by_address() ? impl.code_at(code_base + i) : code.data();
      impl.encoding->encode(out, c);
      const std::uint8_t* holder;
      impl.hnsw->addPoint(impl.graph_point(c, holder), base + i);
    } else {
      impl.hnsw->addPoint(out, base + i);
    }
    const std::size_t done = ++linked;
    if (progress && (done % kProgressEvery == 0 || done == entries.size())) {
      std::lock_guard<std::mutex> lock(progress_mutex);
      progress(done_before + done, total_links);
    }
  };
  auto& hnsw = impl_->hnsw;
  if (!hnsw) {
    hnsw = new_hnsw(impl_->graph_space(), nodes, params_.M, params_.ef_construction);
    impl_->current_ef = 0;  // a new graph starts with hnswlib's own beam width
  } else if (nodes > hnsw->max_elements_) {
    // hnswlib never grows by itself; grow geometrically so repeated adds stay linear.
    hnsw->resizeIndex(std::max(nodes, hnsw->max_elements_ + hnsw->max_elements_ / 2));
  }
  std::size_t start = 0;
  if (hnsw->cur_element_count == 0) {  // the first node sets the entry point: insert it alone
    add_point(0);
    start = 1;
  }
  parallel_for(start, entries.size(), resolve_threads(threads), add_point, /*min_parallel=*/64);
  entries_.insert(entries_.end(), entries.begin(), entries.end());
  impl_->internal_of.resize(total);
  for (std::size_t id = base; id < total; ++id) impl_->internal_of[id] = hnsw->label_lookup_.at(id);
  if (impl.compact())
    for (std::size_t i = 0; i < entries.size(); ++i) impl.row_of.push_back(kRowInMemory | (memory_base + i));
}

std::size_t ImageIndex::tombstones() const { return impl_->hnsw ? impl_->hnsw->num_deleted_ : 0; }

std::size_t ImageIndex::remove_if(const std::function<bool(const IndexEntry&)>& drop, int threads) {
  require_changeable("removing images");
  std::vector<std::uint32_t> keep;
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (!drop(entries_[i])) keep.push_back(static_cast<std::uint32_t>(i));
  const std::size_t removed = entries_.size() - keep.size();
  if (removed == 0) return 0;
  // Post-processing first: it reads the old numbering and the graph as it was.
  SearchVectorChanges changes;
  if (transformed()) changes = remove_transformed(keep);
  const double dead = static_cast<double>(tombstones() + removed);
  if (keep.empty() || dead > kCompactFraction * static_cast<double>(graph_nodes())) {
    std::vector<float> rows(keep.size() * dim_);
    for (std::size_t j = 0; j < keep.size(); ++j) std::memcpy(rows.data() + j * dim_, vector(keep[j]), sizeof(float) * dim_);
    for (std::size_t c = 0; c < changes.ids.size(); ++c)
      std::memcpy(rows.data() + static_cast<std::size_t>(changes.ids[c]) * dim_, changes.vectors.data() + c * dim_,
                  sizeof(float) * dim_);
    std::vector<IndexEntry> kept;
    kept.reserve(keep.size());
    for (const std::uint32_t id : keep) kept.push_back(std::move(entries_[id]));
    // Rebuilding drops the tombstones and gives hnswlib back their slots.
    log(LogLevel::Info, fmt::format("index: {} removed; {} tombstones would pass {:.0f} % of the graph's {} nodes: "
                                    "compacting it (a rebuild over {} entries)",
                                    removed, tombstones() + removed, kCompactFraction * 100, graph_nodes(), keep.size()));
    rebuild(std::move(kept), rows.data(), dim_, threads);
    ++compactions_;
    return removed;
  }
  bury(keep);
  replace_search_vectors(changes.ids, changes.vectors.data());
  log(LogLevel::Info, fmt::format("index: {} removed, left in the graph as tombstones ({} of its {} nodes){}", removed,
                                  tombstones(), graph_nodes(),
                                  changes.ids.empty() ? std::string()
                                                      : fmt::format("; {} re-augmented in place", changes.ids.size())));
  return removed;
}

void ImageIndex::bury(const std::vector<std::uint32_t>& keep) {
  auto& hnsw = *impl_->hnsw;
  std::vector<char> kept(entries_.size(), 0);
  for (const std::uint32_t id : keep) kept[id] = 1;
  for (std::size_t id = 0; id < entries_.size(); ++id) {
    if (kept[id]) continue;
    const hnswlib::tableint internal = impl_->internal_of[id];
    hnsw.markDeletedInternal(internal);
    hnsw.setExternalLabel(internal, kTombstoneLabel + internal);
  }
  std::vector<hnswlib::tableint> internal_of(keep.size());
  if (impl_->compact()) {
    std::vector<std::uint64_t> row_of(keep.size());
    for (std::size_t j = 0; j < keep.size(); ++j) row_of[j] = impl_->row_of[keep[j]];
    impl_->row_of = std::move(row_of);
  }
  std::vector<IndexEntry> entries;
  entries.reserve(keep.size());
  hnsw.label_lookup_.clear();
  for (std::size_t j = 0; j < keep.size(); ++j) {
    const hnswlib::tableint internal = impl_->internal_of[keep[j]];
    internal_of[j] = internal;
    hnsw.setExternalLabel(internal, j);
    hnsw.label_lookup_[j] = internal;
    entries.push_back(std::move(entries_[keep[j]]));
  }
  entries_ = std::move(entries);
  impl_->internal_of = std::move(internal_of);
}

void ImageIndex::compact(int threads) {
  if (tombstones() == 0) return;
  require_changeable("compacting the graph");
  std::vector<float> rows(entries_.size() * dim_);
  for (std::size_t i = 0; i < entries_.size(); ++i) std::memcpy(rows.data() + i * dim_, vector(i), sizeof(float) * dim_);
  rebuild(std::vector<IndexEntry>(entries_), rows.data(), dim_, threads);
  ++compactions_;
}

void ImageIndex::rebuild(std::vector<IndexEntry> entries, const float* vectors, int dim, int threads) {
  entries_.clear();
  impl_ = std::make_unique<Impl>(dim, impl_->codes);
  dim_ = dim;
  add_search_vectors(entries, vectors, threads);
}

void ImageIndex::replace_search_vectors(const std::vector<std::uint32_t>& ids, const float* vectors,
                                        const LinkProgress& progress, std::size_t done_before, std::size_t total_links) {
  if (total_links == 0) total_links = done_before + ids.size();
  // hnswlib's addPoint with a label it holds updates that point and repairs its links
  // (one at a time: hnswlib 0.6's concurrent updates of neighbouring points are not safe).
  Impl& impl = *impl_;
  impl.map_labels();  // hnswlib finds the points to update there
  std::vector<std::uint8_t> code(impl.compact() ? impl.encoding->code_size() : 0);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (impl.compact()) {
      const std::size_t at = impl.grow_memory(1, dim_);
      std::memcpy(impl.memory_row(at, dim_), vectors + i * dim_, sizeof(float) * dim_);
      impl.row_of[ids[i]] = kRowInMemory | at;
      std::uint8_t* c = impl.by_address() ? impl.code_at(impl.grow_codes(1)) : code.data();
      impl.encoding->encode(vectors + i * dim_, c);
      const std::uint8_t* holder;
      impl.hnsw->addPoint(impl.graph_point(c, holder), ids[i]);
    } else {
      impl.hnsw->addPoint(vectors + i * dim_, ids[i]);
    }
    if (progress && ((i + 1) % kProgressEvery == 0 || i + 1 == ids.size())) progress(done_before + i + 1, total_links);
  }
}

std::vector<SearchHit> ImageIndex::search(const float* query, int k, int ef) const {
  std::vector<SearchHit> hits;
  if (k <= 0 || size() == 0) return hits;
  auto& hnsw = *impl_->hnsw;
  const Impl& impl = *impl_;
  const auto want_ef = static_cast<std::size_t>(std::max(ef > 0 ? ef : params_.ef_search, k));
  // Compact codes: the graph ranks codes, and its whole final beam (max(ef, k)) is
  // rescored below with the exact rows.
  const void* graph_query = query;
  const std::size_t want = impl.compact() ? want_ef : static_cast<std::size_t>(k);
  thread_local std::vector<std::uint8_t> query_code;
  const std::uint8_t* query_holder;
  if (impl.compact()) {
    query_code.resize(impl.encoding->code_size());
    impl.encoding->encode(query, query_code.data());
    graph_query = impl.graph_point(query_code.data(), query_holder);
  }
  std::priority_queue<std::pair<float, hnswlib::labeltype>> heap;
  bool searched = false;
  {
    std::shared_lock<std::shared_mutex> shared(impl_->ef_mutex);
    if (impl_->current_ef == want_ef) {
      heap = hnsw.searchKnn(graph_query, want);
      searched = true;
    }
  }
  if (!searched) {
    std::unique_lock<std::shared_mutex> exclusive(impl_->ef_mutex);
    hnsw.setEf(want_ef);
    impl_->current_ef = want_ef;
    heap = hnsw.searchKnn(graph_query, want);
  }
  // hnswlib searches on past tombstones until it holds max(ef, k) live nodes, so fewer
  // than k come back only when the graph cannot reach them (a node cut off by in-place
  // updates, or a hand-made file): then every vector is scored rather than answer short.
  if (heap.size() < std::min<std::size_t>(static_cast<std::size_t>(k), size())) return search_exact(query, k);
  if (impl.compact()) {
    const auto distance = impl.space->get_dist_func();
    void* param = impl.space->get_dist_func_param();
    thread_local std::vector<float> buffer;
    buffer.resize(dim_);
    hits.reserve(heap.size());
    for (; !heap.empty(); heap.pop()) {
      const auto id = static_cast<std::uint32_t>(heap.top().second);
      const float* row = impl.read_row(impl.row_of[id], dim_, buffer.data());
      hits.push_back({id, 1.0f - distance(query, row, param)});
    }
    std::sort(hits.begin(), hits.end(), [](const SearchHit& a, const SearchHit& b) {
      return a.score > b.score || (a.score == b.score && a.id < b.id);
    });
    hits.resize(std::min<std::size_t>(hits.size(), static_cast<std::size_t>(k)));
    return hits;
  }
  hits.resize(heap.size());
  for (std::size_t i = heap.size(); i-- > 0;) {
    hits[i] = {static_cast<std::uint32_t>(heap.top().second), 1.0f - heap.top().first};
    heap.pop();
  }
  return hits;
}

std::vector<SearchHit> ImageIndex::search_exact(const float* query, int k) const {
  std::vector<SearchHit> all(size());
  const auto distance = impl_->space->get_dist_func();
  void* param = impl_->space->get_dist_func_param();
  for (std::size_t i = 0; i < all.size(); ++i)
    all[i] = {static_cast<std::uint32_t>(i), 1.0f - distance(query, vector(i), param)};
  const std::size_t n = std::min<std::size_t>(std::max(k, 0), all.size());
  std::partial_sort(all.begin(), all.begin() + n, all.end(), [](const SearchHit& a, const SearchHit& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  });
  all.resize(n);
  return all;
}

namespace detail {

namespace {
// Graph node numbers in the file: the live entries in entry order, then the tombstones in
// hnswlib's order (their vectors are in TOMBSTNS in that order).
std::vector<std::uint32_t> file_node_numbers(const hnswlib::HierarchicalNSW<float>& h,
                                             const std::vector<hnswlib::tableint>& internal_of) {
  std::vector<std::uint32_t> node_of(h.cur_element_count);
  const std::size_t live = internal_of.size();
  for (std::size_t id = 0; id < live; ++id) node_of[internal_of[id]] = static_cast<std::uint32_t>(id);
  std::uint32_t next = static_cast<std::uint32_t>(live);
  for (hnswlib::tableint i = 0; i < h.cur_element_count; ++i)
    if (h.isMarkedDeleted(i)) node_of[i] = next++;
  return node_of;
}
}  // namespace

void write_tombstones(const ImageIndex& index, BinaryFileWriter& out) {
  const auto& h = *index.impl_->hnsw;
  out.write_u64(h.num_deleted_);
  // A compact index keeps only its tombstones' codes: they are written decoded (they only
  // route searches; encoding the decoded vector gives the same code back), or as they are
  // where the rows are binary16.
  const ImageIndex::Impl& impl = *index.impl_;
  std::vector<float> decoded(impl.compact() ? index.dim() : 0);
  for (hnswlib::tableint i = 0; i < h.cur_element_count; ++i) {
    if (!h.isMarkedDeleted(i)) continue;
    if (impl.codes == VectorCodes::F16) {
      out.write(impl.graph_code(i), 2 * static_cast<std::size_t>(index.dim()));
    } else if (impl.compact()) {
      impl.encoding->decode(reinterpret_cast<const std::uint8_t*>(h.getDataByInternalId(i)), decoded.data());
      out.write(decoded.data(), sizeof(float) * index.dim());
    } else {
      out.write(h.getDataByInternalId(i), sizeof(float) * index.dim());
    }
  }
}

void write_codes(const ImageIndex& index, BinaryFileWriter& out) {
  const ImageIndex::Impl& impl = *index.impl_;
  const std::size_t code_size = impl.encoding->code_size();
  out.write_u32(static_cast<std::uint32_t>(code_size));
  if (index.size() == 0) return;
  for (std::size_t id = 0; id < index.size(); ++id) out.write(impl.graph_code(impl.internal_of[id]), code_size);
  const auto& h = *impl.hnsw;
  for (hnswlib::tableint i = 0; i < h.cur_element_count; ++i)  // the tombstones, as write_tombstones orders them
    if (h.isMarkedDeleted(i)) out.write(impl.graph_code(i), code_size);
}

void write_search_rows(const ImageIndex& index, BinaryFileWriter& out, std::vector<std::uint64_t>* row_sums) {
  const ImageIndex::Impl& impl = *index.impl_;
  const std::size_t dim = static_cast<std::size_t>(index.dim());
  if (impl.codes != VectorCodes::F16) {
    for (std::size_t id = 0; id < index.size(); ++id) {
      const float* row = index.vector(id);
      out.write(row, sizeof(float) * dim);
      if (row_sums) row_sums->push_back(XXH3_64bits(row, sizeof(float) * dim));
    }
    return;
  }
  std::vector<std::uint8_t> half(2 * dim);
  for (std::size_t id = 0; id < index.size(); ++id) {
    const std::uint64_t where = impl.row_of[id];
    if (where & kRowInGraph) {
      out.write(impl.graph_code(where & ~kRowInGraph), 2 * dim);
      continue;
    }
    f16_encode(impl.row(where, static_cast<int>(dim)), dim, half.data());
    out.write(half.data(), 2 * dim);
  }
}

void write_graph(const ImageIndex& index, BinaryFileWriter& out) {
  // The graph, with hnswlib's internal ids translated to file node numbers.
  const ImageIndex::Impl& impl = *index.impl_;
  const std::size_t n = index.size();
  if (n > 0) {
    const auto& h = *impl.hnsw;
    const std::vector<std::uint32_t> node_of = file_node_numbers(h, impl.internal_of);
    std::vector<hnswlib::tableint> internal_at(h.cur_element_count);
    for (hnswlib::tableint i = 0; i < h.cur_element_count; ++i) internal_at[node_of[i]] = i;
    out.write_u32(static_cast<std::uint32_t>(h.maxlevel_));
    out.write_u32(node_of[h.enterpoint_node_]);
    std::vector<std::uint32_t> links;
    for (std::size_t node = 0; node < h.cur_element_count; ++node) {
      const hnswlib::tableint internal = internal_at[node];
      const int level = h.element_levels_[internal];
      out.write_u32(static_cast<std::uint32_t>(level));
      for (int l = 0; l <= level; ++l) {
        hnswlib::linklistsizeint* ll = l == 0 ? h.get_linklist0(internal) : h.get_linklist(internal, l);
        const std::uint32_t count = h.getListCount(ll);
        const auto* ids = reinterpret_cast<const hnswlib::tableint*>(ll + 1);
        links.resize(count);
        for (std::uint32_t j = 0; j < count; ++j) links[j] = node_of[ids[j]];
        out.write_u32(count);
        out.write(links.data(), sizeof(std::uint32_t) * count);
      }
    }
  }
}

void restore_graph(ImageIndex& index, ByteReader& g, const std::uint8_t* vecs, std::uint64_t tombstones,
                   const std::uint8_t* tombstone_vecs, bool f16_rows, bool rows_in_place, bool stored_codes) {
  constexpr std::uint32_t kMaxLevel = 64;  // hnswlib levels are ~log_M(n): 64 is unreachable
  const std::uint64_t live = index.size();
  const std::uint64_t count = live + tombstones;  // graph nodes
  const int dim = index.dim();
  const HnswParams params = index.params();
  if (live == 0) {  // an empty index has no graph, so no tombstones either
    if (tombstones) g.fail("tombstones in an index without entries");
    g.expect_end();
    return;
  }
  const std::uint32_t max_level = g.u32();
  const std::uint32_t enter_point = g.u32();
  if (max_level > kMaxLevel) g.fail("bad top level " + std::to_string(max_level));
  if (enter_point >= count) g.fail("entry point out of range");

  // First pass, before anything is allocated: the structure must fit the section, and
  // the levels are needed to check every link against its target's level. hnswlib
  // follows links without checks; a link to a node lacking that layer would read out of
  // bounds. (hnswlib: maxM_ = M, maxM0_ = 2 * M.)
  const std::size_t max_links = static_cast<std::size_t>(params.M);
  const std::size_t max_links0 = 2 * max_links;
  // Each node takes at least 8 bytes (its level and its layer-0 link count).
  if (count > g.remaining() / 8) g.fail("too short for " + std::to_string(count) + " nodes");
  std::vector<std::uint32_t> levels(count);
  {
    detail::ByteReader scan = g;
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::uint32_t level = scan.u32();
      if (level > max_level) scan.fail("node " + std::to_string(i) + " level above the top level");
      levels[i] = level;
      for (std::uint32_t l = 0; l <= level; ++l) {
        const std::uint32_t n = scan.u32();
        const std::size_t cap = l == 0 ? max_links0 : max_links;
        if (n > cap) scan.fail("node " + std::to_string(i) + " has " + std::to_string(n) + " links, more than " + std::to_string(cap));
        scan.bytes(std::size_t(n) * 4);
      }
    }
    scan.expect_end();
  }
  if (levels[enter_point] != max_level) g.fail("entry point is not on the top level");

  ImageIndex::Impl& impl = *index.impl_;
  if (f16_rows && impl.codes != VectorCodes::F16) g.fail("internal error: binary16 rows in an index without f16 codes");
  if (stored_codes && impl.codes != VectorCodes::Int8) g.fail("internal error: stored codes in an index without int8 codes");
  // What each node's `vecs` entry is: a float32 row, a binary16 row (its own code), or a code.
  const std::size_t row_bytes = stored_codes ? impl.encoding->code_size()
                                             : static_cast<std::size_t>(dim) * (f16_rows ? 2 : sizeof(float));
  // With `rows_in_place` the nodes point at the file's binary16 rows (codes by address),
  // which the caller keeps mapped (attach_file_rows). Sections start 64-byte aligned; a
  // hostile file's need not, and its rows are copied instead.
  auto half_aligned = [](const std::uint8_t* p) { return reinterpret_cast<std::uintptr_t>(p) % alignof(std::uint16_t) == 0; };
  // int8 codes are read bytewise (the scale by memcpy): any address will do.
  rows_in_place = rows_in_place && (stored_codes || (f16_rows && half_aligned(vecs) &&
                                                     (tombstones == 0 || half_aligned(tombstone_vecs))));
  if (rows_in_place) impl.search_codes_by_address();
  impl.hnsw = new_hnsw(impl.graph_space(), count, params.M, params.ef_construction);
  impl.current_ef = 0;
  auto& h = *impl.hnsw;
  populate(h.data_level0_memory_, count * h.size_data_per_element_);
  // Each node's block zeroed and its row (or its row's address) copied in, or (compact
  // codes from float32 rows) its code made from the row, on every core; the links come below.
  parallel_for(0, count, resolve_threads(0), [&](std::size_t i) {
    std::memset(h.data_level0_memory_ + i * h.size_data_per_element_, 0, h.size_data_per_element_);
    const std::uint8_t* vec = i < live ? vecs + i * row_bytes : tombstone_vecs + (i - live) * row_bytes;
    auto* data = reinterpret_cast<std::uint8_t*>(h.getDataByInternalId(static_cast<hnswlib::tableint>(i)));
    if (rows_in_place) {
      std::memcpy(data, &vec, sizeof vec);
    } else if (!impl.compact() || f16_rows || stored_codes) {
      std::memcpy(data, vec, row_bytes);  // binary16 rows are codes: any padding stays 0
    } else if (reinterpret_cast<std::uintptr_t>(vec) % alignof(float) == 0) {  // sections start aligned
      impl.encoding->encode(reinterpret_cast<const float*>(vec), data);
    } else {
      thread_local std::vector<float> row;  // a hostile file's rows need not be
      row.resize(dim);
      std::memcpy(row.data(), vec, row_bytes);
      impl.encoding->encode(row.data(), data);
    }
  }, /*min_parallel=*/1024);
  if (h.maxM_ != max_links || h.maxM0_ != max_links0) g.fail("internal error: unexpected hnswlib link capacity");

  for (std::uint64_t i = 0; i < count; ++i) {
    const auto id = static_cast<hnswlib::tableint>(i);
    if (i < live) {
      h.setExternalLabel(id, i);  // label_lookup_ is filled when first needed (map_labels)
    } else {
      h.setExternalLabel(id, kTombstoneLabel + i);
    }
    const std::uint32_t level = g.u32();
    h.element_levels_[i] = static_cast<int>(level);
    h.linkLists_[i] = nullptr;
    if (level > 0) {
      h.linkLists_[i] = static_cast<char*>(std::calloc(level, h.size_links_per_element_));
      if (!h.linkLists_[i]) g.fail("out of memory");
    }
    h.cur_element_count = i + 1;  // from here on the destructor frees this node's lists
    for (std::uint32_t l = 0; l <= level; ++l) {
      const std::uint32_t n = g.u32();
      hnswlib::linklistsizeint* ll = l == 0 ? h.get_linklist0(id) : h.get_linklist(id, static_cast<int>(l));
      h.setListCount(ll, static_cast<unsigned short>(n));
      auto* out = reinterpret_cast<hnswlib::tableint*>(ll + 1);
      const std::uint8_t* raw = g.bytes(std::size_t(n) * 4);
      for (std::uint32_t j = 0; j < n; ++j) {
        std::uint32_t target;
        std::memcpy(&target, raw + j * 4, 4);
        if (target >= count || target == i) g.fail("node " + std::to_string(i) + " links to bad node " + std::to_string(target));
        if (l > 0 && levels[target] < l) g.fail("node " + std::to_string(i) + " links to node " + std::to_string(target) + " on a layer it lacks");
        out[j] = target;
      }
    }
  }
  for (std::uint64_t i = live; i < count; ++i) h.markDeletedInternal(static_cast<hnswlib::tableint>(i));
  h.enterpoint_node_ = enter_point;
  h.maxlevel_ = static_cast<int>(max_level);
  impl.internal_of.resize(live);
  for (std::uint64_t i = 0; i < live; ++i) impl.internal_of[i] = static_cast<hnswlib::tableint>(i);
  if (impl.compact()) {  // each entry's row: its own code (binary16), or row i of the file
    impl.row_of.resize(live);
    for (std::uint64_t i = 0; i < live; ++i) impl.row_of[i] = f16_rows ? kRowInGraph | i : i;
  }
}

void attach_file_rows(ImageIndex& index, std::shared_ptr<const MappedFile> file, const std::uint8_t* rows) {
  ImageIndex::Impl& impl = *index.impl_;
  if (!impl.compact()) return;
  impl.file = std::move(file);
  impl.file_rows = rows;
}

void check_rows_when_read(ImageIndex& index, const std::uint8_t* row_sums, std::string path) {
  ImageIndex::Impl& impl = *index.impl_;
  impl.row_sums = row_sums;
  impl.file_path = std::move(path);
  const std::size_t words = (index.size() + 63) / 64;
  impl.rows_checked.reset(new std::atomic<std::uint64_t>[words]);
  for (std::size_t w = 0; w < words; ++w) impl.rows_checked[w].store(0, std::memory_order_relaxed);
}

void free_change_locks(ImageIndex& index) {
  // hnswlib takes these only to change the graph, which a search-only index refuses.
  if (auto& hnsw = index.impl_->hnsw) {
    std::vector<std::mutex>().swap(hnsw->link_list_locks_);
    std::vector<std::mutex>().swap(hnsw->link_list_update_locks_);
  }
}

}  // namespace detail

}  // namespace imgsearch
