// An HNSW index (hnswlib) over L2-normalised image embeddings: inner product = cosine.
#pragma once

#include "imgsearch/duplicate_signals.h"
#include "imgsearch/model.h"
#include "imgsearch/refinement.h"
#include "imgsearch/vector_encoding.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace imgsearch {

class ImageIndex;
struct IndexLoadOptions;
namespace detail {
class BinaryFileWriter;
class ByteReader;
struct MappedFile;
struct EntriesInFile;
void write_graph(const ImageIndex&, BinaryFileWriter&);
void write_tombstones(const ImageIndex&, BinaryFileWriter&);
void write_search_rows(const ImageIndex&, BinaryFileWriter&, std::vector<std::uint64_t>*);
void restore_graph(ImageIndex&, ByteReader&, const std::uint8_t*, std::uint64_t, const std::uint8_t*, bool, bool, bool);
void write_codes(const ImageIndex&, BinaryFileWriter&);
void check_rows_when_read(ImageIndex&, const std::uint8_t*, std::string);
void attach_file_rows(ImageIndex&, std::shared_ptr<const MappedFile>, const std::uint8_t*);
void free_change_locks(ImageIndex&);
}  // namespace detail

struct HnswParams {
  int M = 16;                 // links per node (2*M on the bottom layer)
  int ef_construction = 200;  // beam width while building
  int ef_search = 64;         // default beam width while searching (>= k is enforced)
};

// What the index knows about each indexed file, to tell unchanged files from changed ones.
struct IndexEntry {
  std::string path;  // absolute, lexically normal
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  DuplicateSignals signals;  // for `dedup`; absent in entries indexed before they existed
  // colour_histogram.h: kColourBins floats (L1), or empty in entries indexed before it
  // existed (`index` fills them in). A colour projection (refinement.h) takes it as input.
  std::vector<float> colour;
};

struct SearchHit {
  std::uint32_t id = 0;  // entry number
  float score = 0;       // cosine similarity
};

class ImageIndex {
 public:
  ImageIndex(int dim, HnswParams params, ModelInfo model, VectorCodes codes = VectorCodes::F32);
  ~ImageIndex();
  ImageIndex(ImageIndex&&) noexcept;
  ImageIndex& operator=(ImageIndex&&) noexcept;

  // The dimension of the vectors the index searches (vector(), search()): the model's,
  // or a projection's (refinement.h).
  int dim() const { return dim_; }
  std::size_t size() const;
  const HnswParams& params() const { return params_; }
  void set_default_ef(int ef) { params_.ef_search = ef; }
  const ModelInfo& model() const { return model_; }
  void set_model(ModelInfo model) { model_ = std::move(model); }
  // The whole entry. An index loaded for searching only (IndexLoadOptions::entries left
  // them in the file) keeps no entries in memory: entry() and entries() throw Error(InvalidArgument)
  // there, and entry_info() is how a searcher reads one.
  const IndexEntry& entry(std::size_t id) const;
  const std::vector<IndexEntry>& entries() const;
  // The entry's path, size and modification time (no signals, no colour), from memory or,
  // loaded for searching only, read from the index file (Error(Io) if it was truncated or
  // rewritten in place since).
  IndexEntry entry_info(std::size_t id) const;
  std::string path(std::size_t id) const { return entry_info(id).path; }
  // False when loaded for searching only: every change (add, remove_if, set_*, compact)
  // and save_index refuse such an index.
  bool changeable() const { return !entries_in_file_; }
  // dim() floats, the rows the index holds: float32, or for an f16 index loaded from a file
  // its binary16 rows (below) as floats. The pointer is valid while the index lives and is
  // not changed; it may be into the mapped index file (an int8 index, or an f16 index
  // whose file predates binary16 rows), and for an f16 index loaded from a file the first
  // call decodes every row into memory (once): see copy_vector.
  const float* vector(std::size_t id) const;
  // The same floats into `out` (dim() of them), from the graph or the file (pread) without
  // mapping or decoding anything else: what a searcher that must stay small uses.
  void copy_vector(std::size_t id, float* out) const;
  // What the graph searches (vector_encoding.h): f32 rows, or compact codes whose final
  // beam search() rescores with the index's rows. int8: only codes and graph stay in
  // memory, the float32 rows are read from the file when needed. f16: the file holds the
  // rows as binary16 (save_index writes them so), which are the codes themselves: nothing
  // is read from the file after the load.
  VectorCodes vector_codes() const;
  // Re-links the graph over the other encoding (like a compaction: tombstones go).
  void set_vector_codes(VectorCodes codes, int threads = 0);
  // Whether a user chose the encoding (`index --vectors f32|f16|int8`); `--vectors auto`
  // changes only one nobody chose (automatic_vector_codes). Saved with the index.
  bool vector_codes_chosen() const { return vector_codes_chosen_; }
  void set_vector_codes_chosen(bool chosen) { vector_codes_chosen_ = chosen; }
  void set_signals(std::size_t id, const DuplicateSignals& signals);
  // How many entries carry duplicate signals.
  std::size_t signals_count() const;
  // The entry's colour histogram (kColourBins floats), or nullptr when it has none.
  const float* colour(std::size_t id) const {
    if (entries_in_file_) return nullptr;  // only without a colour projection (load_index)
    const auto& c = entries_.at(id).colour;
    return c.empty() ? nullptr : c.data();
  }
  // Sets a histogram (kColourBins floats, each in 0..1). With a colour projection the
  // entry's search vector changes: callers then re-apply the projection (set_projection).
  void set_colour(std::size_t id, std::vector<float> colour);
  // Entries with a colour histogram (as the file has them when load_index left them out).
  std::size_t colour_count() const;

