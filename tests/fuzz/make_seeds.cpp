// Writes the small seed files for the index and features fuzzers (tests/fuzz/corpus/):
// valid files of a few entries with a multi-level graph, so that mutations start from
// deep inside the format. Usage: make_seeds OUTPUT_DIR (writes index/ and features/).
#include <imgsearch/features_file.h>
#include <imgsearch/colour_histogram.h>
#include <imgsearch/index.h>
#include <imgsearch/index_io.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

using namespace imgsearch;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUTPUT_DIR\n");
    return 2;
  }
  const std::filesystem::path out = argv[1];
  std::filesystem::create_directories(out / "index");
  std::filesystem::create_directories(out / "features");
  std::mt19937 rng(42);
  std::mt19937_64 signal_rng(7);  // its own stream: the vectors stay what they were
  std::mt19937 colour_rng(11);     // and the colour histograms theirs
  std::normal_distribution<float> colour_normal;  // (a distribution caches a value: its own too)
  std::normal_distribution<float> normal;
  ModelInfo model;
  model.name = "seed";
  model.weights = "random";
  model.path = "/models/seed.pt";
  model.content_hash = "00112233aabbccdd";
  for (const auto& [n, dim, m] : {std::tuple{0, 4, 2}, std::tuple{1, 4, 2}, std::tuple{12, 4, 2}, std::tuple{60, 3, 2}}) {
    model.output_dim = dim;
    FeatureSet f;
    f.dim = dim;
    f.model = model;
    for (int i = 0; i < n; ++i) {
      double norm = 0;
      std::vector<float> row(dim);
      for (float& v : row) {
        v = normal(rng);
        norm += double(v) * v;
      }
      for (float& v : row) f.vectors.push_back(static_cast<float>(v / std::sqrt(norm)));
      f.paths.push_back("/p/" + std::to_string(i) + ".jpg");
    }
    const std::string name = std::to_string(n) + "x" + std::to_string(dim);
    write_features_file((out / "features" / (name + ".feat")).string(), f);
    if (n == 12) {
      // R-MAC vectors: the model object names a descriptor (features file version 2, index
      // META requires "descriptor").
      FeatureSet r = f;
      r.model.descriptor = Descriptor::parse("rmac:448,640");
      write_features_file((out / "features" / (name + "-rmac.feat")).string(), r);
      ImageIndex rmac(dim, HnswParams{}, r.model);
      std::vector<IndexEntry> rmac_entries(r.size());
      for (std::size_t i = 0; i < r.size(); ++i) rmac_entries[i].path = r.paths[i];
      rmac.add(rmac_entries, r.vectors.data(), 1);
      save_index(rmac, (out / "index" / (name + "-rmac.index")).string());
    }
    HnswParams params;
    params.M = m;
    params.ef_construction = 8;
    ImageIndex index(dim, params, model);
    std::vector<IndexEntry> entries(f.size());
    for (std::size_t i = 0; i < f.size(); ++i) {
      entries[i].path = f.paths[i];
      entries[i].size = 100 + i;
      entries[i].mtime_ns = static_cast<std::int64_t>(i);
      // Duplicate signals (DUPSIGS) on most entries, some absent, some content hashes shared.
      if (i % 5 != 4) {
        DuplicateSignals& s = entries[i].signals;
        s.present = true;
        s.content_hash = 0x9E3779B97F4A7C15ull * (i / 3 + 1);
        for (std::uint64_t& h : s.phash) h = signal_rng() & ~std::uint64_t(1);
        if (i % 3 == 1) s.phash = entries[i - 1].signals.phash;  // near-identical neighbours
        // Crop thumbnails (DUPTHUMB) on most of these: a gradient with a bright square
        // that moves a little from entry to entry, so the crop test finds matches.
        if (i % 7 != 6) {
          s.thumbnail.resize(kCropThumbPixels);
          for (int y = 0; y < kCropThumbSide; ++y)
            for (int x = 0; x < kCropThumbSide; ++x) {
              const bool square = std::abs(x - 12 - int(i % 4)) < 6 && std::abs(y - 16) < 6;
              s.thumbnail[y * kCropThumbSide + x] = static_cast<std::uint8_t>(square ? 230 : 4 * x + 2 * y);
            }
          // ...and their 64x64 ones (DUPTHM64) on most of those.
          if (i % 11 != 10) {
            s.fine_thumbnail.resize(kFineCropThumbPixels);
            for (int y = 0; y < kFineCropThumbSide; ++y)
              for (int x = 0; x < kFineCropThumbSide; ++x) {
                const bool square = std::abs(x - 24 - 2 * int(i % 4)) < 12 && std::abs(y - 32) < 12;
                s.fine_thumbnail[y * kFineCropThumbSide + x] = static_cast<std::uint8_t>(square ? 230 : 2 * x + y);
              }
          }
        }
      }
      // Colour histograms (COLRHIST) on most entries: a few bins, summing to 1.
      if (i % 4 != 3) {
        std::vector<float>& c = entries[i].colour;
        c.assign(kColourBins, 0.0f);
        for (int k = 0; k < 3; ++k) c[colour_rng() % kColourBins] += 1.0f / 3;
      }
    }
    index.add(entries, f.vectors.data(), 1);
    save_index(index, (out / "index" / (name + ".index")).string());
    if (n == 60) {  // a graph with tombstones (TOMBSTNS section, META requires): 6 of 60 removed
      ImageIndex removed = load_index((out / "index" / (name + ".index")).string());
      // These seeds are about the graph and its codes: without the crop thumbnails (5 KB an
      // entry, fuzzed in the seed above) they stay within fuzz.sh's -max_len, which
      // libFuzzer truncates longer seeds to.
      for (std::size_t id = 0; id < removed.size(); ++id) {
        DuplicateSignals s = removed.entry(id).signals;
        s.thumbnail.clear();
        s.fine_thumbnail.clear();
        removed.set_signals(id, s);
      }
      removed.remove_if([](const IndexEntry& e) { return e.size % 10 == 3; }, 1);
      save_index(removed, (out / "index" / (name + "-tombstones.index")).string());
      // compact codes (META "vectors", requires "vector_codes"), with tombstones too
      removed.set_vector_codes(VectorCodes::Int8, 1);
      removed.remove_if([](const IndexEntry& e) { return e.size % 10 == 7; }, 1);
      save_index(removed, (out / "index" / (name + "-int8-tombstones.index")).string());
      // f16: binary16 rows (META "rows", requires "f16_rows") in VECS and TOMBSTNS, chosen
      // by a user (META "vectors_chosen")
      removed.set_vector_codes(VectorCodes::F16, 1);
      removed.set_vector_codes_chosen(true);
      removed.remove_if([](const IndexEntry& e) { return e.size % 10 == 1; }, 1);
      save_index(removed, (out / "index" / (name + "-f16-tombstones.index")).string());
    }
    if (n == 12) {  // with every post-processing section (refinement.h)
      // A random dim -> 2 projection; "pca" as its method makes searches rescore.
      // (dim is a parameter: clang 14 cannot capture a structured binding.)
      auto random_projection = [&rng, &normal](int in_dim, float mean, const std::string& method) {
        Projection p;
        p.in_dim = in_dim;
        p.out_dim = 2;
        p.mean.assign(in_dim, mean);
        for (int i = 0; i < p.out_dim * in_dim; ++i) p.matrix.push_back(normal(rng));
        p.description = "{\"method\":\"" + method + "\"}";
        return p;
      };
      index.set_projection(random_projection(dim, 0.01f, "seed"), 1);
      index.set_augmentation({2, 3.0f}, 1);
      index.set_query_expansion({3, 1.0f});
      save_index(index, (out / "index" / (name + "-refined.index")).string());
      // and tombstones in the projected, augmented space (1 of 12 removed)
      index.remove_if([](const IndexEntry& e) { return e.size == 105; }, 1);
      save_index(index, (out / "index" / (name + "-refined-tombstones.index")).string());
      index.set_vector_codes(VectorCodes::F16, 1);  // f16 codes of the projected, augmented vectors
      save_index(index, (out / "index" / (name + "-refined-f16.index")).string());
      // A colour projection (PROJECT with colour fields, META requires colour_projection).
      Projection c;
      c.in_dim = dim;
      c.colour_bins = kColourBins;
      c.colour_weight = 0.5f;
      c.out_dim = 3;
      c.mean.assign(static_cast<std::size_t>(c.input_dim()), 0.01f);
      for (int i = 0; i < c.out_dim * c.input_dim(); ++i) c.matrix.push_back(colour_normal(colour_rng));
      c.description = "{\"method\":\"seed\"}";
      index.set_augmentation({}, 1);
      index.set_projection(c, 1);
      save_index(index, (out / "index" / (name + "-colour.index")).string());
      // A learned head (PROJECT with a hidden layer, META requires projection_head) over
      // the colour input, with augmentation.
      Projection h = c;
      h.hidden = 4;
      h.matrix.clear();
      for (int i = 0; i < h.hidden * h.input_dim(); ++i) h.matrix.push_back(colour_normal(colour_rng));
      for (int i = 0; i < h.hidden; ++i) h.hidden_bias.push_back(0.1f * colour_normal(colour_rng));
      for (int i = 0; i < h.out_dim * h.hidden; ++i) h.output_matrix.push_back(colour_normal(colour_rng));
      h.output_bias.assign(static_cast<std::size_t>(h.out_dim), 0.05f);
      index.set_projection(h, 1);
      index.set_augmentation({2, 3.0f}, 1);
      save_index(index, (out / "index" / (name + "-head.index")).string());
      index.set_augmentation({}, 1);
      // A projection for memory (learn --pca: description "method": "pca", searches
      // rescored by the model vectors) over int8 codes, without augmentation or expansion.
      index.set_query_expansion({});
      index.set_projection(random_projection(dim, 0.0f, "pca"), 1);
      index.set_vector_codes(VectorCodes::Int8, 1);
      save_index(index, (out / "index" / (name + "-pca-int8.index")).string());
    }
  }
  return 0;
}
