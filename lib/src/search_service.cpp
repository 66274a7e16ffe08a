#include "imgsearch/search_service.h"

#include "imgsearch/colour_histogram.h"
#include "imgsearch/error.h"
#include "imgsearch/http_request.h"
#include "imgsearch/index_info.h"
#include "imgsearch/index_io.h"
#include "imgsearch/log.h"
#include "imgsearch/refinement.h"
#include "imgsearch/searcher.h"
#include "imgsearch/thumbnail.h"
#include "serve_page.h"  // generated from serve_page.html (lib/CMakeLists.txt)

#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

namespace imgsearch {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

bool equals_nocase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// An HTTP status with a message for the client: thrown inside handle(), turned into
// {"error": message} at its end.
struct HttpError {
  int status;
  std::string message;
};

[[noreturn]] void fail(int status, std::string message) { throw HttpError{status, std::move(message)}; }

struct FileSignature {
  std::uint64_t inode = 0, size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileSignature& o) const {
    return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
  }
  bool operator!=(const FileSignature& o) const { return !(*this == o); }
};

bool stat_signature(const std::string& path, FileSignature& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  out.inode = st.st_ino;
  out.size = static_cast<std::uint64_t>(st.st_size);
  out.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return true;
}

// Whether vectors made by `a`'s model and preprocessing can be searched in an index
// built with `b`'s.
bool same_embedding(const ModelInfo& a, const ModelInfo& b) {
  return a.content_hash == b.content_hash && a.output_dim == b.output_dim &&
         a.preprocess.input_size == b.preprocess.input_size && a.preprocess.resize == b.preprocess.resize &&
         a.preprocess.mean == b.preprocess.mean && a.preprocess.std == b.preprocess.std && a.descriptor == b.descriptor;
}

const char* image_content_type(const std::string& bytes) {
  auto starts = [&](std::string_view magic, std::size_t at = 0) {
    return bytes.size() >= at + magic.size() && std::string_view(bytes).substr(at, magic.size()) == magic;
  };
  if (starts("\xFF\xD8\xFF")) return "image/jpeg";
  if (starts("\x89PNG\r\n\x1a\n")) return "image/png";
  if (starts("GIF8")) return "image/gif";
  if (starts("RIFF") && starts("WEBP", 8)) return "image/webp";
  if (starts("BM")) return "image/bmp";
  return "application/octet-stream";
}

// Prometheus label values: backslash, double quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Requests by endpoint and status, and a latency histogram per endpoint.
class RequestMetrics {
 public:
  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1,    2.5,   10};
  void record(const std::string& endpoint, int status, double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++counts_[{endpoint, status}];
    auto& h = latency_[endpoint];
    for (std::size_t i = 0; i < kBuckets.size(); ++i)
      if (seconds <= kBuckets[i]) ++h.buckets[i];
    ++h.count;
    h.sum += seconds;
  }
  void write(std::string& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    out += "# HELP imgsearch_http_requests_total HTTP requests by endpoint and status.\n";
    out += "# TYPE imgsearch_http_requests_total counter\n";
    for (const auto& [key, n] : counts_)
      out += fmt::format("imgsearch_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", label(key.first),
                         key.second, n);
    out += "# HELP imgsearch_http_request_duration_seconds Time from the parsed request to the response.\n";
    out += "# TYPE imgsearch_http_request_duration_seconds histogram\n";
    for (const auto& [endpoint, h] : latency_) {
      for (std::size_t i = 0; i < kBuckets.size(); ++i)
        out += fmt::format("imgsearch_http_request_duration_seconds_bucket{{endpoint=\"{}\",le=\"{}\"}} {}\n",
                           label(endpoint), kBuckets[i], h.buckets[i]);
      out += fmt::format("imgsearch_http_request_duration_seconds_bucket{{endpoint=\"{}\",le=\"+Inf\"}} {}\n",
                         label(endpoint), h.count);
      out += fmt::format("imgsearch_http_request_duration_seconds_sum{{endpoint=\"{}\"}} {:.6f}\n", label(endpoint),
                         h.sum);
      out += fmt::format("imgsearch_http_request_duration_seconds_count{{endpoint=\"{}\"}} {}\n", label(endpoint),
                         h.count);
    }
  }

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> buckets{};
    std::uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> counts_;
  std::map<std::string, Histogram> latency_;
};

