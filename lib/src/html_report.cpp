#include "imgsearch/html_report.h"

#include "imgsearch/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <unistd.h>

namespace imgsearch {

namespace {

const char* kStyle = R"css(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1d232a;background:#fafbfc}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:4px}
.facts{font-size:13px;color:#4a5563;margin:0 0 12px}.facts span{margin-right:18px;white-space:nowrap}.facts b{color:#1d232a;font-weight:600}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{padding:3px 10px;border-bottom:1px solid #e3e7ec;text-align:right}
th{background:#eef1f4}td.l,th.l{text-align:left}
.query{display:flex;gap:16px;align-items:flex-start;margin:14px 0;padding:12px;background:#fff;border:1px solid #dfe3e8;border-radius:6px}
.qimg{flex:0 0 180px;font-size:12px;line-height:1.3}.qimg .cap{font-weight:600;font-size:14px;margin-top:2px}
.results{display:flex;flex-wrap:wrap;gap:10px}
.card{width:164px;font-size:11px;line-height:1.3}
.card img,.qimg img,.blank{display:block;max-width:160px;max-height:160px;border:2px solid #c9d0d8;border-radius:3px;background:#eee}
.blank{width:156px;height:100px;color:#888;font-size:11px;text-align:center;line-height:100px}
.card.rel img,.card.keep img{border-color:#2f9e44}.card.drop img{border-color:#e8590c}
.keep .tag{color:#2f9e44;font-weight:600}.drop .tag{color:#e8590c;font-weight:600}.card.nonrel img{border-color:#e03131}
.path{color:#4a5563;word-break:break-all}.score{font-weight:600}
figure{display:inline-block;margin:8px 24px 8px 0;vertical-align:top}figcaption{font-size:12px;color:#4a5563;max-width:560px}
svg text{font-family:inherit;font-size:11px;fill:#333}
.protocol{font-size:13px;max-width:900px;color:#333}
)css";

std::string fmt_fixed(double v, int digits = 3) { return fmt::format("{:.{}f}", v, digits); }

class ThumbnailCache {
 public:
  explicit ThumbnailCache(ThumbnailOptions options) : options_(options) {}
  // An <img> with an embedded thumbnail, or a labelled blank when the file cannot be read.
  std::string img(const std::string& path, const std::string& alt) {
    auto it = cache_.find(path);
    if (it == cache_.end()) {
      std::string uri;
      try {
        uri = jpeg_data_uri(thumbnail_file(path, options_));
      } catch (const Error&) {
        uri.clear();
      }
      it = cache_.emplace(path, std::move(uri)).first;
    }
    if (it->second.empty()) return "<div class=\"blank\">no preview</div>";
    return fmt::format("<img src=\"{}\" alt=\"{}\" title=\"{}\">", it->second, html_escape(alt), html_escape(path));
  }

 private:
  ThumbnailOptions options_;
  std::map<std::string, std::string> cache_;
};

std::string page_head(const std::string& title) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n"
      "<style>{}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
      html_escape(title), kStyle, html_escape(title));
}

std::string facts_html(const std::vector<std::pair<std::string, std::string>>& facts) {
  if (facts.empty()) return "";
  std::string out = "<p class=\"facts\">";
  for (const auto& [key, value] : facts)
    out += fmt::format("<span>{}: <b>{}</b></span> ", html_escape(key), html_escape(value));
  return out + "</p>\n";
}

// Histogram of relevant vs non-relevant scores, each normalised to its own total, over the
// occupied score range, as side-by-side bars.
std::string histogram_svg(const ScoreHistogram& h) {
  const std::size_t bins = h.relevant.size();
  std::uint64_t total_rel = 0, total_non = 0;
  std::size_t first = bins, last = 0;
  for (std::size_t i = 0; i < bins; ++i) {
    total_rel += h.relevant[i];
    total_non += h.not_relevant[i];
    if (h.relevant[i] + h.not_relevant[i] > 0) {
      first = std::min(first, i);
      last = std::max(last, i);
    }
  }
  const int W = 560, H = 300, L = 50, R = 12, T = 14, B = 40;
  std::string svg = fmt::format(
      "<svg class=\"figure\" id=\"histogram\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"score histogram\">\n",
      W, H, W, H);
  svg += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fff\"/>\n", W, H);
  if (first > last) return svg + "<text x=\"20\" y=\"40\">no scores</text>\n</svg>\n";
  const std::size_t span = last - first + 1;
  const std::size_t group = (span + 39) / 40;  // at most 40 bars
  const std::size_t bars = (span + group - 1) / group;
  std::vector<double> rel(bars, 0), non(bars, 0);
  for (std::size_t i = first; i <= last; ++i) {
    rel[(i - first) / group] += total_rel ? static_cast<double>(h.relevant[i]) / total_rel : 0;
    non[(i - first) / group] += total_non ? static_cast<double>(h.not_relevant[i]) / total_non : 0;
  }
  double ymax = 0;
  for (std::size_t b = 0; b < bars; ++b) ymax = std::max({ymax, rel[b], non[b]});
  ymax = std::max(ymax, 1e-9);
  ymax = std::ceil(ymax * 20) / 20;  // to a multiple of 5 %
  const double bin_width = (h.hi - h.lo) / static_cast<double>(bins);
  const double x0 = h.lo + static_cast<double>(first) * bin_width;
  const double x1 = h.lo + static_cast<double>(first + bars * group) * bin_width;
  const double pw = W - L - R, ph = H - T - B;
  auto X = [&](double score) { return L + (score - x0) / (x1 - x0) * pw; };
  auto Y = [&](double frac) { return T + ph - frac / ymax * ph; };
  // Axes and grid.
  for (int t = 0; t <= 4; ++t) {
    const double f = ymax * t / 4;
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#e3e7ec\"/>"
                       "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.0f}%</text>\n",
                       L, Y(f), W - R, Y(f), L - 4, Y(f) + 4, f * 100);
  }
  const double bar = pw / static_cast<double>(bars);
  for (std::size_t b = 0; b < bars; ++b) {
    const double x = L + bar * static_cast<double>(b);
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#2f9e44\"/>", x + 1,
                       Y(rel[b]), bar / 2 - 1, T + ph - Y(rel[b]));
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#e03131\"/>\n",
                       x + bar / 2, Y(non[b]), bar / 2 - 1, T + ph - Y(non[b]));
  }
  const int ticks = 5;
  for (int t = 0; t <= ticks; ++t) {
    const double s = x0 + (x1 - x0) * t / ticks;
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#333\"/>"
                       "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.2f}</text>\n",
                       X(s), T + ph, X(s), T + ph + 4, X(s), T + ph + 16, s);
  }
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", L, T + ph, W - R, T + ph);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">cosine similarity</text>\n", L + pw / 2, H - 6);
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#2f9e44\"/><text x=\"{}\" y=\"{}\">"
                     "relevant ({})</text>\n",
                     L + 10, T + 4, L + 24, T + 13, total_rel);
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#e03131\"/><text x=\"{}\" y=\"{}\">"
                     "not relevant ({})</text>\n",
                     L + 10, T + 20, L + 24, T + 29, total_non);
  return svg + "</svg>\n";
}

std::string pr_svg(const std::vector<double>& levels, const std::vector<double>& hnsw, const std::vector<double>& exact) {
  const int W = 420, H = 300, L = 50, R = 12, T = 14, B = 40;
  const double pw = W - L - R, ph = H - T - B;
  auto X = [&](double r) { return L + r * pw; };
  auto Y = [&](double p) { return T + ph - p * ph; };
  std::string svg = fmt::format(
      "<svg class=\"figure\" id=\"pr-curve\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"precision-recall curve\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fff\"/>\n",
      W, H, W, H, W, H);
  for (int t = 0; t <= 5; ++t) {
    const double v = t / 5.0;
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#e3e7ec\"/>"
                       "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.1f}</text>\n",
                       L, Y(v), W - R, Y(v), L - 4, Y(v) + 4, v);
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#333\"/>"
                       "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.1f}</text>\n",
                       X(v), T + ph, X(v), T + ph + 4, X(v), T + ph + 16, v);
  }
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>"
                     "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n",
                     L, T, L, T + ph, L, T + ph, W - R, T + ph);
  auto line = [&](const std::vector<double>& p, const char* colour, const char* dash) {
    std::string pts;
    for (std::size_t i = 0; i < levels.size() && i < p.size(); ++i)
      pts += fmt::format("{:.1f},{:.1f} ", X(levels[i]), Y(p[i]));
    std::string out = fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", pts,
                                  colour, dash);
    for (std::size_t i = 0; i < levels.size() && i < p.size(); ++i)
      out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>", X(levels[i]), Y(p[i]), colour);
    return out + "\n";
  };
  svg += line(hnsw, "#1c7ed6", "");
  svg += line(exact, "#868e96", " stroke-dasharray=\"5 3\"");  // on top: visible where they coincide
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">recall</text>\n", L + pw / 2, H - 6);
  svg += fmt::format("<text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">precision</text>\n",
                     T + ph / 2, T + ph / 2);
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#1c7ed6\" stroke-width=\"2\"/>"
                     "<text x=\"{}\" y=\"{}\">HNSW</text>\n",
                     W - R - 110, T + ph - 40, W - R - 90, T + ph - 40, W - R - 84, T + ph - 36);
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#868e96\" stroke-width=\"2\" "
                     "stroke-dasharray=\"5 3\"/><text x=\"{}\" y=\"{}\">exact</text>\n",
                     W - R - 110, T + ph - 22, W - R - 90, T + ph - 22, W - R - 84, T + ph - 18);
  return svg + "</svg>\n";
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string query_page_html(const std::vector<QueryResults>& queries, const PageOptions& options) {
  ThumbnailCache thumbs(options.thumbnails);
  std::string html = page_head(options.title) + facts_html(options.facts);
  for (const QueryResults& q : queries) {
    html += "<section class=\"query\">\n<div class=\"qimg\">";
    html += thumbs.img(q.query, "query");
    html += fmt::format("<div class=\"cap\">query</div><div class=\"path\">{}</div></div>\n<div class=\"results\">\n",
                        html_escape(q.query));
    for (const ResultRow& r : q.results) {
      html += "<div class=\"card\">" + thumbs.img(r.path, fmt::format("rank {}", r.rank));
      html += fmt::format("<div><span class=\"rank\">#{}</span> <span class=\"score\">{:.4f}</span></div>"
                          "<div class=\"path\">{}</div></div>\n",
                          r.rank, r.score, html_escape(r.path));
    }
    html += "</div>\n</section>\n";
  }
  return html + "</body>\n</html>\n";
}

