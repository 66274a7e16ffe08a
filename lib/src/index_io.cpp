#include "imgsearch/index_io.h"

#include "binary_file.h"
#include "imgsearch/colour_histogram.h"
#include "imgsearch/error.h"
#include "entries_in_file.h"
#include "index_graph.h"
#include "meta_section.h"
#include "model_info_json.h"
#include "parallel_for.h"
#include "vector_codes.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <future>
#include <set>


namespace imgsearch {

namespace {
constexpr char kMagic[] = "IMGSINDX";
// Version 1: no required features. Version 2: META may list "requires" (below); written
// only when it is non-empty, so that imgsearch 0.1 (which reads version 1 only and knows
// no "requires") refuses such a file instead of misreading it.
constexpr std::uint32_t kVersion = 2;
constexpr std::uint64_t kMaxEntries = 0xFFFFFFF0ull;
constexpr std::size_t kMaxPathBytes = 1 << 16;
// Optional sections that change what an index's vectors or rankings mean are listed in
// META "requires"; a reader refuses a file that requires a feature it does not know, so an
// older imgsearch never silently ignores one. Sections that only add information (a
// reader that skips them still ranks correctly) need no entry. docs/formats.md.
const std::set<std::string>& known_features() {
  // tombstones: the graph holds removed nodes (TOMBSTNS); a reader that ignored them
  // would misread the graph.
  // vector_codes: the graph searches compact codes (META "vectors"); a reader that ignored
  // it would load the graph over float32 rows it was not built on.
  // colour_projection: the projection also takes each image's colour histogram (COLRHIST).
  // f16_rows: the searched rows (VECS, SRCHVECS, TOMBSTNS) are binary16 (META "rows").
  // descriptor: the vectors are not the model's pooled output (model "descriptor"); a
  // reader that ignored it would embed queries differently from the stored images.
  // projection_head: the projection has a hidden layer (PROJECT's head fields); a reader
  // that ignored it would read them as the linear matrix.
  static const std::set<std::string> features{"projection", "augmentation", "query_expansion", "tombstones",
                                              "vector_codes", "colour_projection", "f16_rows", "descriptor",
                                              "projection_head"};
  return features;
}
constexpr std::uint32_t kNoNeighbour = 0xFFFFFFFFu;

// The first of `n` values at `bytes` (float32, or binary16 with `f16`) that is NaN or
// infinite (all exponent bits set), or n. A million 1,280-d rows are 5 GB: blocks on every
// core, each a branch-free scan, then a value-by-value search only in a block that holds one.
std::uint64_t first_non_finite(const std::uint8_t* bytes, std::uint64_t n, bool f16) {
  auto half_bad = [bytes](std::uint64_t i) {
    std::uint16_t u;
    std::memcpy(&u, bytes + 2 * i, 2);
    return (u & 0x7c00u) == 0x7c00u;
  };
  auto float_bad = [bytes](std::uint64_t i) {
    std::uint32_t u;
    std::memcpy(&u, bytes + 4 * i, 4);
    return (u & 0x7f800000u) == 0x7f800000u;
  };
  // Whether [begin, end) holds one, without a branch per value. float32: a loop the
  // compiler vectorises. binary16: four halves a word; a lane whose exponent bits are all
  // set becomes 0 in t, and the zero-lane test sets its top bit (a borrow can only follow
  // a zero lane).
  auto block_bad = [&](std::uint64_t begin, std::uint64_t end) {
    std::uint64_t bad = 0, i = begin;
    if (!f16) {
      for (; i < end; ++i) bad |= float_bad(i);
      return bad != 0;
    }
    constexpr std::uint64_t kExponents = 0x7c007c007c007c00ull, kOnes = 0x0001000100010001ull,
                            kTops = 0x8000800080008000ull;
    for (; i + 4 <= end; i += 4) {
      std::uint64_t w;
      std::memcpy(&w, bytes + 2 * i, 8);
      const std::uint64_t t = (w & kExponents) ^ kExponents;
      bad |= (t - kOnes) & ~t & kTops;
    }
    for (; i < end; ++i) bad |= half_bad(i);
    return bad != 0;
  };
  constexpr std::uint64_t kBlock = 1 << 18;
  std::atomic<std::uint64_t> first{n};
  parallel_for(0, (n + kBlock - 1) / kBlock, resolve_threads(0), [&](std::size_t b) {
    const std::uint64_t begin = b * kBlock, end = std::min(n, begin + kBlock);
    if (!block_bad(begin, end)) return;
    for (std::uint64_t i = begin; i < end; ++i) {
      if (!(f16 ? half_bad(i) : float_bad(i))) continue;
      for (std::uint64_t seen = first.load(); i < seen && !first.compare_exchange_weak(seen, i);) {
      }
      return;
    }
  });
  return first.load();
}
constexpr std::size_t kMaxDescriptionBytes = 1 << 20;

void write_float(detail::BinaryFileWriter& out, float v) { out.write(&v, sizeof v); }
}  // namespace

void save_index(const ImageIndex& index, const std::string& path) {
  IMGSEARCH_CHECK(index.changeable(), ErrorKind::InvalidArgument,
                  "{}: not saved: this index was loaded for searching only (load it whole to write it)", path);
  IMGSEARCH_CHECK(!index.sections_left_out(), ErrorKind::InvalidArgument,
                  "{}: not saved: this index was loaded without its optional sections (load it whole to write it)", path);
  const std::size_t n = index.size();
  const int dim = index.dim();
  // Features this index uses that change what its vectors or rankings mean.
  std::vector<std::string> required;
  const bool projected = index.projection().enabled(), augmented = index.augmentation().enabled();
  const bool expanded = index.query_expansion().enabled();
  if (projected) required.push_back("projection");
  if (projected && index.projection().uses_colour()) required.push_back("colour_projection");
  if (projected && index.projection().has_hidden_layer()) required.push_back("projection_head");
  if (augmented) required.push_back("augmentation");
  if (expanded) required.push_back("query_expansion");
  const bool with_tombstones = index.tombstones() > 0;
  if (with_tombstones) required.push_back("tombstones");
  const bool compact = index.vector_codes() != VectorCodes::F32;
  if (compact) required.push_back("vector_codes");
  // f16 indexes store their searched rows as binary16: the codes are the rows.
  const bool f16_rows = index.vector_codes() == VectorCodes::F16;
  if (f16_rows) required.push_back("f16_rows");
  if (!index.model().descriptor.pooled()) required.push_back("descriptor");
  const bool transformed = projected || augmented;
  // int8 without post-processing: its codes (CODES) and a checksum per row (ROWSUMS), so
  // that a searcher's load copies or maps the codes instead of checking and encoding 4x
  // their bytes of float32 rows.
  const bool with_codes = index.vector_codes() == VectorCodes::Int8 && !transformed;
  std::vector<std::uint64_t> row_sums;
  const bool with_signals = index.signals_count() > 0;
  const bool with_thumbs = std::any_of(index.entries().begin(), index.entries().end(),
                                       [](const IndexEntry& e) { return !e.signals.thumbnail.empty(); });
  const bool with_fine_thumbs = std::any_of(index.entries().begin(), index.entries().end(),
                                            [](const IndexEntry& e) { return !e.signals.fine_thumbnail.empty(); });
  const bool with_colour = index.colour_count() > 0;
  const unsigned sections = 4 + (with_signals ? 1 : 0) + (with_thumbs ? 1 : 0) + (with_fine_thumbs ? 1 : 0) + (with_colour ? 1 : 0) + (transformed ? 1 : 0) +
                            (projected ? 1 : 0) + (augmented ? 1 : 0) +
                            (expanded ? 1 : 0) + (with_tombstones ? 1 : 0) + (with_codes ? 2 : 0);
  detail::BinaryFileWriter out(path, kMagic, required.empty() ? 1 : kVersion, sections);

  nlohmann::json meta;
  meta["count"] = n;
  meta["dim"] = index.model_dim();
  meta["metric"] = "cosine";
  meta["dtype"] = "float32";
  meta["hnsw"] = {{"M", index.params().M},
                  {"ef_construction", index.params().ef_construction},
                  {"ef_search", index.params().ef_search}};
  meta["model"] = nlohmann::json::parse(index.model().to_json());
  // f32 indexes write no "vectors": their files stay as before compact codes existed.
  if (compact) meta["vectors"] = vector_codes_name(index.vector_codes());
  if (index.vector_codes_chosen()) meta["vectors_chosen"] = true;
  if (f16_rows) meta["rows"] = "f16";
  if (!required.empty()) meta["requires"] = required;
  const std::string meta_text = meta.dump();
  out.begin_section("META");
  out.write(meta_text.data(), meta_text.size());
  out.end_section();

  // The model's vectors; with post-processing (they are float32 then), the searched ones
  // follow in SRCHVECS.
  out.begin_section("VECS");
  if (transformed) {
    for (std::size_t id = 0; id < n; ++id) out.write(index.model_vector(id), sizeof(float) * index.model_dim());
  } else {
    detail::write_search_rows(index, out, with_codes ? &row_sums : nullptr);
  }
  out.end_section();

  out.begin_section("ENTRIES");
  for (const IndexEntry& e : index.entries()) {
    out.write_string(e.path);
    out.write_u64(e.size);
    out.write_i64(e.mtime_ns);
  }
  out.end_section();

  out.begin_section("GRAPH");
  detail::write_graph(index, out);
  out.end_section();

  // Optional, information only (a reader that skips it ranks the same): no "requires".
  if (with_signals) {
    out.begin_section("DUPSIGS");
    for (const IndexEntry& e : index.entries()) {
      out.write_u64(e.signals.present ? 1 : 0);
      out.write_u64(e.signals.present ? e.signals.content_hash : 0);
      for (const std::uint64_t h : e.signals.phash) out.write_u64(e.signals.present ? h : 0);
    }
    out.end_section();
  }
  // Optional, information only: dedup's crop thumbnails, a flag byte and 32x32 grey levels
  // per entry (zeros where absent).
  if (with_thumbs) {
    out.begin_section("DUPTHUMB");
    const std::vector<std::uint8_t> none(kCropThumbPixels, 0);
    for (const IndexEntry& e : index.entries()) {
      const bool has = e.signals.thumbnail.size() == static_cast<std::size_t>(kCropThumbPixels);
      const std::uint8_t flag = has ? 1 : 0;
      out.write(&flag, 1);
      out.write(has ? e.signals.thumbnail.data() : none.data(), kCropThumbPixels);
    }
    out.end_section();
  }
  // Optional, information only: the same at 64x64, for entries that also have the 32x32 one.
  if (with_fine_thumbs) {
    out.begin_section("DUPTHM64");
    const std::vector<std::uint8_t> none(kFineCropThumbPixels, 0);
    for (const IndexEntry& e : index.entries()) {
      const bool has = e.signals.fine_thumbnail.size() == static_cast<std::size_t>(kFineCropThumbPixels) &&
                       e.signals.thumbnail.size() == static_cast<std::size_t>(kCropThumbPixels);
      const std::uint8_t flag = has ? 1 : 0;
      out.write(&flag, 1);
      out.write(has ? e.signals.fine_thumbnail.data() : none.data(), kFineCropThumbPixels);
    }
    out.end_section();
  }
  if (transformed) {
    out.begin_section("SRCHVECS");
    out.write_u32(static_cast<std::uint32_t>(dim));
    detail::write_search_rows(index, out);
    out.end_section();
  }
  if (projected) {
    const Projection& p = index.projection();
    out.begin_section("PROJECT");
    out.write_u32(static_cast<std::uint32_t>(p.in_dim));
    out.write_u32(static_cast<std::uint32_t>(p.out_dim));
    out.write_string(p.description);
    if (p.uses_colour()) {  // only with "colour_projection" required
      out.write_u32(static_cast<std::uint32_t>(p.colour_bins));
      write_float(out, p.colour_weight);
    }
    if (p.has_hidden_layer()) out.write_u32(static_cast<std::uint32_t>(p.hidden));  // only with "projection_head"
    out.write(p.mean.data(), sizeof(float) * p.mean.size());
    out.write(p.matrix.data(), sizeof(float) * p.matrix.size());
    if (p.has_hidden_layer()) {
      out.write(p.hidden_bias.data(), sizeof(float) * p.hidden_bias.size());
      out.write(p.output_matrix.data(), sizeof(float) * p.output_matrix.size());
      out.write(p.output_bias.data(), sizeof(float) * p.output_bias.size());
    }
    out.end_section();
  }
  if (augmented) {
    const Augmentation& a = index.augmentation();
    out.begin_section("AUGMENT");
    out.write_u32(static_cast<std::uint32_t>(a.k));
    write_float(out, a.alpha);
    const auto& nb = index.augmentation_neighbours();
    out.write(nb.data(), sizeof(std::uint32_t) * nb.size());
    out.end_section();
  }
  if (expanded) {
    const QueryExpansion& q = index.query_expansion();
    out.begin_section("QUERYEXP");
    out.write_u32(static_cast<std::uint32_t>(q.k));
    write_float(out, q.alpha);
    out.end_section();
  }
  if (with_tombstones) {
    out.begin_section("TOMBSTNS");
    detail::write_tombstones(index, out);
    out.end_section();
  }
  // Colour histograms: u32 bins, then per entry a flag byte (0 = none) and, when 1, its
  // bins as floats. Information unless a colour projection requires it.
  if (with_colour) {
    out.begin_section("COLRHIST");
    out.write_u32(static_cast<std::uint32_t>(kColourBins));
    for (const IndexEntry& e : index.entries()) {
      const std::uint8_t flag = e.colour.empty() ? 0 : 1;
      out.write(&flag, 1);
      if (flag) out.write(e.colour.data(), sizeof(float) * e.colour.size());
    }
    out.end_section();
  }
  if (with_codes) {
    out.begin_section("CODES");
    detail::write_codes(index, out);
    out.end_section();
    out.begin_section("ROWSUMS");
    out.write(row_sums.data(), row_sums.size() * sizeof(std::uint64_t));
    out.end_section();
  }
  out.commit();
}

namespace {

struct IndexMeta {
  std::set<std::string> required;
  std::uint64_t count = 0;
  int dim = 0;
  HnswParams params;
  ModelInfo model;
  VectorCodes codes = VectorCodes::F32;
  bool codes_chosen = false;
  bool f16_rows = false;
};

IndexMeta read_meta(const detail::BinaryFileReader& in, const std::string& path) {
  IndexMeta m;
  detail::read_meta_section(in, path, [&](const nlohmann::json& meta) {
    m.count = static_cast<std::uint64_t>(detail::json_integer(meta, "count", 0, static_cast<std::int64_t>(kMaxEntries)));
    m.dim = static_cast<int>(detail::json_integer(meta, "dim", 1, 1 << 16));
    if (meta.at("metric").get<std::string>() != "cosine" || meta.at("dtype").get<std::string>() != "float32")
      in.fail("unsupported metric or dtype");
    const auto& h = meta.at("hnsw");
    HnswParams& params = m.params;
    params.M = static_cast<int>(detail::json_integer(h, "M", 0, 1 << 20));
    params.ef_construction = static_cast<int>(detail::json_integer(h, "ef_construction", 0, 1 << 20));
    params.ef_search = static_cast<int>(detail::json_integer(h, "ef_search", 0, 1 << 20));
    if (params.M < 2 || params.M > 256 || params.ef_construction < 1 || params.ef_construction > 1 << 20 ||
        params.ef_search < 1 || params.ef_search > 1 << 20)
      in.fail("bad HNSW parameters");
    m.model = ModelInfo::from_json(meta.at("model").dump());
    if (meta.contains("requires")) {
      for (const auto& feature : meta.at("requires")) {
        const std::string name = feature.get<std::string>();
        if (!known_features().count(name))
          throw_error(ErrorKind::Format, "{}: written by a newer imgsearch (needs feature '{}'); upgrade imgsearch",
                      path, name);
        m.required.insert(name);
      }
    }
    if (meta.contains("vectors")) {
      const auto& v = meta.at("vectors");
      const std::string name = v.is_string() ? v.get<std::string>() : v.dump();
      if (name != "f16" && name != "int8")
        throw_error(ErrorKind::Format, "{}: unknown vector encoding \"{}\" in META (known: f16, int8)", path, name);
      m.codes = parse_vector_codes(name);
    }
    if (meta.contains("vectors_chosen")) {
      const auto& c = meta.at("vectors_chosen");
      if (!c.is_boolean()) in.fail("\"vectors_chosen\" is not true or false");
      m.codes_chosen = c.get<bool>();
    }
    if ((m.codes != VectorCodes::F32) != (m.required.count("vector_codes") > 0))
      in.fail("META \"vectors\" and \"requires\" disagree");
    if (meta.contains("rows")) {
      const auto& r = meta.at("rows");
      if (!r.is_string() || r.get<std::string>() != "f16") in.fail("unknown \"rows\" (known: f16)");
      m.f16_rows = true;
    }
    if (m.f16_rows != (m.required.count("f16_rows") > 0)) in.fail("META \"rows\" and \"requires\" disagree");
    if (m.f16_rows && m.codes != VectorCodes::F16) in.fail("binary16 rows need \"vectors\": \"f16\"");
    if (m.model.descriptor.pooled() == (m.required.count("descriptor") > 0))
      in.fail("the model's descriptor and META \"requires\" disagree");
  });
  return m;
}

}  // namespace

ModelInfo load_index_model(const std::string& path) {
  detail::BinaryFileReader in(path, kMagic, "index", kVersion);
  return read_meta(in, path).model;
}

ImageIndex load_index(const std::string& path, const IndexLoadOptions& options) {
  detail::BinaryFileReader in(path, kMagic, "index", kVersion);
  auto [required, count, dim, params, model, codes, codes_chosen, f16_rows] = read_meta(in, path);
  // Bytes a searched row's value takes: VECS without post-processing, SRCHVECS, TOMBSTNS.
  const std::size_t row_value = f16_rows ? 2 : sizeof(float);

  // Post-processing sections (refinement.h), each validated before use.
  auto read_float = [](detail::ByteReader& r) {
    float v;
    std::memcpy(&v, r.bytes(sizeof v), sizeof v);
    return v;
  };
  auto read_expansion = [&](detail::ByteReader& r, int& k, float& alpha) {
    const std::uint32_t raw_k = r.u32();
    alpha = read_float(r);
    if (raw_k < 1 || raw_k > static_cast<std::uint32_t>(kMaxExpansionK)) r.fail("k " + std::to_string(raw_k) + " out of range");
    if (!std::isfinite(alpha) || alpha < 0 || alpha > kMaxAlpha) r.fail("alpha out of range");
    k = static_cast<int>(raw_k);
  };
  auto read_floats = [&](detail::ByteReader& r, std::size_t count, std::vector<float>& out, const char* what) {
    if (count > r.remaining() / sizeof(float)) r.fail(std::string(what) + " too short");
    out.resize(count);
    std::memcpy(out.data(), r.bytes(count * sizeof(float)), count * sizeof(float));
    for (float v : out)
      if (!std::isfinite(v)) r.fail(std::string(what) + " holds NaN or infinity");
  };
  Projection projection;
  if (in.has_section("PROJECT")) {
    detail::ByteReader r(in, "PROJECT");
    const std::uint32_t in_dim = r.u32(), out_dim = r.u32();
    projection.description = r.string(kMaxDescriptionBytes);
    {
      const auto d = nlohmann::json::parse(projection.description, nullptr, /*allow_exceptions=*/false);
      projection.rescore = d.is_object() && d.contains("method") && d["method"] == "pca";
    }
    if (required.count("colour_projection")) {
      const std::uint32_t bins = r.u32();
      projection.colour_weight = read_float(r);
      if (bins != static_cast<std::uint32_t>(kColourBins))
        r.fail("projection takes " + std::to_string(bins) + " colour bins, not " + std::to_string(kColourBins));
      if (!std::isfinite(projection.colour_weight) || projection.colour_weight <= 0 || projection.colour_weight > 100)
        r.fail("bad colour weight");
      projection.colour_bins = kColourBins;
    }
    std::uint32_t hidden = 0;
    if (required.count("projection_head")) {
      hidden = r.u32();
      if (hidden < 1 || hidden > static_cast<std::uint32_t>(kMaxHiddenUnits))
        r.fail("projection head has " + std::to_string(hidden) + " hidden units (1.." + std::to_string(kMaxHiddenUnits) +
               ")");
    }
    const std::uint32_t inputs = in_dim + static_cast<std::uint32_t>(projection.colour_bins);
    if (in_dim != static_cast<std::uint32_t>(dim) || out_dim < 1 || out_dim > (hidden ? hidden : inputs))
      r.fail("projection " + std::to_string(in_dim) + " -> " + std::to_string(out_dim) + " does not fit " +
             std::to_string(dim) + "-d vectors");
    projection.in_dim = static_cast<int>(in_dim);
    projection.out_dim = static_cast<int>(out_dim);
    projection.hidden = static_cast<int>(hidden);
    const std::uint32_t rows = hidden ? hidden : out_dim;
    read_floats(r, inputs, projection.mean, "projection mean");
    read_floats(r, std::size_t(inputs) * rows, projection.matrix, "projection matrix");
    if (hidden) {
      read_floats(r, hidden, projection.hidden_bias, "projection hidden bias");
      read_floats(r, std::size_t(out_dim) * hidden, projection.output_matrix, "projection output matrix");
      read_floats(r, out_dim, projection.output_bias, "projection output bias");
    }
    r.expect_end();
  }
  Augmentation augmentation;
  std::vector<std::uint32_t> neighbours;
  if (in.has_section("AUGMENT")) {
    detail::ByteReader r(in, "AUGMENT");
    read_expansion(r, augmentation.k, augmentation.alpha);
    const std::uint64_t k = static_cast<std::uint64_t>(augmentation.k);
    if (r.remaining() != count * k * 4) in.fail("corrupt section AUGMENT: not " + std::to_string(count) + " x " + std::to_string(k) + " neighbours");
    neighbours.resize(count * k);
    std::memcpy(neighbours.data(), r.bytes(neighbours.size() * 4), neighbours.size() * 4);
    for (std::uint64_t i = 0; i < count; ++i)
      for (std::uint64_t j = 0; j < k; ++j) {
        const std::uint32_t t = neighbours[i * k + j];
        if (t != kNoNeighbour && (t >= count || t == i))
          r.fail("entry " + std::to_string(i) + " has bad neighbour " + std::to_string(t));
      }
  }
  QueryExpansion expansion;
  if (in.has_section("QUERYEXP")) {
    detail::ByteReader r(in, "QUERYEXP");
    read_expansion(r, expansion.k, expansion.alpha);
    r.expect_end();
  }
  for (const char* part : {"colour_projection", "projection_head"})  // features that only qualify PROJECT
    if (required.count(part) && !projection.enabled())
      in.fail(std::string("META requires ") + part + " but there is no PROJECT section");
  const bool transformed = projection.enabled() || augmentation.enabled();
  const int search_dim = projection.enabled() ? projection.out_dim : dim;
  // Searching only (IndexLoadOptions::entries; not with a colour projection, whose
  // histograms live in the entries): the entry records are checked but stay in the file,
  // found again by block (entries_in_file.h).
  using Entries = IndexLoadOptions::Entries;
  const bool searches_read_file = (codes != VectorCodes::F32 && (!f16_rows || !options.search_rows_in_memory)) ||
                                  (transformed && !options.model_vectors_in_memory);
  const bool entries_stay_in_file =
      (options.entries == Entries::File || (options.entries == Entries::FileIfSearchesReadIt && searches_read_file)) &&
      !projection.uses_colour();
  // Such an int8 index, written with its codes (CODES) and a checksum per row (ROWSUMS),
  // takes its codes from CODES and leaves VECS unread: each row is checked when a search
  // reads it (ImageIndex::Impl::check_row), not all of them here.
  const bool rows_checked_when_read = entries_stay_in_file && codes == VectorCodes::Int8 && !transformed &&
                                      in.has_section("CODES") && in.has_section("ROWSUMS");
  // VECS: the model's vectors, float32 with post-processing, else the searched rows.
  const std::size_t vecs_value = transformed ? sizeof(float) : row_value;
  const auto [vecs, vecs_size] = in.unverified_section("VECS");
  if (vecs_size / vecs_value / dim != count || vecs_size != count * dim * vecs_value)
    in.fail("vector section size does not match " + std::to_string(count) + " x " + std::to_string(dim));
  // (Init-captures: clang 14 cannot capture a structured binding.)
  // The checksum and the scan in one pass, a chunk at a time (a block of first_non_finite).
  auto check_vecs = [&in, rows = vecs, n = count * dim, d = dim, value = vecs_value] {
    std::uint64_t bad = n;
    in.section("VECS", (std::size_t(1) << 18) * value, [&](const std::uint8_t* chunk, std::size_t bytes) {
      if (bad < n) return;
      const std::uint64_t values = bytes / value;
      if (const auto at = first_non_finite(chunk, values, value == 2); at < values)
        bad = static_cast<std::uint64_t>(chunk - rows) / value + at;
    });
    if (bad < n) in.fail("vector " + std::to_string(bad / d) + " holds NaN or infinity");
  };
  // VECS is most of the file. When nothing reads its values before the load returns (the
  // rows are only copied: float32 or binary16 rows; with post-processing, model vectors)
  // its checksum and scan run beside the rest of the load, which waits for them before it
  // returns. Codes made from the rows (int8; f16 files with float32 rows) need them first.
  std::future<void> vecs_checked;
  if (!rows_checked_when_read) {
    if (transformed || codes == VectorCodes::F32 || f16_rows)
      vecs_checked = std::async(std::launch::async, check_vecs);
    else
      check_vecs();
  }
  const std::uint8_t* search_vecs = vecs;
  if (transformed) {
    detail::ByteReader r(in, "SRCHVECS");
    if (r.u32() != static_cast<std::uint32_t>(search_dim)) r.fail("dimension does not match the projection");
    if (r.remaining() / row_value / search_dim != count || r.remaining() != count * search_dim * row_value)
      r.fail("size does not match " + std::to_string(count) + " x " + std::to_string(search_dim));
    search_vecs = r.bytes(r.remaining());
    if (const auto bad = first_non_finite(search_vecs, count * search_dim, f16_rows); bad < count * search_dim)
      r.fail("vector " + std::to_string(bad / search_dim) + " holds NaN or infinity");
  }

  // Removed nodes still in the graph: u64 count, then their search vectors.
  std::uint64_t tombstones = 0;
  const std::uint8_t* tombstone_vecs = nullptr;
  if (in.has_section("TOMBSTNS") != (required.count("tombstones") > 0))
    in.fail("the TOMBSTNS section and META \"requires\" disagree");
  if (in.has_section("TOMBSTNS")) {
    detail::ByteReader r(in, "TOMBSTNS");
    tombstones = r.u64();
    if (tombstones == 0 || tombstones > kMaxEntries - count || tombstones > r.remaining() / (row_value * search_dim) ||
        r.remaining() != tombstones * search_dim * row_value)
      r.fail("size does not match its count of " + std::to_string(tombstones) + " tombstones");
    tombstone_vecs = r.bytes(r.remaining());
    if (const auto bad = first_non_finite(tombstone_vecs, tombstones * search_dim, f16_rows); bad < tombstones * search_dim)
      r.fail("tombstone " + std::to_string(bad / search_dim) + " holds NaN or infinity");
  }

  ImageIndex index(search_dim, params, std::move(model), codes);
  index.vector_codes_chosen_ = codes_chosen;
  index.model_dim_ = dim;
  index.projection_ = std::move(projection);
  index.augmentation_ = augmentation;
  index.augmentation_neighbours_ = std::move(neighbours);
  index.query_expansion_ = expansion;
  if (transformed && options.model_vectors_in_memory) {
    index.model_vectors_.resize(count * dim);
    std::memcpy(index.model_vectors_.data(), vecs, count * dim * sizeof(float));
  } else if (transformed) {
    // Sections start 64-byte aligned (a hostile file's need not: it is copied then); the
    // rows are floats in place, their pages dropped once loaded (below).
    if (reinterpret_cast<std::uintptr_t>(vecs) % alignof(float) == 0) {
      index.model_file_ = in.mapping();
      index.mapped_model_vectors_ = reinterpret_cast<const float*>(vecs);
    } else {
      index.model_vectors_.resize(count * dim);
      std::memcpy(index.model_vectors_.data(), vecs, count * dim * sizeof(float));
    }
  }
  std::shared_ptr<detail::EntriesInFile> entries_in_file;
  if (entries_stay_in_file) {
    entries_in_file = std::make_shared<detail::EntriesInFile>();
    entries_in_file->path = path;
    entries_in_file->count = count;
  }
  {
    detail::ByteReader r(in, "ENTRIES");
    if (count > r.remaining() / 20) in.fail("entry section too short for " + std::to_string(count) + " entries");
    const auto [section, section_size] = in.unverified_section("ENTRIES");
    if (entries_in_file) {
      const std::uint64_t blocks = (count + detail::EntriesInFile::kBlock - 1) / detail::EntriesInFile::kBlock;
      entries_in_file->block_start.reserve(blocks);
      entries_in_file->block_hash.reserve(blocks);
      entries_in_file->section_offset = static_cast<std::uint64_t>(section - in.mapping()->data);
      entries_in_file->section_size = section_size;
    } else {
      index.entries_.reserve(count);
    }
    const std::size_t start = r.remaining();
    for (std::uint64_t i = 0; i < count; ++i) {
      if (entries_in_file) {
        // Checked, not kept: no string a record (10^6 allocations in a cold query).
        if (i % detail::EntriesInFile::kBlock == 0) entries_in_file->block_start.push_back(start - r.remaining());
        r.string_view(kMaxPathBytes);
        r.bytes(16);  // size and mtime
        continue;
      }
      IndexEntry e;
      e.path = r.string(kMaxPathBytes);
      e.size = r.u64();
      e.mtime_ns = r.i64();
      index.entries_.push_back(std::move(e));
    }
    r.expect_end();
    if (entries_in_file) {
      auto& blocks = entries_in_file->block_start;
      for (std::size_t b = 0; b < blocks.size(); ++b) {
        const std::uint64_t end = b + 1 < blocks.size() ? blocks[b + 1] : section_size;
        entries_in_file->block_hash.push_back(XXH3_64bits(section + blocks[b], end - blocks[b]));
      }
      entries_in_file->file = in.mapping();
      index.entries_in_file_ = std::move(entries_in_file);
      index.sections_left_out_ = true;
    }
  }

  // CODES: u32 code size, then each graph node's int8 code; ROWSUMS: each row's XXH3-64.
  const std::uint8_t* stored_codes = nullptr;
  const std::uint8_t* row_sums = nullptr;
  const std::uint64_t code_size = rows_checked_when_read ? detail::make_code_encoding(VectorCodes::Int8, dim)->code_size() : 0;
  if (rows_checked_when_read) {
    detail::ByteReader r(in, "CODES");
    const std::uint64_t stored_size = r.u32(), nodes = count + tombstones;
    if (stored_size != code_size)
      r.fail("code size " + std::to_string(stored_size) + " is not that of int8 codes of " + std::to_string(dim) + " values");
    if (r.remaining() / code_size != nodes || r.remaining() != nodes * code_size)
      r.fail("size does not match " + std::to_string(nodes) + " codes");
    stored_codes = r.bytes(r.remaining());
    // A code is its scale (float32, >= 0: max|x| / 127), then dim int8 values.
    std::atomic<std::uint64_t> bad{nodes};
    parallel_for(0, nodes, resolve_threads(0), [&](std::size_t i) {
      float scale;
      std::memcpy(&scale, stored_codes + i * code_size, sizeof scale);
      if (!(std::isfinite(scale) && scale >= 0)) {
        std::uint64_t seen = bad.load();
        while (i < seen && !bad.compare_exchange_weak(seen, i)) {
        }
      }
    }, /*min_parallel=*/1 << 14);
    if (bad < nodes) r.fail("code " + std::to_string(bad.load()) + " has a bad scale");
    detail::ByteReader sums(in, "ROWSUMS");
    if (sums.remaining() / 8 != count || sums.remaining() != count * 8)
      sums.fail("size does not match " + std::to_string(count) + " rows");
    row_sums = sums.bytes(sums.remaining());
  }

  detail::ByteReader graph(in, "GRAPH");
  if (stored_codes)
    detail::restore_graph(index, graph, stored_codes, tombstones, stored_codes + count * code_size, false,
                          !options.search_rows_in_memory, true);
  else
    detail::restore_graph(index, graph, search_vecs, tombstones, tombstone_vecs, f16_rows, !options.search_rows_in_memory);
  // Compact codes that read the file after the load: int8 (and f16 from float32 rows) its
  // float32 rows to rescore with; f16 its binary16 rows when the graph searches them there.
  if (codes != VectorCodes::F32 && (!f16_rows || !options.search_rows_in_memory))
    detail::attach_file_rows(index, in.mapping(), search_vecs);
  if (row_sums) detail::check_rows_when_read(index, row_sums, path);

  // Loaded for searching only there are no entries to hold signals: DUPSIGS is skipped
  // like the thumbnails (neither read nor checksummed).
  if (in.has_section("DUPSIGS") && index.changeable()) {
    detail::ByteReader r(in, "DUPSIGS");
    constexpr std::size_t kRecord = 8 * (2 + kOrientations);
    if (r.remaining() != count * kRecord)
      in.fail("DUPSIGS section holds " + std::to_string(r.remaining()) + " bytes, expected " +
              std::to_string(count * kRecord) + " for " + std::to_string(count) + " entries");
    for (std::uint64_t i = 0; i < count; ++i) {
      DuplicateSignals& s = index.entries_[i].signals;
      const std::uint64_t flags = r.u64();
      if (flags > 1) in.fail("DUPSIGS entry " + std::to_string(i) + " has bad flags " + std::to_string(flags));
      s.present = flags == 1;
      s.content_hash = r.u64();
      for (std::uint64_t& h : s.phash) h = r.u64();
      // Bit 0 (the DC term) is never set by the hash; absent entries are all zero.
      bool consistent = true;
      for (const std::uint64_t h : s.phash) consistent = consistent && (h & 1) == 0 && (s.present || h == 0);
      if (!consistent || (!s.present && s.content_hash != 0))
        in.fail("DUPSIGS entry " + std::to_string(i) + " is inconsistent");
    }
    r.expect_end();
  }
  if ((in.has_section("DUPTHUMB") || in.has_section("DUPTHM64")) && !options.duplicate_thumbnails)
    index.sections_left_out_ = true;
  // DUPTHUMB and DUPTHM64: a flag byte and `pixels` grey levels per entry (zeros where absent).
  const std::uint64_t entries = count;  // a lambda cannot capture a structured binding (C++17)
  auto read_thumbnails = [&](const char* tag, std::size_t pixels, std::vector<std::uint8_t> DuplicateSignals::*member) {
    detail::ByteReader r(in, tag);
    const std::string name = tag;
    const std::size_t record = 1 + pixels;
    if (r.remaining() != entries * record)
      in.fail(name + " section holds " + std::to_string(r.remaining()) + " bytes, expected " +
              std::to_string(entries * record) + " for " + std::to_string(entries) + " entries");
    for (std::uint64_t i = 0; i < entries; ++i) {
      const std::uint8_t flag = *r.bytes(1);
      const std::uint8_t* grey = r.bytes(pixels);
      DuplicateSignals& s = index.entries_[i].signals;
      if (flag > 1) in.fail(name + " entry " + std::to_string(i) + " has bad flag " + std::to_string(flag));
      if (flag == 1) {
        if (member == &DuplicateSignals::fine_thumbnail && s.thumbnail.empty())
          in.fail(name + " entry " + std::to_string(i) + " has no 32x32 thumbnail in DUPTHUMB");
        (s.*member).assign(grey, grey + pixels);
      } else if (std::any_of(grey, grey + pixels, [](std::uint8_t v) { return v != 0; })) {
        in.fail(name + " entry " + std::to_string(i) + " is inconsistent");
      }
    }
    r.expect_end();
    // Copied: the file's pages need not stay resident while the rest loads (5 KB an image).
    const auto [begin, bytes] = in.section(tag);
    in.mapping()->drop_pages(begin, bytes);
  };
  if (in.has_section("DUPTHUMB") && options.duplicate_thumbnails && index.changeable())
    read_thumbnails("DUPTHUMB", kCropThumbPixels, &DuplicateSignals::thumbnail);
  if (in.has_section("DUPTHM64") && options.duplicate_thumbnails && index.changeable())
    read_thumbnails("DUPTHM64", kFineCropThumbPixels, &DuplicateSignals::fine_thumbnail);
  if (in.has_section("COLRHIST")) {
    // Left out, the histograms are only counted (info reports how many images have one),
    // their flags checked on the way.
    const bool keep = (options.colour_histograms && index.changeable()) || index.projection().uses_colour();
    if (!keep) index.sections_left_out_ = true;
    detail::ByteReader r(in, "COLRHIST");
    if (r.u32() != static_cast<std::uint32_t>(kColourBins)) r.fail("not " + std::to_string(kColourBins) + " bins");
    for (std::uint64_t i = 0; i < count; ++i) {
      std::uint8_t flag;
      std::memcpy(&flag, r.bytes(1), 1);
      if (flag > 1) r.fail("entry " + std::to_string(i) + " has bad flag " + std::to_string(flag));
      if (!flag) continue;
      if (!keep) {
        r.bytes(kColourBins * sizeof(float));
        ++index.colours_left_in_file_;
        continue;
      }
      std::vector<float>& c = index.entries_[i].colour;
      read_floats(r, kColourBins, c, "colour histogram");
      for (float v : c)
        if (v < 0 || v > 1) r.fail("entry " + std::to_string(i) + " has a bin outside 0..1");
    }
    r.expect_end();
  }
  if (vecs_checked.valid()) vecs_checked.get();  // throws what the check found
  if (!index.changeable()) detail::free_change_locks(index);
  // The checksums read every page of the file. What stays in it (a compact index's exact
  // rows, model vectors or entries left in the file) is read again only for the images
  // asked about.
  if (index.mapped_model_vectors_ || codes != VectorCodes::F32 || !index.changeable()) in.mapping()->drop_pages();
  return index;
}

namespace detail {

IndexEntry read_entry(const EntriesInFile& entries, std::size_t id) {
  const std::size_t b = id / EntriesInFile::kBlock;
  const std::uint64_t begin = entries.block_start.at(b);
  const std::uint64_t end = b + 1 < entries.block_start.size() ? entries.block_start[b + 1] : entries.section_size;
  thread_local std::vector<std::uint8_t> block;
  block.resize(static_cast<std::size_t>(end - begin));
  IMGSEARCH_CHECK(entries.file->read_at(entries.section_offset + begin, block.data(), block.size()) &&
                      XXH3_64bits(block.data(), block.size()) == entries.block_hash[b],
                  ErrorKind::Io, "{}: the file changed since it was loaded (entry {} reads differently); load it again",
                  entries.path, id);
  // The block is the one the load checked: its records are well formed.
  const std::uint8_t* p = block.data();
  auto u32 = [&p] {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    p += sizeof v;
    return v;
  };
  IndexEntry e;
  for (std::size_t i = b * EntriesInFile::kBlock;; ++i) {
    const std::uint32_t length = u32();
    if (i == id) {
      e.path.assign(reinterpret_cast<const char*>(p), length);
      std::memcpy(&e.size, p + length, sizeof e.size);
      std::memcpy(&e.mtime_ns, p + length + 8, sizeof e.mtime_ns);
      return e;
    }
    p += length + 16;
  }
}

}  // namespace detail

}  // namespace imgsearch