// Small JPEGs by file (path, size and mtime, so a changed file is never served stale),
// least recently used dropped first beyond a byte budget.
class ThumbnailCache {
 public:
  explicit ThumbnailCache(std::size_t budget) : budget_(budget) {}
  std::shared_ptr<const std::string> get(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = map_.find(key);
    if (it == map_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  void put(const std::string& key, std::shared_ptr<const std::string> jpeg) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (map_.count(key) || jpeg->size() > budget_) return;
    bytes_ += jpeg->size();
    lru_.emplace_front(key, std::move(jpeg));
    map_[key] = lru_.begin();
    while (bytes_ > budget_) {
      bytes_ -= lru_.back().second->size();
      map_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  void write(std::string& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    out += fmt::format("# TYPE imgsearch_thumbnail_cache_bytes gauge\nimgsearch_thumbnail_cache_bytes {}\n", bytes_);
    out += fmt::format("# TYPE imgsearch_thumbnail_cache_hits_total counter\nimgsearch_thumbnail_cache_hits_total {}\n",
                       hits_);
    out += fmt::format(
        "# TYPE imgsearch_thumbnail_cache_misses_total counter\nimgsearch_thumbnail_cache_misses_total {}\n", misses_);
  }

 private:
  using Item = std::pair<std::string, std::shared_ptr<const std::string>>;
  mutable std::mutex mutex_;
  std::size_t budget_, bytes_ = 0;
  std::uint64_t hits_ = 0, misses_ = 0;
  std::list<Item> lru_;
  std::unordered_map<std::string, std::list<Item>::iterator> map_;
};

struct Overloaded {};

// One inference thread owns the model. Request threads decode and preprocess, then hand
// their prepared input over; the thread runs everything waiting as one batch, waiting a little
// (bounded) for uploads still being decoded to join it.
class InferenceBatcher {
 public:
  using RunBatch = std::function<std::vector<float>(const std::vector<const ModelInput*>& inputs)>;

  InferenceBatcher(RunBatch run, int dim, int max_batch,
                   std::chrono::microseconds wait, std::size_t max_queued)
      : run_(std::move(run)),
        dim_(dim),
        max_batch_(static_cast<std::size_t>(std::max(1, max_batch))),
        wait_(wait),
        max_queued_(max_queued),
        thread_([this] { loop(); }) {}

  ~InferenceBatcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  // Counts an upload that will call embed() soon (or finish_preparing() on failure).
  void start_preparing() { ++preparing_; }
  void finish_preparing() {
    --preparing_;
    cv_.notify_all();
  }

  // Called after start_preparing(); finishes it. Throws Overloaded, or what the model threw.
  std::vector<float> embed(ModelInput input) {
    auto job = std::make_shared<Job>();
    job->input = std::move(input);
    auto result = job->result.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --preparing_;
      if (stopping_ || queue_.size() >= max_queued_) {
        ++overloaded_;
        cv_.notify_all();
        throw Overloaded{};
      }
      queue_.push_back(std::move(job));
    }
    cv_.notify_all();
    return result.get();
  }

  void write(std::string& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    out += fmt::format("# TYPE imgsearch_inference_batches_total counter\nimgsearch_inference_batches_total {}\n",
                       batches_);
    out += fmt::format("# TYPE imgsearch_inference_images_total counter\nimgsearch_inference_images_total {}\n",
                       images_);
    out += fmt::format("# TYPE imgsearch_inference_queue gauge\nimgsearch_inference_queue {}\n", queue_.size());
    out += fmt::format("# TYPE imgsearch_overloaded_total counter\nimgsearch_overloaded_total {}\n", overloaded_);
  }

 private:
  struct Job {
    ModelInput input;
    std::promise<std::vector<float>> result;
  };

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      // Companions still decoding join this batch if they arrive within the wait.
      const auto deadline = Clock::now() + wait_;
      cv_.wait_until(lock, deadline, [&] {
        return stopping_ || queue_.size() >= max_batch_ || preparing_.load() <= 0;
      });
      if (stopping_) break;
      std::vector<std::shared_ptr<Job>> batch;
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      ++batches_;  // counted before the answers go out, so that /metrics never lags them
      images_ += batch.size();
      lock.unlock();
      run(batch);
      lock.lock();
    }
    for (auto& job : queue_) job->result.set_exception(std::make_exception_ptr(Overloaded{}));
    queue_.clear();
  }

