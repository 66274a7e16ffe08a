// Saving and loading an ImageIndex as one flat binary file. Format: docs/formats.md.
#pragma once

#include "imgsearch/index.h"

#include <string>

namespace imgsearch {

// Atomic: temporary file beside `path`, fsync, rename; an interrupted save leaves the
// previous file intact.
void save_index(const ImageIndex& index, const std::string& path);

// What a reader needs besides the vectors, the graph and the entries. Each optional
// section left out saves its memory for every image; an index loaded without one cannot
// be saved (it would lose it), so writers load it whole.
struct IndexLoadOptions {
  // dedup's crop thumbnails (DUPTHUMB, DUPTHM64): 5 KB per image, used only by dedup.
  bool duplicate_thumbnails = true;
  // The colour histograms (COLRHIST), 456 bytes per image: when false they are still
  // loaded if the index's projection takes colour (a search by an indexed image needs its
  // histogram then).
  bool colour_histograms = true;
  // A projected or augmented index keeps the model's vectors (model_dim floats per image:
  // 5 KB at 1280-d) for searches by an indexed image, refits and incremental updates.
  // When false they are read from the mapped file on demand instead of copied into
  // memory (a change that needs them copies them in first).
  bool model_vectors_in_memory = true;
  // An f16 index whose file holds binary16 rows (2 x dim bytes per image): copied into
  // memory, or, when false, searched where they lie in the mapped file. In place, a load
  // allocates and copies none of them (at 10^6 x 1280-d 2.6 GB, most of a cold query)
  // and only the rows searches touch become resident; but a file rewritten in place
  // under the process (`cp` over it, not imgsearch's own saves, which replace the file)
  // would make searches fault or read the new bytes. For one-shot readers (query).
  bool search_rows_in_memory = true;
  // Where each entry's path, size and modification time are kept:
  //  - Memory: as IndexEntry objects (~230 bytes an image); the index can be changed.
  //  - File: left in the index file, read back per hit (ImageIndex::entry_info: 1 byte an
  //    image kept), and hnswlib's per-node locks, taken only by changes, freed (40 bytes an
  //    image). Such an index is for searching only: it refuses every change and save_index.
  //  - FileIfSearchesReadIt: File when the index's searches read its file anyway (int8
  //    rows, f16 rows or model vectors left there), else Memory: an index held wholly in
  //    memory then keeps serving if its file is rewritten in place under it.
  // An index whose projection takes colour keeps its entries (their histograms) in memory.
  enum class Entries { Memory, File, FileIfSearchesReadIt };
  Entries entries = Entries::Memory;
};
// What a searcher (serve) needs: no thumbnails, histograms only if used, the model's
// vectors left in the file (read them with ImageIndex::model_vector_copy where the file
// may change under a long-running process), and the entries too when searches read the
// file anyway. The rows searched stay in memory: a one-shot reader may leave them in the
// file too (query_load_options).
inline IndexLoadOptions search_load_options() {
  return {false, false, false, true, IndexLoadOptions::Entries::FileIfSearchesReadIt};
}
// What `query` loads: search_load_options with an f16 index's rows and the entries always
// left in the file.
inline IndexLoadOptions query_load_options() { return {false, false, false, false, IndexLoadOptions::Entries::File}; }

// Validates every size, count, offset, link and id before use, and the checksums (of the
// sections it reads); a truncated, corrupt or hostile file throws Error(Format) naming
// the file.
ImageIndex load_index(const std::string& path, const IndexLoadOptions& options = {});

// Only the model an index was built with (its header and metadata, checked the same way),
// without reading the vectors or the graph: lets a caller load the model while the index
// itself loads on another thread.
ModelInfo load_index_model(const std::string& path);

}  // namespace imgsearch