std::string duplicates_page_html(const std::vector<DuplicateGroupRows>& groups, const PageOptions& options) {
  ThumbnailCache thumbs(options.thumbnails);
  std::string html = page_head(options.title) + facts_html(options.facts);
  if (groups.empty()) html += "<p>No duplicates found.</p>\n";
  int number = 0;
  for (const DuplicateGroupRows& g : groups) {
    html += fmt::format("<section class=\"query\">\n<div class=\"qimg\"><div class=\"cap\">group {}</div>"
                        "<div>{} images</div></div>\n<div class=\"results\">\n",
                        ++number, g.size());
    for (const DuplicateMemberRow& m : g) {
      html += fmt::format("<div class=\"card {}\">", m.keep ? "keep" : "drop") + thumbs.img(m.path, m.keep ? "keep" : "duplicate");
      html += fmt::format("<div><span class=\"tag\">{}</span> <span class=\"score\">{:.3f}</span> {}</div>"
                          "<div class=\"path\">{}</div></div>\n",
                          m.keep ? "keep" : "duplicate", m.score, html_escape(m.signal), html_escape(m.path));
    }
    html += "</div>\n</section>\n";
  }
  return html + "</body>\n</html>\n";
}

namespace {

// Precision (0.5..1, where duplicate detection lives) against recall (0..1).
std::string duplicate_pr_svg(const DuplicateEvalReport& report) {
  const int W = 620, H = 340, L = 50, R = 230, T = 14, B = 40;
  const double pw = W - L - R, ph = H - T - B, pmin = 0.5;
  auto X = [&](double r) { return L + r * pw; };
  auto Y = [&](double p) { return T + ph - (std::max(p, pmin) - pmin) / (1 - pmin) * ph; };
  std::string svg = fmt::format(
      "<svg class=\"figure\" id=\"dup-pr\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"pair precision against recall\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fff\"/>\n",
      W, H, W, H, W, H);
  for (int t = 0; t <= 5; ++t) {
    const double r = t / 5.0, p = pmin + t * (1 - pmin) / 5;
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e3e7ec\"/>"
                       "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.1f}</text>\n",
                       L, Y(p), L + pw, Y(p), L - 4, Y(p) + 4, p);
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#333\"/>"
                       "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.1f}</text>\n",
                       X(r), T + ph, X(r), T + ph + 4, X(r), T + ph + 16, r);
  }
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>"
                     "<line x1=\"{}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#333\"/>\n",
                     L, T, L, T + ph, L, T + ph, L + pw, T + ph);
  int legend = 0;
  auto key = [&](const std::string& colour, const std::string& label, bool dot) {
    const double y = T + 10 + 18 * legend++;
    svg += dot ? fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/>", L + pw + 20, y, colour)
               : fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"/>",
                             L + pw + 12, y, L + pw + 28, y, colour);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", L + pw + 34, y + 4, html_escape(label));
  };
  const std::pair<const char*, const char*> curves[] = {{"phash", "#1c7ed6"}, {"cnn", "#e8590c"}};
  for (const auto& [signal, colour] : curves) {
    std::string pts;
    for (const SweepPoint& p : report.sweep)
      if (p.signal == signal) pts += fmt::format("{:.1f},{:.1f} ", X(p.figures.recall), Y(p.figures.precision));
    svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", pts, colour);
    key(colour, std::string(signal) + (std::string(signal) == "cnn" ? " cosine sweep" : " Hamming sweep"), false);
  }
  const char* dots[] = {"#2f9e44", "#7048e8", "#c2255c", "#495057", "#f08c00", "#0c8599", "#5c940d", "#862e9c"};
  std::size_t d = 0;
  for (const DuplicateMethodResult& m : report.methods) {
    const char* colour = dots[d++ % (sizeof dots / sizeof *dots)];
    svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"><title>{}</title></circle>\n",
                       X(m.figures.recall), Y(m.figures.precision), colour, html_escape(m.name));
    key(colour, m.name, true);
  }
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">pair recall</text>\n", L + pw / 2, H - 6);
  svg += fmt::format("<text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">pair precision</text>\n",
                     T + ph / 2, T + ph / 2);
  return svg + "</svg>\n";
}

}  // namespace