  void run(std::vector<std::shared_ptr<Job>>& batch) {
    try {
      std::vector<const ModelInput*> inputs;
      for (const auto& job : batch) inputs.push_back(&job->input);
      const std::vector<float> out = run_(inputs);
      for (std::size_t i = 0; i < batch.size(); ++i)
        batch[i]->result.set_value(std::vector<float>(out.begin() + i * dim_, out.begin() + (i + 1) * dim_));
    } catch (...) {
      for (auto& job : batch) job->result.set_exception(std::current_exception());
    }
  }

  RunBatch run_;
  int dim_;
  std::size_t max_batch_;
  std::chrono::microseconds wait_;
  std::size_t max_queued_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::atomic<int> preparing_{0};
  bool stopping_ = false;
  std::uint64_t batches_ = 0, images_ = 0, overloaded_ = 0;
  std::thread thread_;  // last: starts after everything above exists
};

std::string random_nonce() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uint8_t bytes[18];
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
  return base64_encode(bytes, sizeof bytes);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;  // the length is no secret worth a timing channel
  unsigned diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  return diff == 0;
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (equals_nocase(k, name)) return v;
  return {};
}

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (equals_nocase(k, name)) return v;
  return {};
}

std::string serve_page_html(const std::string& nonce) {
  std::string page(kServePageHtml);
  const std::string placeholder = "{{NONCE}}";
  for (std::size_t at = page.find(placeholder); at != std::string::npos; at = page.find(placeholder, at))
    page.replace(at, placeholder.size(), nonce);
  return page;
}

struct SearchService::Impl {
  ServeOptions options;
  std::unique_ptr<Model> model;
  ModelInfo served_model;  // as the first index recorded it: later indexes must match it
  int served_dim = 0;
  DecodeOptions decode;  // as Searcher sets it for this model

  mutable std::mutex index_mutex;  // guards the pointer, not the index
  std::shared_ptr<const ImageIndex> current;
  std::uint64_t generation = 1;
  FileSignature signature;
  std::uint64_t file_size = 0;

  std::mutex reload_mutex;  // one reload at a time
  std::atomic<std::uint64_t> reloads_ok{0}, reloads_failed{0};
  std::string last_reload_error;  // under index_mutex
  FileSignature failed_signature;  // the bad file we already reported

  RequestMetrics metrics;
  ThumbnailCache thumbnails;
  std::unique_ptr<InferenceBatcher> batcher;
  Clock::time_point started = Clock::now();

  std::mutex watch_mutex;
  std::condition_variable watch_cv;
  bool watch_stop = false;
  std::thread watcher;

  explicit Impl(ServeOptions o) : options(std::move(o)), thumbnails(options.thumbnail_cache_bytes) {}

  std::shared_ptr<const ImageIndex> snapshot() const {
    std::lock_guard<std::mutex> lock(index_mutex);
    return current;
  }

  HttpResponse route(const HttpRequest& request, std::string& endpoint);
  HttpResponse search_upload(const HttpRequest& request, const QueryParams& params, std::string_view body);
  HttpResponse search_id(const QueryParams& params);
  HttpResponse search_refine(const QueryParams& params, std::string_view body);
  HttpResponse image_file(std::string_view id_text);
  HttpResponse thumbnail(std::string_view id_text);
  HttpResponse info();
  HttpResponse health();
  HttpResponse prometheus();
  void check_auth(const HttpRequest& request) const;
  SearchOptions search_options(const QueryParams& params, std::optional<int> k) const;
  std::uint32_t parse_id(std::string_view text, const ImageIndex& index) const;
};

