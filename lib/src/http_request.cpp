#include "imgsearch/http_request.h"

#include "imgsearch/error.h"
#include "model_info_json.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cctype>
#include <limits>

namespace imgsearch {

namespace {

constexpr std::size_t kMaxParams = 64;
constexpr std::size_t kMaxParts = 16;
constexpr std::size_t kMaxFeedbackIds = 1000;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

}  // namespace

std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) throw_error(ErrorKind::InvalidArgument, "malformed percent escape");
      const int h = hex_value(text[i + 1]), l = hex_value(text[i + 2]);
      if (h < 0 || l < 0) throw_error(ErrorKind::InvalidArgument, "malformed percent escape");
      out += static_cast<char>(h * 16 + l);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

QueryParams parse_query_string(std::string_view query) {
  QueryParams params;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    IMGSEARCH_CHECK(params.size() < kMaxParams, ErrorKind::InvalidArgument, "more than {} query parameters",
                    kMaxParams);
    const std::size_t eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq), true);
    std::string value = eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true);
    params.emplace_back(std::move(key), std::move(value));
  }
  return params;
}

std::optional<std::string> find_param(const QueryParams& params, std::string_view key) {
  for (const auto& [k, v] : params)
    if (k == key) return v;
  return std::nullopt;
}

std::int64_t parse_int(std::string_view text, std::int64_t min, std::int64_t max, std::string_view what) {
  auto bad = [&] {
    throw_error(ErrorKind::InvalidArgument, "{} must be an integer from {} to {}, got '{}'", what, min, max,
                text.substr(0, 32));
  };
  std::size_t i = 0;
  bool negative = false;
  if (!text.empty() && text[0] == '-' && min < 0) {
    negative = true;
    i = 1;
  }
  if (i >= text.size() || text.size() - i > 18) bad();
  std::int64_t value = 0;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') bad();
    value = value * 10 + (text[i] - '0');
  }
  if (negative) value = -value;
  if (value < min || value > max) bad();
  return value;
}

double parse_number(std::string_view text, double min, double max, std::string_view what) {
  auto bad = [&] {
    throw_error(ErrorKind::InvalidArgument, "{} must be a number from {} to {}, got '{}'", what, min, max,
                text.substr(0, 32));
  };
  if (text.empty() || text.size() > 24) bad();
  int points = 0, digits = 0;
  for (char c : text) {
    if (c == '.') ++points;
    else if (c >= '0' && c <= '9') ++digits;
    else bad();
  }
  if (points > 1 || digits == 0) bad();
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !(value >= min && value <= max)) bad();
  return value;
}