  // Progress of linking vectors into the graph: (linked so far, to link in all).
  using LinkProgress = std::function<void(std::size_t done, std::size_t total)>;
  // Appends entries and links them into the graph, `threads` at a time (0 = all cores).
  // `vectors` is entries.size() * dim() floats; rows are L2-normalised here. `progress`,
  // if set, is called with (0, total) when linking starts, then now and then, one call at a
  // time, from the linking threads; the total is entries.size() plus, with augmentation,
  // the existing entries it re-links.
  void add(const std::vector<IndexEntry>& entries, const float* vectors, int threads = 0,
           const LinkProgress& progress = {});
  // Drops the entries for which `drop` is true and returns how many. The survivors are
  // renumbered 0..size()-1 in their order. Their graph nodes stay as tombstones
  // (hnswlib's markDelete: searches route through them and never return them), so a
  // removal costs no rebuild; with post-processing, the entries that lost an augmentation
  // neighbour get their new search vectors in place. Once tombstones would exceed
  // kCompactFraction of the graph's nodes, the graph is compacted instead: rebuilt from
  // the survivors' search vectors (no model needed), which drops every tombstone.
  std::size_t remove_if(const std::function<bool(const IndexEntry&)>& drop, int threads = 0);
  static constexpr double kCompactFraction = 0.2;
  std::size_t tombstones() const;  // removed nodes still in the graph (saved with it: TOMBSTNS)
  std::size_t graph_nodes() const { return size() + tombstones(); }
  std::size_t compactions() const { return compactions_; }  // by remove_if/compact() since load or construction
  void compact(int threads = 0);   // rebuilds the graph now if it holds tombstones

  // k best by HNSW, best first. ef = 0 uses params().ef_search. Never a removed entry;
  // min(k, size()) hits (by brute force if the graph cannot reach that many).
  std::vector<SearchHit> search(const float* query, int k, int ef = 0) const;
  // k best by brute force over every vector, best first.
  std::vector<SearchHit> search_exact(const float* query, int k) const;

  // Post-processing (refinement.h; implemented in refinement.cpp). vector() and search()
  // are in the search space: projected and augmented; add() takes model vectors, which are
  // kept (model_vector()) while a projection or augmentation is set.
  int model_dim() const { return model_dim_; }
  const float* model_vector(std::size_t id) const;  // model_dim() floats, L2-normalised
  // The same floats, copied; an index that left them in its file (IndexLoadOptions) reads
  // them with pread, so a file changed or truncated under a long-running reader gives
  // Error(Io) instead of a fault. What a searcher that outlives its file's writes uses.
  std::vector<float> model_vector_copy(std::size_t id) const;
  const Projection& projection() const { return projection_; }
  const Augmentation& augmentation() const { return augmentation_; }
  // Each entry's augmentation neighbours, augmentation().k per entry (empty when off).
  const std::vector<std::uint32_t>& augmentation_neighbours() const { return augmentation_neighbours_; }
  const QueryExpansion& query_expansion() const { return query_expansion_; }
  // Whether load_index left an optional section out (IndexLoadOptions): such an index
  // searches like the whole one but save_index refuses it.
  bool sections_left_out() const { return sections_left_out_; }
  void set_query_expansion(QueryExpansion qe);
  // Each recomputes every search vector from the model vectors and rebuilds the graph.
  void set_augmentation(Augmentation augmentation, int threads = 0);
  void set_projection(Projection projection, int threads = 0);  // Projection{} removes it