std::string duplicate_eval_page_html(const DuplicateEvalReport& report, const PageOptions& options) {
  std::string html = page_head(options.title) + facts_html(options.facts);
  html += "<h2>Pair precision and recall</h2>\n<table><tr><th class=\"l\">method</th><th>predicted pairs</th>"
          "<th>correct</th><th>precision</th><th>recall</th><th>F1</th><th>recall, original-copy pairs</th></tr>\n";
  for (const DuplicateMethodResult& m : report.methods) {
    std::size_t pairs = 0, found = 0;
    for (const EditRecall& e : m.per_edit) {
      pairs += e.pairs;
      found += e.found;
    }
    html += fmt::format("<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                        html_escape(m.name), m.figures.predicted, m.figures.correct, fmt_fixed(m.figures.precision, 4),
                        fmt_fixed(m.figures.recall, 4), fmt_fixed(m.figures.f1, 4),
                        pairs ? fmt_fixed(double(found) / pairs, 4) : std::string("-"));
  }
  html += "</table>\n<figure>" + duplicate_pr_svg(report) +
          "<figcaption>Each signal alone over its threshold sweep (Hamming 0-15, cosine 0.80-0.99), and every method "
          "as a point. Presets are measured on their groups.</figcaption></figure>\n";
  if (!report.methods.empty() && !report.methods.front().per_edit.empty()) {
    html += "<h2>Recall per edit type (%)</h2>\n<table><tr><th class=\"l\">edit</th><th>pairs</th>";
    for (const DuplicateMethodResult& m : report.methods) html += "<th>" + html_escape(m.name) + "</th>";
    html += "</tr>\n";
    const auto& edits = report.methods.front().per_edit;
    for (std::size_t e = 0; e < edits.size(); ++e) {
      html += fmt::format("<tr><td class=\"l\">{}</td><td>{}</td>", html_escape(edits[e].edit), edits[e].pairs);
      for (const DuplicateMethodResult& m : report.methods)
        html += "<td>" + fmt_fixed(m.per_edit[e].pairs ? 100.0 * m.per_edit[e].found / m.per_edit[e].pairs : 0, 1) + "</td>";
      html += "</tr>\n";
    }
    html += "</table>\n";
  }
  html += "<h2>Threshold sweep</h2>\n<table><tr><th class=\"l\">signal</th><th>threshold</th><th>predicted</th>"
          "<th>precision</th><th>recall</th><th>F1</th></tr>\n";
  for (const SweepPoint& p : report.sweep)
    html += fmt::format("<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                        p.signal, p.signal == "cnn" ? "&ge; " + fmt_fixed(p.threshold, 2) : "&le; " + fmt_fixed(p.threshold, 0),
                        p.figures.predicted, fmt_fixed(p.figures.precision, 4), fmt_fixed(p.figures.recall, 4),
                        fmt_fixed(p.figures.f1, 4));
  return html + "</table>\n</body>\n</html>\n";
}