namespace {

HttpResponse json_response(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = dump(body);
  return r;
}

json hits_json(const std::vector<SearchHit>& hits, const ImageIndex& index) {
  json results = json::array();
  for (std::size_t r = 0; r < hits.size(); ++r)
    results.push_back({{"rank", r + 1}, {"id", hits[r].id}, {"path", index.path(hits[r].id)},
                       {"score", hits[r].score}});
  return results;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

SearchService::SearchService(ServeOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  IMGSEARCH_CHECK(s.options.max_k >= 1 && s.options.default_k >= 1 && s.options.default_k <= s.options.max_k,
                  ErrorKind::InvalidArgument, "serve: default k must be from 1 to max k");
  if (s.options.qe_k >= 0 || s.options.qe_alpha >= 0)
    check_expansion_settings(std::max(s.options.qe_k, 0), s.options.qe_alpha >= 0 ? s.options.qe_alpha : 3.0f,
                             "serve: query expansion");
  stat_signature(s.options.index_path, s.signature);
  // Loaded for searching (search_load_options): what stays in the file (int8's float32
  // rows, a projected index's model vectors) is read with pread, and an f16 index's rows
  // are copied in (`query` leaves them in the mapped file), so a file changed in place
  // under a long-running server fails the requests that read it, never the process.
  auto index = std::make_shared<ImageIndex>(load_index(s.options.index_path, search_load_options()));
  s.file_size = s.signature.size;
  s.model = load_model_for_index(s.options.model_path, s.options.model, index->model(), s.options.index_path);
  {
    Searcher searcher(*index, *s.model, s.options.decode);
    s.decode = searcher.decode_options();
    // Probes a foreign model's output size now, on this thread, rather than in the first batch.
    IMGSEARCH_CHECK(s.model->output_dim() == index->model_dim(), ErrorKind::Mismatch,
                    "{}: model {} gives {}-d vectors, the index holds {}-d", s.options.index_path,
                    s.options.model_path, s.model->output_dim(), index->model_dim());
  }
  s.served_model = index->model();
  s.served_dim = index->model_dim();
  s.current = index;
  Impl* self = impl_.get();
  s.batcher = std::make_unique<InferenceBatcher>(
      [self](const std::vector<const ModelInput*>& inputs) {
        // Index-independent but Searcher wants one: the model half of its one path.
        const auto index = self->snapshot();
        Searcher searcher(*index, *self->model, self->options.decode);
        return searcher.embed_prepared(inputs);
      },
      index->model_dim(), s.options.max_batch, s.options.batch_wait, s.options.max_queued_uploads);
}

SearchService::~SearchService() {
  stop_watching();
  impl_->batcher.reset();
}

std::shared_ptr<const ImageIndex> SearchService::index() const { return impl_->snapshot(); }
const ModelInfo& SearchService::model_info() const { return impl_->model->info(); }

bool SearchService::reload_if_changed() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> reload_lock(s.reload_mutex);
  FileSignature now;
  if (!stat_signature(s.options.index_path, now)) return false;  // being replaced: look again later
  {
    std::lock_guard<std::mutex> lock(s.index_mutex);
    if (now == s.signature || now == s.failed_signature) return false;
  }
  std::string error;
  try {
    auto index = std::make_shared<ImageIndex>(load_index(s.options.index_path, search_load_options()));
    if (!same_embedding(index->model(), s.served_model) || index->model_dim() != s.served_dim)
      throw_error(ErrorKind::Mismatch,
                  "{}: the new index was built with another model ({}, hash {}) than the one being served ({}, hash "
                  "{}); restart the server to serve it",
                  s.options.index_path, index->model().name, index->model().content_hash, s.served_model.name,
                  s.served_model.content_hash);
    FileSignature after;
    // The file changed again while it loaded: what we read may be a mix; retry next time.
    if (!stat_signature(s.options.index_path, after) || after != now) return false;
    const std::size_t count = index->size();
    {
      std::lock_guard<std::mutex> lock(s.index_mutex);
      s.current = std::move(index);
      s.signature = now;
      s.file_size = now.size;
      s.failed_signature = {};
      s.last_reload_error.clear();
      ++s.generation;
    }
    ++s.reloads_ok;
    log(LogLevel::Info, fmt::format("{}: reloaded ({} images)", s.options.index_path, count));
    return true;
  } catch (const std::exception& e) {
    error = e.what();
  }
  {
    std::lock_guard<std::mutex> lock(s.index_mutex);
    s.failed_signature = now;
    s.last_reload_error = error;
  }
  ++s.reloads_failed;
  log(LogLevel::Warning, fmt::format("index reload failed, still serving the previous index: {}", error));
  return false;
}

void SearchService::watch_index(std::chrono::milliseconds interval) {
  stop_watching();
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.watch_mutex);
    s.watch_stop = false;
  }
  s.watcher = std::thread([this, interval] {
    Impl& s = *impl_;
    std::unique_lock<std::mutex> lock(s.watch_mutex);
    while (!s.watch_cv.wait_for(lock, interval, [&] { return s.watch_stop; })) {
      lock.unlock();
      reload_if_changed();
      lock.lock();
    }
  });
}

void SearchService::stop_watching() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.watch_mutex);
    s.watch_stop = true;
  }
  s.watch_cv.notify_all();
  if (s.watcher.joinable()) s.watcher.join();
}

HttpResponse SearchService::transport_error(int status, const std::string& message) {
  HttpResponse r = json_response(status, {{"error", message}});
  impl_->metrics.record("transport", status, 0);
  return r;
}

