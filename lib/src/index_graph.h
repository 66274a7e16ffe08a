// Writing and restoring the HNSW graph of an ImageIndex. hnswlib 0.6 defines globals in
// its headers, so exactly one translation unit (index.cpp) may include it; index_io.cpp
// reaches the graph through these two functions.
#pragma once

#include "binary_file.h"
#include "imgsearch/index.h"

namespace imgsearch::detail {

// Links are written as entry ids, level by level, node by node (docs/formats.md).
void write_graph(const ImageIndex& index, BinaryFileWriter& out);
// Validates every level, link count and link target before hnswlib sees it.
// `vectors` holds index.size() * index.dim() floats.
void restore_graph(ImageIndex& index, ByteReader& graph, const std::uint8_t* vectors);

}  // namespace imgsearch::detail
