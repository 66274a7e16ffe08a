// Acting on duplicate groups, safely: a manifest (JSON, fsynced) is written before anything
// is touched; a file is acted on only if its size, mtime and content hash still match the
// index right before; moves are renames (across filesystems: copy, fsync, verify, then
// unlink); links replace a file through a temporary name and a rename, and only a file
// whose bytes are identical to the file it is linked to (a link to a different file would
// lose it): in each group, byte-identical members are linked to the first of them.
// undo_dedup_actions() puts everything a manifest lists back. docs/dedup.md.
#pragma once

#include "imgsearch/duplicates.h"
#include "imgsearch/index.h"

#include <string>
#include <vector>

namespace imgsearch {

enum class DedupAction { Move, Hardlink, Symlink, Delete };
const char* dedup_action_name(DedupAction action);

struct DedupActionOptions {
  DedupAction action = DedupAction::Move;
  std::string move_to;      // Move: destination folder
  std::string layout_root;  // Move: paths keep their layout relative to this folder
  std::string manifest;     // written before acting; must not exist yet
  std::string index_path;   // recorded in the manifest
};

struct DedupActionReport {
  std::size_t planned = 0, done = 0;
  // Links: members byte-identical to no other member are left as they are (by design).
  std::size_t not_identical = 0;
  std::vector<std::string> problems;  // one line each, naming the file: left alone, never half-done
};

// Acts on every member of every group that is not kept. Throws Error(Io) only when the
// manifest cannot be written (then nothing was touched).
DedupActionReport apply_dedup_actions(const ImageIndex& index, const std::vector<DuplicateGroup>& groups,
                                      const DedupActionOptions& options);

struct DedupUndoReport {
  std::size_t entries = 0, restored = 0, already_in_place = 0;
  std::vector<std::string> problems;
};

// Restores what a manifest lists: moved files back, links replaced by a copy of their
// keeper's bytes (identical to the original's, checked by content hash), deleted exact
// copies from their keeper. A deleted file that was not an exact copy cannot come back
// and is reported. Throws Error(Format/Io) when the manifest cannot be read.
DedupUndoReport undo_dedup_actions(const std::string& manifest_path);

}  // namespace imgsearch