HttpResponse SearchService::handle(const HttpRequest& request) {
  Impl& s = *impl_;
  const auto start = Clock::now();
  std::string endpoint = "other";
  HttpResponse response;
  try {
    response = s.route(request, endpoint);
  } catch (const HttpError& e) {
    response = json_response(e.status, {{"error", e.message}});
    if (e.status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
    if (e.status == 503) response.headers.emplace_back("Retry-After", "1");
  } catch (const Overloaded&) {
    response = json_response(503, {{"error", "the server is busy: too many uploads are waiting for the model; retry"}});
    response.headers.emplace_back("Retry-After", "1");
  } catch (const Error& e) {
    const int status = e.kind() == ErrorKind::InvalidArgument ? 400 : 500;
    response = json_response(status, {{"error", e.what()}});
  } catch (const std::bad_alloc&) {
    response = json_response(503, {{"error", "out of memory"}});
  } catch (const std::exception& e) {
    response = json_response(500, {{"error", std::string("internal error: ") + e.what()}});
  }
  if (response.status >= 500 && response.status != 503)
    log(LogLevel::Warning, fmt::format("{} {}: {}", request.method, request.target.substr(0, 200), response.body));
  // Same-origin page, JSON and images: nothing may sniff a response into another type.
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (!s.options.cors_origin.empty() && request.target.rfind("/api/", 0) == 0) {
    response.headers.emplace_back("Access-Control-Allow-Origin", s.options.cors_origin);
    response.headers.emplace_back("Vary", "Origin");
  }
  s.metrics.record(endpoint, response.status, std::chrono::duration<double>(Clock::now() - start).count());
  return response;
}

void SearchService::Impl::check_auth(const HttpRequest& request) const {
  if (options.token.empty()) return;
  const std::string auth = request.header("Authorization");
  const std::string_view prefix = "Bearer ";
  if (auth.size() <= prefix.size() || !equals_nocase(std::string_view(auth).substr(0, prefix.size()), prefix))
    fail(401, "this server needs a token: send 'Authorization: Bearer TOKEN'");
  if (!constant_time_equal(std::string_view(auth).substr(prefix.size()), options.token)) fail(401, "wrong token");
}

HttpResponse SearchService::Impl::route(const HttpRequest& request, std::string& endpoint) {
  const std::size_t question = request.target.find('?');
  const std::string_view path = std::string_view(request.target).substr(0, question);
  const std::string_view query =
      question == std::string::npos ? std::string_view() : std::string_view(request.target).substr(question + 1);
  const bool get = request.method == "GET" || request.method == "HEAD";
  const bool post = request.method == "POST";
  auto only = [&](bool ok, const char* allowed) {
    if (!ok) {
      HttpError e{405, fmt::format("{} is not allowed here (allowed: {})", request.method.substr(0, 16), allowed)};
      throw e;
    }
  };

  if (path == "/" || path == "/index.html") {
    endpoint = "page";
    only(get, "GET");
    const std::string nonce = random_nonce();
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = serve_page_html(nonce);
    // Only the page's own nonce'd script and style run; images from here, blob: (query
    // preview) and data:; fetch() to here only; no framing, no plugins, no forms elsewhere.
    r.headers.emplace_back("Content-Security-Policy",
                           fmt::format("default-src 'none'; script-src 'nonce-{0}'; style-src 'nonce-{0}'; "
                                       "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; "
                                       "form-action 'none'; frame-ancestors 'none'",
                                       nonce));
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("X-Frame-Options", "DENY");
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  }
  if (path == "/healthz") {
    endpoint = "healthz";
    only(get, "GET");
    return health();
  }
  if (path == "/metrics") {
    endpoint = "metrics";
    only(get, "GET");
    check_auth(request);
    return prometheus();
  }
  if (path.substr(0, 5) != "/api/") {
    endpoint = "other";
    fail(404, "not found");
  }
  if (request.method == "OPTIONS" && !options.cors_origin.empty()) {
    endpoint = "preflight";
    HttpResponse r;
    r.status = 204;
    r.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
    r.headers.emplace_back("Access-Control-Max-Age", "600");
    return r;
  }
  endpoint = "api_other";
  check_auth(request);
  const QueryParams params = parse_query_string(query);
  if (path == "/api/search") {
    only(get || post, "GET, POST");
    if (get) {
      endpoint = "search_id";
      return search_id(params);
    }
    if (request.body.size() > options.max_upload_bytes + (64u << 10))
      fail(413, fmt::format("the upload is {} bytes; the limit is {} bytes", request.body.size(),
                            options.max_upload_bytes));
    const std::string type = media_type(request.header("Content-Type"));
    if (type == "application/json") {
      endpoint = "search_refine";
      return search_refine(params, request.body);
    }
    endpoint = "search_upload";
    if (type == "multipart/form-data") {
      const std::string boundary = header_parameter(request.header("Content-Type"), "boundary");
      for (const MultipartPart& part : parse_multipart(request.body, boundary))
        if (part.name == "image") return search_upload(request, params, part.data);
      fail(400, "the multipart body has no field 'image'");
    }
    return search_upload(request, params, request.body);
  }
  if (path == "/api/info") {
    endpoint = "info";
    only(get, "GET");
    return info();
  }
  if (path.substr(0, 12) == "/api/images/") {
    endpoint = "images";
    only(get, "GET");
    return image_file(path.substr(12));
  }
  if (path.substr(0, 12) == "/api/thumbs/") {
    endpoint = "thumbs";
    only(get, "GET");
    return thumbnail(path.substr(12));
  }
  fail(404, "no such endpoint");
}

SearchOptions SearchService::Impl::search_options(const QueryParams& params, std::optional<int> k) const {
  SearchOptions o;
  o.k = options.default_k;
  if (k) o.k = *k;
  if (auto v = find_param(params, "k")) o.k = static_cast<int>(parse_int(*v, 1, options.max_k, "k"));
  IMGSEARCH_CHECK(o.k >= 1 && o.k <= options.max_k, ErrorKind::InvalidArgument, "k must be from 1 to {}, got {}",
                  options.max_k, o.k);
  if (auto v = find_param(params, "ef")) o.ef = static_cast<int>(parse_int(*v, 1, 100000, "ef"));
  if (auto v = find_param(params, "exact")) o.exact = parse_int(*v, 0, 1, "exact") == 1;
  // Query expansion: the request's, else the server's, else (unset) the index's stored one.
  int qe_k = options.qe_k;
  double qe_alpha = options.qe_alpha;
  if (auto v = find_param(params, "qe")) qe_k = static_cast<int>(parse_int(*v, 0, kMaxExpansionK, "qe"));
  if (auto v = find_param(params, "qe_alpha")) qe_alpha = parse_number(*v, 0, kMaxAlpha, "qe_alpha");
  if (qe_k >= 0 || qe_alpha >= 0) {
    QueryExpansion qe = snapshot()->query_expansion();
    if (qe_k >= 0) qe.k = qe_k;
    if (qe_alpha >= 0) qe.alpha = static_cast<float>(qe_alpha);
    o.expansion = qe;
  }
  return o;
}

std::uint32_t SearchService::Impl::parse_id(std::string_view text, const ImageIndex& index) const {
  // Only a decimal id: never a path, never anything to resolve.
  const auto id = parse_int(text, 0, 0xFFFFFFFFll, "the image id");
  if (static_cast<std::size_t>(id) >= index.size())
    fail(404, fmt::format("no image with id {} (the index holds {})", id, index.size()));
  return static_cast<std::uint32_t>(id);
}

HttpResponse SearchService::Impl::search_upload(const HttpRequest&, const QueryParams& params, std::string_view body) {
  const auto start = Clock::now();
  const SearchOptions search = search_options(params, std::nullopt);
  if (body.empty()) fail(400, "empty upload: send the image as the request body or as multipart field 'image'");
  if (body.size() > options.max_upload_bytes)
    fail(413, fmt::format("the upload is {} bytes; the limit is {} bytes", body.size(), options.max_upload_bytes));
  const auto index = snapshot();
  Searcher searcher(*index, *model, options.decode);
  batcher->start_preparing();
  ModelInput input;
  std::vector<float> colour;
  try {
    Image image;
    try {
      image = searcher.decode_memory(reinterpret_cast<const std::uint8_t*>(body.data()), body.size(), "upload");
    } catch (const Error& e) {
      const std::string message = e.what();
      // The pixel limit is a size limit (a decompression bomb), not a broken file.
      fail(message.find("exceeds the limit") != std::string::npos ? 413 : 415, message);
    }
    input = searcher.prepare(image);
    colour = searcher.colour_of(image);
  } catch (...) {
    batcher->finish_preparing();
    throw;
  }
  const std::vector<float> vector = batcher->embed(std::move(input));
  const auto hits = searcher.search(vector.data(), colour.data(), search);
  json out;
  out["query"] = {{"type", "upload"}, {"bytes", body.size()}};
  out["results"] = hits_json(hits, *index);
  out["took_ms"] = ms_since(start);
  return json_response(200, out);
}

HttpResponse SearchService::Impl::search_id(const QueryParams& params) {
  const auto start = Clock::now();
  const SearchOptions search = search_options(params, std::nullopt);
  const auto id_text = find_param(params, "id");
  if (!id_text) fail(400, "GET /api/search needs id=N (or POST an image)");
  const auto index = snapshot();
  const std::uint32_t id = parse_id(*id_text, *index);
  const auto hits = Searcher(*index, *model, options.decode).search_by_id(id, search);
  json out;
  out["query"] = {{"type", "id"}, {"id", id}, {"path", index->path(id)}};
  out["results"] = hits_json(hits, *index);
  out["took_ms"] = ms_since(start);
  return json_response(200, out);
}

HttpResponse SearchService::Impl::search_refine(const QueryParams& params, std::string_view body) {
  const auto start = Clock::now();
  const FeedbackRequest feedback = parse_feedback_json(body);
  SearchOptions search = search_options(params, feedback.k);
  if (feedback.positive.empty()) fail(400, "mark at least one result as good ('positive': [ids])");
  const auto index = snapshot();
  for (auto id : feedback.positive) parse_id(std::to_string(id), *index);
  for (auto id : feedback.negative) {
    parse_id(std::to_string(id), *index);
    if (std::find(feedback.positive.begin(), feedback.positive.end(), id) != feedback.positive.end())
      fail(400, fmt::format("image {} is marked both good and bad", id));
  }
  // Rocchio without the original query (it may have been an upload): the mean of the
  // good vectors, minus half the mean of the bad ones, normalised (docs/serve.md).
  // In the model's space: Searcher::search projects and expands the query like any other.
  const int dim = index->model_dim();
  std::vector<double> sum(static_cast<std::size_t>(dim), 0.0);
  for (auto id : feedback.positive) {
    const std::vector<float> v = index->model_vector_copy(id);
    for (int d = 0; d < dim; ++d) sum[d] += v[d] / static_cast<double>(feedback.positive.size());
  }
  for (auto id : feedback.negative) {
    const std::vector<float> v = index->model_vector_copy(id);
    for (int d = 0; d < dim; ++d) sum[d] -= 0.5 * v[d] / static_cast<double>(feedback.negative.size());
  }
  double norm = 0;
  for (double x : sum) norm += x * x;
  norm = std::sqrt(norm);
  if (!(norm > 1e-6)) fail(400, "the good and bad marks cancel out; mark different images");
  std::vector<float> query(static_cast<std::size_t>(dim));
  for (int d = 0; d < dim; ++d) query[d] = static_cast<float>(sum[d] / norm);
  // The good images' mean colour histogram, for a colour projection (none without).
  std::vector<float> colour(kColourBins, 0.0f);
  bool all_coloured = true;
  for (auto id : feedback.positive) {
    const float* c = index->colour(id);
    if (!c) all_coloured = false;
    for (int b = 0; c && b < kColourBins; ++b) colour[b] += c[b] / static_cast<float>(feedback.positive.size());
  }
  // Images marked bad are left out of the results.
  const int want = search.k;
  search.k = std::min(options.max_k + static_cast<int>(feedback.negative.size()), want + static_cast<int>(feedback.negative.size()));
  auto hits = Searcher(*index, *model, options.decode).search(query.data(), all_coloured ? colour.data() : nullptr, search);
  hits.erase(std::remove_if(hits.begin(), hits.end(),
                            [&](const SearchHit& h) {
                              return std::find(feedback.negative.begin(), feedback.negative.end(), h.id) !=
                                     feedback.negative.end();
                            }),
             hits.end());
  if (hits.size() > static_cast<std::size_t>(want)) hits.resize(static_cast<std::size_t>(want));
  json out;
  out["query"] = {{"type", "refine"}, {"positive", feedback.positive}, {"negative", feedback.negative}};
  out["results"] = hits_json(hits, *index);
  out["took_ms"] = ms_since(start);
  return json_response(200, out);
}

HttpResponse SearchService::Impl::image_file(std::string_view id_text) {
  const auto index = snapshot();
  const std::uint32_t id = parse_id(id_text, *index);
  const std::string path = index->path(id);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) fail(404, fmt::format("image {} is gone from disk", id));
  if (st.st_size > (256 << 20)) fail(413, fmt::format("image {} is larger than 256 MiB", id));
  std::ifstream in(path, std::ios::binary);
  std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!in) fail(404, fmt::format("image {} could not be read", id));
  HttpResponse r;
  r.content_type = image_content_type(bytes);
  r.body = std::move(bytes);
  r.headers.emplace_back("Cache-Control", "private, max-age=300");
  r.headers.emplace_back("Content-Security-Policy", "default-src 'none'; sandbox");
  return r;
}