 private:
  int dim_;
  HnswParams params_;
  ModelInfo model_;
  std::vector<IndexEntry> entries_;
  // Loaded for searching only: where each entry's record lies in the file (entries_ empty).
  std::shared_ptr<const detail::EntriesInFile> entries_in_file_;
  void require_changeable(const char* what) const;
  struct Impl;  // the hnswlib graph
  std::unique_ptr<Impl> impl_;
  // Post-processing state (refinement.cpp).
  int model_dim_;
  Projection projection_;
  Augmentation augmentation_;
  QueryExpansion query_expansion_;
  std::vector<float> model_vectors_;  // size() x model_dim_, kept while transformed()...
  // ...or, loaded with model_vectors_in_memory = false, read in place from the mapped file
  // (own_model_vectors() copies them in before any change).
  std::shared_ptr<const detail::MappedFile> model_file_;
  const float* mapped_model_vectors_ = nullptr;
  void own_model_vectors();
  std::vector<std::uint32_t> augmentation_neighbours_;
  std::size_t compactions_ = 0;
  bool sections_left_out_ = false;  // loaded without an optional section: must not be saved
  std::size_t colours_left_in_file_ = 0;
  bool vector_codes_chosen_ = false;

  bool transformed() const { return projection_.enabled() || augmentation_.enabled(); }
  // add() and remove_if() without post-processing: `vectors` are search vectors.
  // `progress` counts from `done_before` towards `total` (0: entries.size()).
  void add_search_vectors(const std::vector<IndexEntry>& entries, const float* vectors, int threads,
                          const LinkProgress& progress = {}, std::size_t done_before = 0, std::size_t total = 0);
  // Changes these entries' search vectors in place (hnswlib repairs their links).
  void replace_search_vectors(const std::vector<std::uint32_t>& ids, const float* vectors,
                              const LinkProgress& progress = {}, std::size_t done_before = 0, std::size_t total = 0);
  // Replaces the graph (and the dimension) with these entries and search vectors.
  void rebuild(std::vector<IndexEntry> entries, const float* vectors, int dim, int threads);
  // Keeps only the entries `keep` (ascending old ids), renumbered in that order: their
  // nodes are relabelled and the others marked deleted; the graph is not rebuilt.
  void bury(const std::vector<std::uint32_t>& keep);
  // Search vectors that change with a removal: entry ids after it, and dim() floats each.
  struct SearchVectorChanges {
    std::vector<std::uint32_t> ids;
    std::vector<float> vectors;
  };
  void add_transformed(const std::vector<IndexEntry>& entries, const float* vectors, int threads,
                       const LinkProgress& progress);
  // The post-processing side of remove_if, before the graph changes: drops the removed
  // entries' model vectors and neighbour lists, and re-augments the entries that lost a
  // neighbour (returned, for remove_if to write into the graph).
  SearchVectorChanges remove_transformed(const std::vector<std::uint32_t>& keep);
  std::vector<float> base_vectors() const;  // model vectors, projected: size() x the projected dimension
  friend ImageIndex load_index(const std::string& path, const IndexLoadOptions& options);
  friend void detail::write_graph(const ImageIndex&, detail::BinaryFileWriter&);
  friend void detail::write_tombstones(const ImageIndex&, detail::BinaryFileWriter&);
  friend void detail::write_search_rows(const ImageIndex&, detail::BinaryFileWriter&, std::vector<std::uint64_t>*);
  friend void detail::restore_graph(ImageIndex&, detail::ByteReader&, const std::uint8_t*, std::uint64_t,
                                    const std::uint8_t*, bool, bool, bool);
  friend void detail::write_codes(const ImageIndex&, detail::BinaryFileWriter&);
  friend void detail::check_rows_when_read(ImageIndex&, const std::uint8_t*, std::string);
  friend void detail::attach_file_rows(ImageIndex&, std::shared_ptr<const detail::MappedFile>, const std::uint8_t*);
  friend void detail::free_change_locks(ImageIndex&);
};

}  // namespace imgsearch
