// RFC 4180 CSV, for the label and ground-truth files the evaluations read.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace imgsearch::detail {

// Fields separated by commas, optionally quoted; "" is a quote inside quotes; quoted
// fields may hold commas and newlines. Rows are returned with their first line number.
struct CsvRow {
  std::size_t line = 0;
  std::vector<std::string> fields;
};

// Throws Error(Format) naming `path` on an unterminated quote.
std::vector<CsvRow> parse_csv(const std::string& text, const std::string& path);

}  // namespace imgsearch::detail
