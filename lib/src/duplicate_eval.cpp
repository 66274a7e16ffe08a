#include "imgsearch/duplicate_eval.h"

#include "csv.h"
#include "imgsearch/error.h"
#include "imgsearch/file_scan.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

namespace imgsearch {

namespace {

std::uint64_t pair_key(std::uint32_t a, std::uint32_t b) {
  if (a > b) std::swap(a, b);
  return (std::uint64_t(a) << 32) | b;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  IMGSEARCH_CHECK(in, ErrorKind::Io, "{}: cannot open: {}", path, std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

PairFigures figures(const std::unordered_set<std::uint64_t>& predicted, const DuplicateTruth& truth) {
  PairFigures f;
  f.predicted = predicted.size();
  f.truth = truth.pairs.size();
  for (const std::uint64_t p : predicted) f.correct += truth.pairs.count(p);
  f.precision = f.predicted ? double(f.correct) / f.predicted : 1.0;
  f.recall = f.truth ? double(f.correct) / f.truth : 1.0;
  f.f1 = f.precision + f.recall > 0 ? 2 * f.precision * f.recall / (f.precision + f.recall) : 0;
  return f;
}

std::vector<EditRecall> per_edit(const std::unordered_set<std::uint64_t>& predicted, const DuplicateTruth& truth) {
  std::map<std::string, EditRecall> by_edit;
  for (const std::uint64_t p : truth.pairs) {
    const auto a = static_cast<std::uint32_t>(p >> 32), b = static_cast<std::uint32_t>(p & 0xFFFFFFFFu);
    const std::string& ea = truth.edit[a];
    const std::string& eb = truth.edit[b];
    std::string edit;
    if (ea == "original" && !eb.empty() && eb != "original") edit = eb;
    else if (eb == "original" && !ea.empty() && ea != "original") edit = ea;
    else continue;
    EditRecall& r = by_edit[edit];
    r.edit = edit;
    ++r.pairs;
    r.found += predicted.count(p);
  }
  std::vector<EditRecall> out;
  for (auto& [name, r] : by_edit) out.push_back(r);
  return out;
}

}  // namespace

DuplicateTruth load_duplicate_truth(const std::string& path, const ImageIndex& index) {
  std::unordered_map<std::string, std::uint32_t> id_of;
  for (std::uint32_t i = 0; i < index.size(); ++i) id_of.emplace(index.entry(i).path, i);
  DuplicateTruth truth;
  truth.edit.assign(index.size(), "");
  const std::string text = read_text(path);
  auto lookup = [&](const std::string& p, std::uint32_t& id) {
    ++truth.listed;
    auto it = id_of.find(absolute_path(p));
    if (it == id_of.end()) {
      truth.missing.push_back(p);
      return false;
    }
    id = it->second;
    return true;
  };
  auto add_group = [&](const std::vector<std::uint32_t>& ids) {
    for (std::size_t i = 0; i < ids.size(); ++i)
      for (std::size_t j = i + 1; j < ids.size(); ++j)
        if (ids[i] != ids[j]) truth.pairs.insert(pair_key(ids[i], ids[j]));
  };
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (text[first] == '[' || text[first] == '{')) {
    try {
      std::vector<nlohmann::json> groups;
      if (text[first] == '[') {
        for (const auto& g : nlohmann::json::parse(text)) groups.push_back(g);
      } else {
        std::istringstream lines(text);
        std::string line;
        while (std::getline(lines, line))
          if (line.find_first_not_of(" \t\r") != std::string::npos) groups.push_back(nlohmann::json::parse(line));
      }
      for (const auto& g : groups) {
        std::vector<std::uint32_t> ids;
        const auto& members = g.is_object() ? g.at("members") : g;
        for (const auto& m : members) {
          std::uint32_t id;
          if (lookup(m.is_object() ? m.at("path").get<std::string>() : m.get<std::string>(), id)) ids.push_back(id);
        }
        add_group(ids);
      }
    } catch (const nlohmann::json::exception& e) {
      throw_error(ErrorKind::Format, "{}: not a duplicate ground truth (JSON groups of paths expected): {}", path,
                  e.what());
    }
    return truth;
  }
  const std::vector<detail::CsvRow> rows = detail::parse_csv(text, path);
  IMGSEARCH_CHECK(!rows.empty(), ErrorKind::Format, "{}: empty file, expected a header row", path);
  const auto& header = rows[0].fields;
  auto column = [&](const std::string& name) -> int {
    for (std::size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int>(i);
    return -1;
  };
  const int group_col = column("group"), path_col = column("path"), edit_col = column("edit");
  const int a_col = column("path_a"), b_col = column("path_b");
  IMGSEARCH_CHECK((group_col >= 0 && path_col >= 0) || (a_col >= 0 && b_col >= 0), ErrorKind::Format,
                  "{}: expected columns group,path[,edit] or path_a,path_b in the header", path);
  std::map<std::string, std::vector<std::uint32_t>> groups;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto& f = rows[r].fields;
    IMGSEARCH_CHECK(f.size() == header.size(), ErrorKind::Format, "{}: line {}: {} fields, the header has {}", path,
                    rows[r].line, f.size(), header.size());
    if (group_col >= 0) {
      std::uint32_t id;
      if (!lookup(f[path_col], id)) continue;
      groups[f[group_col]].push_back(id);
      if (edit_col >= 0) truth.edit[id] = f[edit_col];
    } else {
      std::uint32_t a, b;
      const bool has_a = lookup(f[a_col], a), has_b = lookup(f[b_col], b);
      if (has_a && has_b && a != b) truth.pairs.insert(pair_key(a, b));
    }
  }
  for (const auto& [name, ids] : groups) add_group(ids);
  return truth;
}

DuplicateEvalReport evaluate_duplicates(const ImageIndex& index, const DuplicateTruth& truth, int neighbours,
                                        int threads, const std::vector<std::pair<std::string, DedupThresholds>>& extra) {
  DuplicateEvalReport report;
  report.images = index.size();
  report.truth_pairs = truth.pairs.size();
  auto add_method = [&](const std::string& name, bool grouped, const std::unordered_set<std::uint64_t>& predicted) {
    DuplicateMethodResult m;
    m.name = name;
    m.grouped = grouped;
    m.figures = figures(predicted, truth);
    m.per_edit = per_edit(predicted, truth);
    report.methods.push_back(std::move(m));
  };

  std::vector<std::pair<std::string, DedupThresholds>> settings;
  for (const char* preset : {"exact", "near", "similar"}) settings.emplace_back(std::string("preset ") + preset, dedup_preset(preset));
  settings.insert(settings.end(), extra.begin(), extra.end());
  for (const auto& [name, thresholds] : settings) {
    DedupOptions options;
    options.thresholds = thresholds;
    options.threads = threads;
    SignalCrowding crowding;
    const auto pairs = find_duplicate_pairs(index, options, &crowding);
    const auto groups = group_duplicates(index, pairs, options.thresholds, {}, &crowding);
    std::unordered_set<std::uint64_t> predicted;
    for (const DuplicateGroup& g : groups)
      for (std::size_t i = 0; i < g.members.size(); ++i)
        for (std::size_t j = i + 1; j < g.members.size(); ++j) predicted.insert(pair_key(g.members[i].id, g.members[j].id));
    add_method(name, true, predicted);
  }

  // Every pair within the loosest thresholds swept, once, with its hash distance (best
  // orientation and identity only) and cosine.
  struct Measured {
    std::uint64_t key;
    int distance, identity_distance;
    float cosine;
  };
  DedupThresholds loose;
  loose.content = false;
  loose.hash_distance = 15;
  loose.min_cosine = 0.80f;
  DedupOptions options;
  options.thresholds = loose;
  options.neighbours = neighbours;
  options.hash_neighbours = 1 << 20;  // every pair within the radius: the baselines are not truncated
  options.threads = threads;
  std::vector<Measured> measured;
  for (const CandidatePair& p : find_duplicate_pairs(index, options)) {
    const DuplicateSignals& sa = index.entry(p.a).signals;
    const DuplicateSignals& sb = index.entry(p.b).signals;
    const int identity = sa.present && sb.present ? hamming_distance(sa.phash[0], sb.phash[0]) : 64;
    measured.push_back({pair_key(p.a, p.b), p.match.hash_distance, identity, p.match.cosine});
  }
  auto select = [&](auto keep) {
    std::unordered_set<std::uint64_t> s;
    for (const Measured& m : measured)
      if (keep(m)) s.insert(m.key);
    return s;
  };
  add_method("cnn >= 0.90 (baseline)", false, select([](const Measured& m) { return m.cosine >= 0.90f; }));
  add_method("phash <= 10 (baseline)", false, select([](const Measured& m) { return m.identity_distance <= 10; }));
  add_method("phash <= 10, 8 orientations", false, select([](const Measured& m) { return m.distance <= 10; }));
  add_method("cnn >= 0.95", false, select([](const Measured& m) { return m.cosine >= 0.95f; }));
  {
    std::unordered_set<std::uint64_t> content;
    std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> by_hash;
    for (std::uint32_t i = 0; i < index.size(); ++i)
      if (index.entry(i).signals.present) by_hash[index.entry(i).signals.content_hash].push_back(i);
    for (const auto& [hash, ids] : by_hash)
      for (std::size_t i = 0; i < ids.size(); ++i)
        for (std::size_t j = i + 1; j < ids.size(); ++j) content.insert(pair_key(ids[i], ids[j]));
    add_method("content hash", false, content);
  }
  for (int d = 0; d <= 15; ++d)
    report.sweep.push_back({"phash", double(d), figures(select([&](const Measured& m) { return m.distance <= d; }), truth)});
  for (int c = 80; c <= 99; ++c)
    report.sweep.push_back(
        {"cnn", c / 100.0, figures(select([&](const Measured& m) { return m.cosine >= c / 100.0f - 1e-6f; }), truth)});
  return report;
}

}  // namespace imgsearch
