// The request handling of `imgsearch serve`, without sockets: an HTTP request as plain
// data in, a response as plain data out. The HTTP server (apps/imgsearch/cmd_serve.cpp)
// only moves bytes between the network and handle(); tests call handle() directly.
// Endpoints, statuses and JSON keys: docs/serve.md.
#pragma once

#include "imgsearch/image.h"
#include "imgsearch/index.h"
#include "imgsearch/model.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imgsearch {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as sent: "/api/search?id=3&k=9"
  std::vector<std::pair<std::string, std::string>> headers;  // names in any case
  std::string body;
  std::string header(std::string_view name) const;  // "" when absent; case-insensitive
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string header(std::string_view name) const;
};

struct ServeOptions {
  std::string index_path;
  std::string model_path;  // the model file to load (the caller resolves defaults)
  ModelOptions model;      // threads = inference threads (0 = all cores)
  DecodeOptions decode;    // max_pixels: larger uploads get 413
  std::string token;       // when set, /api/* and /metrics need "Authorization: Bearer TOKEN"
  std::string cors_origin; // when set, /api/* answers CORS requests from this origin
  std::size_t max_upload_bytes = 20u << 20;
  int default_k = 9;
  // Query expansion for every search unless a request says otherwise (qe=, qe_alpha=):
  // -1 = the index's stored default (refinement.h), as `query` does.
  int qe_k = -1;
  float qe_alpha = -1;
  int max_k = 1000;
  // Batching of the CNN passes of concurrent uploads: at most max_batch images per pass;
  // while other uploads are still being decoded, the inference thread waits at most
  // batch_wait for them to join.
  int max_batch = 8;
  std::chrono::microseconds batch_wait{3000};
  // Uploads waiting for the CNN beyond this are refused with 503 (Retry-After: 1).
  std::size_t max_queued_uploads = 64;
  int thumbnail_side = 200;
  std::size_t thumbnail_cache_bytes = 64u << 20;
};

class SearchService {
 public:
  // Loads the index and its model (load_model_for_index). Throws Error.
  explicit SearchService(ServeOptions options);
  ~SearchService();  // stops the inference thread; pending uploads get 503
  SearchService(const SearchService&) = delete;
  SearchService& operator=(const SearchService&) = delete;

  // Thread-safe; never throws: every failure is a JSON {"error": "..."} response.
  HttpResponse handle(const HttpRequest& request);

  // A JSON error response for failures the HTTP layer detects before handle() (a body over
  // the payload limit, an unparsable request line), counted in /metrics as "transport".
  HttpResponse transport_error(int status, const std::string& message);

  // Looks at the index file (inode, size, mtime); when it changed, loads it and swaps it
  // in atomically (requests in flight finish on the old one). A file that fails to load,
  // or was built with another model, is logged and leaves the old index serving; the
  // failure shows in /healthz and /metrics until a good file replaces it.
  // Returns true when a new index was swapped in. Thread-safe.
  bool reload_if_changed();
  // Runs reload_if_changed() every `interval` on a background thread (stopped by the
  // destructor or stop_watching()).
  void watch_index(std::chrono::milliseconds interval);
  void stop_watching();

  std::shared_ptr<const ImageIndex> index() const;
  const ModelInfo& model_info() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The page served at "/" (lib/src/serve_page.html), with `nonce` for its inline script
// and style.
std::string serve_page_html(const std::string& nonce);

}  // namespace imgsearch