std::string eval_page_html(const EvalReport& report, const ImageIndex& index, const Labels& labels,
                           const PageOptions& options) {
  ThumbnailCache thumbs(options.thumbnails);
  std::string html = page_head(options.title) + facts_html(options.facts);

  html += "<h2>Figures</h2>\n";
  html += fmt::format(
      "<p class=\"protocol\">{} queries ({} images; {} without a label, not queries; {} skipped because no other "
      "image shares their label; {} labels). Each query is left out of its own ranking; relevant = same label. "
      "HNSW ranking: the index's top {} (ef {}), then the rest in exact order. mAP and R-precision are over the "
      "full ranking.</p>\n",
      report.queries, report.images, report.unlabelled, report.skipped, report.labels, report.depth, report.ef);
  html += "<table id=\"figures\"><tr><th class=\"l\">metric</th><th>HNSW</th><th>exact</th></tr>\n";
  for (int k : report.ks)
    html += fmt::format("<tr><td class=\"l\">P@{}</td><td>{}</td><td>{}</td></tr>\n", k,
                        fmt_fixed(report.hnsw.precision_at.at(k)), fmt_fixed(report.exact.precision_at.at(k)));
  html += fmt::format("<tr><td class=\"l\">mAP</td><td>{}</td><td>{}</td></tr>\n", fmt_fixed(report.hnsw.map),
                      fmt_fixed(report.exact.map));
  html += fmt::format("<tr><td class=\"l\">R-precision</td><td>{}</td><td>{}</td></tr>\n",
                      fmt_fixed(report.hnsw.r_precision), fmt_fixed(report.exact.r_precision));
  html += fmt::format("<tr><td class=\"l\">ANN recall@10</td><td>{}</td><td></td></tr>\n",
                      fmt_fixed(report.ann_recall_at_10));
  html += fmt::format("<tr><td class=\"l\">search latency p50 / p95 / p99</td><td colspan=\"2\">{:.3f} / {:.3f} / "
                      "{:.3f} ms</td></tr>\n</table>\n",
                      report.latency.p50, report.latency.p95, report.latency.p99);

  html += "<h2>Scores and precision-recall</h2>\n";
  std::uint64_t rel = 0, non = 0;
  for (auto c : report.histogram.relevant) rel += c;
  for (auto c : report.histogram.not_relevant) non += c;
  html += "<figure>" + histogram_svg(report.histogram) +
          fmt::format("<figcaption>Cosine similarity of the results in each query's exact top {}: relevant ({}) "
                      "against not relevant ({}), each as a share of its own total.</figcaption></figure>\n",
                      report.histogram.depth, rel, non);
  html += "<figure>" + pr_svg(report.recall_levels, report.hnsw.pr_curve, report.exact.pr_curve) +
          "<figcaption>Interpolated precision at recall 0, 0.05, ..., 1, mean over the queries.</figcaption></figure>\n";

  html += fmt::format("<h2>Per label, worst first ({})</h2>\n", report.per_label.size());
  html += "<table id=\"per-label\"><tr><th class=\"l\">label</th><th>images</th><th>queries</th><th>P@10</th>"
          "<th>AP</th></tr>\n";
  for (const LabelFigures& f : report.per_label)
    html += fmt::format("<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                        html_escape(f.label), f.images, f.queries, fmt_fixed(f.precision_at_10), fmt_fixed(f.ap));
  html += "</table>\n";

  html += fmt::format("<h2>Worst queries ({})</h2>\n", report.worst.size());
  html += "<p class=\"protocol\">Lowest AP first; HNSW results, green = same label, red = another label.</p>\n";
  for (const QueryFigures& q : report.worst) {
    const std::string& path = index.entry(q.id).path;
    html += "<section class=\"query worst\">\n<div class=\"qimg\">" + thumbs.img(path, "query");
    html += fmt::format("<div class=\"cap\">{}</div><div>AP {} &middot; P@10 {} &middot; {} relevant</div>"
                        "<div class=\"path\">{}</div></div>\n<div class=\"results\">\n",
                        html_escape(labels[q.id]), fmt_fixed(q.ap), fmt_fixed(q.precision_at_10), q.relevant,
                        html_escape(path));
    for (std::size_t r = 0; r < q.top.size() && r < 10; ++r) {
      const SearchHit& hit = q.top[r];
      const std::string& rpath = index.entry(hit.id).path;
      const bool same = labels[hit.id] == labels[q.id];
      html += fmt::format("<div class=\"card {}\">", same ? "rel" : "nonrel") +
              thumbs.img(rpath, fmt::format("rank {}", r + 1));
      html += fmt::format("<div><span class=\"rank\">#{}</span> <span class=\"score\">{:.4f}</span> {}</div>"
                          "<div class=\"path\">{}</div></div>\n",
                          r + 1, hit.score, html_escape(labels[hit.id].empty() ? "(no label)" : labels[hit.id]),
                          html_escape(rpath));
    }
    html += "</div>\n</section>\n";
  }
  return html + "</body>\n</html>\n";
}

void write_html_file(const std::string& path, const std::string& html) {
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  IMGSEARCH_CHECK(f, ErrorKind::Io, "{}: cannot create: {}", path, std::strerror(errno));
  const bool written = std::fwrite(html.data(), 1, html.size(), f) == html.size();
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    throw_error(ErrorKind::Io, "{}: cannot write: {}", path, std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw_error(ErrorKind::Io, "{}: cannot write: {}", path, std::strerror(err));
  }
}

}  // namespace imgsearch
