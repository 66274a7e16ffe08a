// Internal: the entries of an index loaded for searching only (IndexLoadOptions::entries
// left them in the file); what the process keeps is where to find them.
#pragma once

#include "binary_file.h"
#include "imgsearch/index.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace imgsearch::detail {

struct EntriesInFile {
  static constexpr std::size_t kBlock = 16;  // records a block
  std::string path;                          // the index file, for messages
  std::shared_ptr<const MappedFile> file;    // read with pread, never through the mapping
  std::uint64_t section_offset = 0, section_size = 0, count = 0;
  // Block b holds records kBlock*b .. kBlock*b+kBlock-1 and starts at block_start[b] in the
  // section; block_hash[b] (XXH3-64 of its bytes) tells a block read back from a file
  // rewritten in place since the load. Together 1 byte an entry instead of ~230.
  std::vector<std::uint64_t> block_start, block_hash;
};

// Reads entry `id` back (path, size, mtime). Throws Error(Io) naming the file when the
// file no longer holds what was loaded.
IndexEntry read_entry(const EntriesInFile& entries, std::size_t id);

// For an index loaded for searching only, once its graph is restored: frees hnswlib's
// per-node locks (40 bytes a node), which only changes take.
void free_change_locks(ImageIndex& index);

}  // namespace imgsearch::detail
