// Writing and restoring the HNSW graph of an ImageIndex. hnswlib 0.6 defines globals in
// its headers, so exactly one translation unit (index.cpp) may include it; index_io.cpp
// reaches the graph through these two functions.
#pragma once

#include "binary_file.h"
#include "imgsearch/index.h"

namespace imgsearch::detail {

// Links are written as node numbers (the entries' ids, then the tombstones), level by
// level, node by node (docs/formats.md).
void write_graph(const ImageIndex& index, BinaryFileWriter& out);
// The TOMBSTNS section: their count, then their search vectors in graph node order.
void write_tombstones(const ImageIndex& index, BinaryFileWriter& out);
// Validates every level, link count and link target before hnswlib sees it. `vectors`
// holds index.size() * index.dim() floats, `tombstone_vectors` tombstones * index.dim():
// the graph has index.size() + tombstones nodes, the last `tombstones` of them deleted.
// With compact codes the graph gets each vector's code. With `f16_rows` (an f16 index
// whose file holds binary16 rows) every row is 2 * index.dim() bytes and is its own code;
// with `rows_in_place` as well the graph reads them where they are (in the mapped file,
// which the caller must keep: attach_file_rows) instead of a copy.
// With `stored_codes` (an int8 index's CODES section) `vectors` and `tombstone_vectors`
// are the nodes' codes as the graph held them, copied in (or, with `rows_in_place`,
// searched where they lie) instead of made from the rows, which stay in the file.
void restore_graph(ImageIndex& index, ByteReader& graph, const std::uint8_t* vectors, std::uint64_t tombstones = 0,
                   const std::uint8_t* tombstone_vectors = nullptr, bool f16_rows = false, bool rows_in_place = false,
                   bool stored_codes = false);
// The CODES section of an int8 index without post-processing: u32 code size, then every
// graph node's code in file node order (entries, then tombstones).
void write_codes(const ImageIndex& index, BinaryFileWriter& out);
// The rows the graph searches, in entry order: float32, or binary16 for an f16 index
// (VECS, or SRCHVECS with post-processing).
// With `row_sums`, each float32 row's XXH3-64 is appended to it (the ROWSUMS section).
void write_search_rows(const ImageIndex& index, BinaryFileWriter& out, std::vector<std::uint64_t>* row_sums = nullptr);
// A compact index just restored: int8 (or f16 from float32 rows) keeps its exact rows
// (index.size() x index.dim() floats at `rows`, inside `file`) in the file: search() reads
// them with pread; f16 may search its binary16 rows in place. load_index drops the
// mapping's pages (MappedFile::drop_pages) once it has read the rest.
void attach_file_rows(ImageIndex& index, std::shared_ptr<const MappedFile> file, const std::uint8_t* rows);
// After attach_file_rows, for a load that left the rows unchecked (CODES and ROWSUMS
// present): each row is checked against its sum (`row_sums`: index.size() u64 in the
// mapped file) and for NaN when it is read, Error(Format) naming `path` if it fails.
void check_rows_when_read(ImageIndex& index, const std::uint8_t* row_sums, std::string path);

}  // namespace imgsearch::detail
