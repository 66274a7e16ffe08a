// The parts of an HTTP request that `serve` parses itself (no sockets, no LibTorch):
// the query string, a multipart/form-data body and the JSON body of a refine request.
// Everything here takes untrusted bytes and throws Error(InvalidArgument) with a short
// reason on bad input; tests/fuzz/fuzz_http_request.cpp fuzzes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imgsearch {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// "%41+b" -> "A b" (plus as space only when `plus_is_space`). Malformed escapes throw.
std::string percent_decode(std::string_view text, bool plus_is_space);

// "a=1&b=x%20y" -> {{"a","1"},{"b","x y"}}; keys and values percent-decoded. At most
// 64 parameters.
QueryParams parse_query_string(std::string_view query);

// The first value for `key`, if any.
std::optional<std::string> find_param(const QueryParams& params, std::string_view key);

// A decimal integer in [min, max], nothing else (no sign unless min < 0, no spaces, no
// "0x", no trailing text). Throws Error(InvalidArgument) naming `what`.
std::int64_t parse_int(std::string_view text, std::int64_t min, std::int64_t max, std::string_view what);

// A plain decimal number ("3", "0.5") in [min, max]: digits and at most one point, no sign,
// exponent, "inf" or "nan". Throws Error(InvalidArgument) naming `what`.
double parse_number(std::string_view text, double min, double max, std::string_view what);

// The value of a header parameter: boundary from "multipart/form-data; boundary=xyz"
// (quoted or not). Empty when absent.
std::string header_parameter(std::string_view header_value, std::string_view name);
// The media type of a Content-Type value, lower-cased, without parameters.
std::string media_type(std::string_view content_type);

struct MultipartPart {
  std::string name;          // form field name
  std::string filename;      // may be empty
  std::string content_type;  // may be empty
  std::string_view data;     // points into the body
};
// Parses a multipart/form-data body (RFC 7578) with the given boundary. At most 16 parts.
std::vector<MultipartPart> parse_multipart(std::string_view body, std::string_view boundary);

// The JSON body of a refine request: {"positive": [ids], "negative": [ids], "k": 9}.
struct FeedbackRequest {
  std::vector<std::uint32_t> positive;
  std::vector<std::uint32_t> negative;
  std::optional<int> k;
};
// Throws Error(InvalidArgument) on anything else (unknown keys, non-integer ids, more than
// 1000 ids, nesting). Ids are not checked against an index here.
FeedbackRequest parse_feedback_json(std::string_view body);

}  // namespace imgsearch