HttpResponse SearchService::Impl::thumbnail(std::string_view id_text) {
  const auto index = snapshot();
  const std::uint32_t id = parse_id(id_text, *index);
  const IndexEntry entry = index->entry_info(id);
  const std::string key = fmt::format("{}\n{}\n{}", entry.path, entry.size, entry.mtime_ns);
  auto jpeg = thumbnails.get(key);
  if (!jpeg) {
    ThumbnailOptions t;
    t.max_side = options.thumbnail_side;
    std::vector<std::uint8_t> bytes;
    try {
      bytes = thumbnail_file(entry.path, t);
    } catch (const Error& e) {
      fail(404, fmt::format("image {} has no thumbnail: {}", id, e.what()));
    }
    jpeg = std::make_shared<const std::string>(bytes.begin(), bytes.end());
    thumbnails.put(key, jpeg);
  }
  HttpResponse r;
  r.content_type = "image/jpeg";
  r.body = *jpeg;
  r.headers.emplace_back("Cache-Control", "private, max-age=300");
  return r;
}

HttpResponse SearchService::Impl::info() {
  std::uint64_t size;
  {
    std::lock_guard<std::mutex> lock(index_mutex);
    size = file_size;
  }
  const auto index = snapshot();
  HttpResponse r;
  r.content_type = "application/json";
  r.body = index_info_json(*index, options.index_path, size);
  return r;
}

