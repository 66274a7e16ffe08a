// libFuzzer harness: the request parsing of `imgsearch serve` (lib/src/http_request.cpp):
// query strings, multipart/form-data bodies and the refine request's JSON, on arbitrary
// bytes. Input layout: the first line is the multipart boundary (and is also parsed as a
// query string and a Content-Type parameter list); the rest is the body, parsed all
// three ways.
#include <imgsearch/error.h>
#include <imgsearch/http_request.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void expect_invalid_argument(const imgsearch::Error& e) {
  if (e.kind() != imgsearch::ErrorKind::InvalidArgument || std::string_view(e.what()).empty()) {
    std::fprintf(stderr, "unexpected error: %s\n", e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t newline = input.find('\n');
  const std::string_view first = input.substr(0, newline);
  const std::string_view body = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

  try {
    const imgsearch::QueryParams params = imgsearch::parse_query_string(first);
    if (params.size() > 64) std::abort();
    if (auto k = imgsearch::find_param(params, "k")) {
      try {
        const auto v = imgsearch::parse_int(*k, 1, 1000, "k");
        if (v < 1 || v > 1000) std::abort();
      } catch (const imgsearch::Error& e) {
        expect_invalid_argument(e);
      }
    }
    if (auto alpha = imgsearch::find_param(params, "qe_alpha")) {
      try {
        const double v = imgsearch::parse_number(*alpha, 0, 100, "qe_alpha");
        if (!(v >= 0 && v <= 100)) std::abort();
      } catch (const imgsearch::Error& e) {
        expect_invalid_argument(e);
      }
    }
  } catch (const imgsearch::Error& e) {
    expect_invalid_argument(e);
  }

  const std::string boundary = imgsearch::header_parameter(std::string("multipart/form-data; ") + std::string(first),
                                                           "boundary");
  (void)imgsearch::media_type(first);
  try {
    const auto parts = imgsearch::parse_multipart(body, boundary.empty() ? std::string(first) : boundary);
    if (parts.size() > 16) std::abort();
    for (const auto& part : parts) {
      // Every part's bytes lie inside the body.
      if (part.data.data() < body.data() || part.data.data() + part.data.size() > body.data() + body.size())
        std::abort();
    }
  } catch (const imgsearch::Error& e) {
    expect_invalid_argument(e);
  }

  try {
    const auto feedback = imgsearch::parse_feedback_json(body);
    if (feedback.positive.size() > 1000 || feedback.negative.size() > 1000) std::abort();
    if (feedback.k && (*feedback.k < 1 || *feedback.k > 1000)) std::abort();
  } catch (const imgsearch::Error& e) {
    expect_invalid_argument(e);
  }
  return 0;
}
