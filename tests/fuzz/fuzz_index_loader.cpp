// libFuzzer harness: load_index() on arbitrary bytes. An index that loads must also be
// safe to search (the restored HNSW graph is walked), to add to (hnswlib inserts through
// the restored links) and to remove from (tombstones, in-place updates of augmented
// neighbours).
#include "fuzz_memfile.h"

#include <imgsearch/colour_histogram.h>
#include <imgsearch/duplicates.h>
#include <imgsearch/error.h>
#include <imgsearch/index_io.h>

#include <vector>

namespace {

void load(const std::uint8_t* data, std::size_t size, const imgsearch::IndexLoadOptions& options = {}) {
  const fuzz::MemFile file(data, size);
  try {
    imgsearch::ImageIndex index = imgsearch::load_index(file.path(), options);
    if (index.size() > 0 && !index.changeable()) {
      // Loaded for searching only: searches, and every entry read back from the file.
      std::vector<float> query(index.vector(0), index.vector(0) + index.dim());
      query[0] += 0.25f;
      for (const imgsearch::SearchHit& hit : index.search(query.data(), 10, 32)) (void)index.path(hit.id);
      for (std::size_t i = 0; i < index.size(); ++i) (void)index.entry_info(i).path.size();
      std::vector<float> model_query(index.model_vector(0), index.model_vector(0) + index.model_dim());
      try {
        imgsearch::refined_search(index, model_query.data(), nullptr, 5, 16, false, {});
      } catch (const imgsearch::Error& e) {
        if (e.kind() != imgsearch::ErrorKind::InvalidArgument) throw;
      }
    } else if (index.size() > 0) {
      std::vector<float> query(index.vector(0), index.vector(0) + index.dim());
      query[0] += 0.25f;
      index.search(query.data(), 10, 32);
      index.search_exact(query.data(), 3);
      for (std::size_t i = 0; i < index.size(); ++i) (void)index.entry(i).path.size();
      // The duplicate signals (DUPSIGS, DUPTHUMB) as dedup uses them: hash neighbours,
      // pairs (the crop test too), groups.
      imgsearch::DedupOptions dedup;
      dedup.thresholds = imgsearch::dedup_preset("similar");
      dedup.neighbours = 4;
      dedup.threads = 1;
      imgsearch::SignalCrowding crowding;
      const auto pairs = imgsearch::find_duplicate_pairs(index, dedup, &crowding);
      imgsearch::group_duplicates(index, pairs, dedup.thresholds, {}, &crowding);
      // The crowd rule's other paths: every image crowded (limits of 0), and the crowds
      // measured again by grouping alone (measure_crowding).
      dedup.thresholds.crowd_hash_limit = dedup.thresholds.crowd_cnn_limit = 0;
      imgsearch::group_duplicates(index, imgsearch::find_duplicate_pairs(index, dedup), dedup.thresholds, {});
      // Post-processing (projection, augmentation, expansion) on a model-space vector.
      std::vector<float> model_query(index.model_vector(0), index.model_vector(0) + index.model_dim());
      model_query[0] += 0.25f;
      try {
        // A colour histogram for a colour projection (COLRHIST, refinement.h).
        const std::vector<float> colour(imgsearch::kColourBins, 1.0f / imgsearch::kColourBins);
        imgsearch::refined_search(index, model_query.data(), colour.data(), 5, 16, false, {3, 2.0f});
        // Without expansion: a PCA projection's candidates are rescored by the model
        // vectors, read with pread from the file when they were left there.
        imgsearch::refined_search(index, model_query.data(), colour.data(), 5, 16, false, {});
        index.model_vector_copy(index.size() - 1);
        index.add({imgsearch::IndexEntry{"/fuzz/new.jpg", 1, 1, {}, colour}}, model_query.data(), 1);
        index.search(query.data(), 5, 16);
        index.remove_if([](const imgsearch::IndexEntry& e) { return e.size == 1; }, 1);
        // A removal that leaves a tombstone (or compacts a small graph), then a search
        // through the restored graph with it.
        const std::string first = index.entry(0).path;
        index.remove_if([&](const imgsearch::IndexEntry& e) { return e.path == first; }, 1);
        index.search(query.data(), 5, 16);
      } catch (const imgsearch::Error& e) {
        // Stored vectors need not be normalised: a zero or overflowing query is refused.
        if (e.kind() != imgsearch::ErrorKind::InvalidArgument) throw;
      }
    }
  } catch (const imgsearch::Error& e) {
    // Every rejection must be a Format error that names the file; anything else is a bug.
    if (e.kind() != imgsearch::ErrorKind::Format || std::string(e.what()).rfind(file.path(), 0) != 0) {
      std::fprintf(stderr, "unexpected error: %s\n", e.what());
      std::abort();
    }
  }
}

}  // namespace

// Each input is loaded as it is, and again with its checksums repaired, so that the
// structural checks behind the checksums get fuzzed too; the repaired one also as `query`
// loads it (optional sections skipped or only counted, model vectors and f16 rows read in
// place).
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  load(data, size);
  const std::vector<std::uint8_t> fixed = fuzz::with_fixed_checksums(data, size);
  if (!fixed.empty()) {
    load(fixed.data(), fixed.size());
    load(fixed.data(), fixed.size(), imgsearch::query_load_options());
  }
  return 0;
}