HttpResponse SearchService::Impl::health() {
  json out;
  std::string error;
  std::uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(index_mutex);
    error = last_reload_error;
    gen = generation;
  }
  const auto index = snapshot();
  out["status"] = error.empty() ? "ok" : "degraded";
  out["images"] = index->size();
  out["generation"] = gen;
  out["reloads"] = reloads_ok.load();
  out["reload_failures"] = reloads_failed.load();
  out["reload_error"] = error.empty() ? json(nullptr) : json(error);
  out["uptime_s"] = std::chrono::duration<double>(Clock::now() - started).count();
  return json_response(200, out);
}

HttpResponse SearchService::Impl::prometheus() {
  std::string out;
  metrics.write(out);
  const auto index = snapshot();
  std::string error;
  std::uint64_t size, gen;
  {
    std::lock_guard<std::mutex> lock(index_mutex);
    error = last_reload_error;
    size = file_size;
    gen = generation;
  }
  const ModelInfo& m = model->info();
  out += fmt::format("# HELP imgsearch_index_images Images in the index being served.\n"
                     "# TYPE imgsearch_index_images gauge\nimgsearch_index_images {}\n", index->size());
  out += fmt::format("# TYPE imgsearch_index_file_bytes gauge\nimgsearch_index_file_bytes {}\n", size);
  out += fmt::format("# TYPE imgsearch_index_generation gauge\nimgsearch_index_generation {}\n", gen);
  out += fmt::format("# HELP imgsearch_index_reloads_total Index reloads by result.\n"
                     "# TYPE imgsearch_index_reloads_total counter\n"
                     "imgsearch_index_reloads_total{{result=\"ok\"}} {}\n"
                     "imgsearch_index_reloads_total{{result=\"failed\"}} {}\n",
                     reloads_ok.load(), reloads_failed.load());
  out += fmt::format("# HELP imgsearch_index_reload_failing 1 while the newest index file failed to load.\n"
                     "# TYPE imgsearch_index_reload_failing gauge\nimgsearch_index_reload_failing {}\n",
                     error.empty() ? 0 : 1);
  out += fmt::format("# TYPE imgsearch_model_info gauge\nimgsearch_model_info{{name=\"{}\",dim=\"{}\",precision=\"{}\","
                     "hash=\"{}\"}} 1\n",
                     label(m.name), index->dim(), to_string(model->precision()), label(m.content_hash));
  batcher->write(out);
  thumbnails.write(out);
  out += fmt::format("# TYPE imgsearch_uptime_seconds gauge\nimgsearch_uptime_seconds {:.3f}\n",
                     std::chrono::duration<double>(Clock::now() - started).count());
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = std::move(out);
  return r;
}

}  // namespace imgsearch