std::string header_parameter(std::string_view header_value, std::string_view name) {
  std::size_t semi = header_value.find(';');
  while (semi != std::string_view::npos) {
    std::string_view rest = header_value.substr(semi + 1);
    const std::size_t next = rest.find(';');
    std::string_view param = trim(rest.substr(0, next));
    const std::size_t eq = param.find('=');
    if (eq != std::string_view::npos && lower(trim(param.substr(0, eq))) == lower(name)) {
      std::string_view value = trim(param.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
      return std::string(value);
    }
    semi = next == std::string_view::npos ? std::string_view::npos : semi + 1 + next;
  }
  return {};
}

std::string media_type(std::string_view content_type) {
  return lower(trim(content_type.substr(0, content_type.find(';'))));
}

std::vector<MultipartPart> parse_multipart(std::string_view body, std::string_view boundary) {
  IMGSEARCH_CHECK(!boundary.empty() && boundary.size() <= 70, ErrorKind::InvalidArgument,
                  "multipart body without a valid boundary");
  const std::string delimiter = "--" + std::string(boundary);
  std::vector<MultipartPart> parts;
  // The preamble (before the first delimiter) is ignored, as RFC 2046 says.
  std::size_t pos = body.find(delimiter);
  IMGSEARCH_CHECK(pos != std::string_view::npos, ErrorKind::InvalidArgument, "multipart body without its boundary");
  pos += delimiter.size();
  const std::string separator = "\r\n" + delimiter;
  for (;;) {
    if (body.substr(pos, 2) == "--") return parts;  // closing delimiter
    // Transport padding, then CRLF.
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    IMGSEARCH_CHECK(body.substr(pos, 2) == "\r\n", ErrorKind::InvalidArgument, "malformed multipart delimiter line");
    pos += 2;
    IMGSEARCH_CHECK(parts.size() < kMaxParts, ErrorKind::InvalidArgument, "more than {} multipart parts", kMaxParts);
    MultipartPart part;
    bool has_disposition = false;
    // Headers, one a line, up to an empty line.
    for (int lines = 0;; ++lines) {
      IMGSEARCH_CHECK(lines < 16, ErrorKind::InvalidArgument, "too many headers in a multipart part");
      const std::size_t eol = body.find("\r\n", pos);
      IMGSEARCH_CHECK(eol != std::string_view::npos, ErrorKind::InvalidArgument, "multipart part headers never end");
      const std::string_view line = body.substr(pos, eol - pos);
      pos = eol + 2;
      if (line.empty()) break;
      const std::size_t colon = line.find(':');
      IMGSEARCH_CHECK(colon != std::string_view::npos, ErrorKind::InvalidArgument, "malformed multipart header");
      const std::string key = lower(trim(line.substr(0, colon)));
      const std::string_view value = trim(line.substr(colon + 1));
      if (key == "content-disposition") {
        IMGSEARCH_CHECK(starts_with_nocase(value, "form-data"), ErrorKind::InvalidArgument,
                        "multipart part is not form-data");
        has_disposition = true;
        part.name = header_parameter(value, "name");
        part.filename = header_parameter(value, "filename");
      } else if (key == "content-type") {
        part.content_type = media_type(value);
      }
    }
    IMGSEARCH_CHECK(has_disposition, ErrorKind::InvalidArgument, "multipart part without Content-Disposition");
    const std::size_t end = body.find(separator, pos);
    IMGSEARCH_CHECK(end != std::string_view::npos, ErrorKind::InvalidArgument,
                    "multipart body ends before its closing boundary");
    part.data = body.substr(pos, end - pos);
    parts.push_back(std::move(part));
    pos = end + separator.size();
  }
}

FeedbackRequest parse_feedback_json(std::string_view body) {
  nlohmann::json j;
  try {
    j = detail::parse_json_limited(reinterpret_cast<const std::uint8_t*>(body.data()), body.size(), 3);
  } catch (const std::exception&) {
    throw_error(ErrorKind::InvalidArgument, "the body is not valid JSON");
  }
  IMGSEARCH_CHECK(j.is_object(), ErrorKind::InvalidArgument, "the JSON body must be an object");
  FeedbackRequest out;
  for (const auto& [key, value] : j.items()) {
    if (key == "positive" || key == "negative") {
      IMGSEARCH_CHECK(value.is_array(), ErrorKind::InvalidArgument, "'{}' must be an array of image ids", key);
      IMGSEARCH_CHECK(value.size() <= kMaxFeedbackIds, ErrorKind::InvalidArgument, "'{}' holds more than {} ids", key,
                      kMaxFeedbackIds);
      auto& ids = key == "positive" ? out.positive : out.negative;
      for (const auto& id : value) {
        IMGSEARCH_CHECK(id.is_number_unsigned() || (id.is_number_integer() && id.get<std::int64_t>() >= 0),
                        ErrorKind::InvalidArgument, "'{}' must hold image ids (integers >= 0)", key);
        const std::uint64_t v = id.get<std::uint64_t>();
        IMGSEARCH_CHECK(v <= std::numeric_limits<std::uint32_t>::max(), ErrorKind::InvalidArgument,
                        "image id {} is out of range", v);
        ids.push_back(static_cast<std::uint32_t>(v));
      }
    } else if (key == "k") {
      IMGSEARCH_CHECK(value.is_number_integer(), ErrorKind::InvalidArgument, "'k' must be an integer");
      const std::int64_t k = value.get<std::int64_t>();
      IMGSEARCH_CHECK(k >= 1 && k <= 1000, ErrorKind::InvalidArgument, "'k' must be from 1 to 1000, got {}", k);
      out.k = static_cast<int>(k);
    } else {
      throw_error(ErrorKind::InvalidArgument, "unknown key '{}' (expected positive, negative, k)",
                  key.substr(0, 32));
    }
  }
  return out;
}

}  // namespace imgsearch
