// Saving and loading an ImageIndex as one flat binary file. Format: docs/formats.md.
#pragma once

#include "imgsearch/index.h"

#include <string>

namespace imgsearch {

// Atomic: temporary file beside `path`, fsync, rename; an interrupted save leaves the
// previous file intact.
void save_index(const ImageIndex& index, const std::string& path);

// Validates every size, count, offset, link and id before use, and the checksums;
// a truncated, corrupt or hostile file throws Error(Format) naming the file.
ImageIndex load_index(const std::string& path);

// Only the model an index was built with (its header and metadata, checked the same way),
// without reading the vectors or the graph: lets a caller load the model while the index
// itself loads on another thread.
ModelInfo load_index_model(const std::string& path);

}  // namespace imgsearch
