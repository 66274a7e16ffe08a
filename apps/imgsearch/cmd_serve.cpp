// imgsearch serve [-i INDEX] [--host 127.0.0.1] [--port 8080] [--token TOKEN] [--max-upload-mb 20] [--cors ORIGIN]
// The HTTP transport only (cpp-httplib): requests are handled by imgsearch::SearchService.
#include "cli_common.h"

#include <imgsearch/error.h>
#include <imgsearch/index_io.h>
#include <imgsearch/log.h>
#include <imgsearch/refinement.h>
#include <imgsearch/search_service.h>

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>

namespace imgsearch::cli {

namespace {

using Clock = std::chrono::steady_clock;

int g_stop_pipe[2] = {-1, -1};

struct ServeArgs {
  std::string index;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string token;
  double max_upload_mb = 20;
  std::string cors;
  bool public_bind = false;
  int max_connections = 64;
  double request_timeout = 10;  // seconds to receive one whole request
  double idle_timeout = 5;      // seconds between two reads, and of keep-alive idleness
  double reload_interval = 2;   // seconds; 0 = never look
  int batch_size = 8;
  int qe = -1;  // -1: the index's stored default
  float qe_alpha = -1;
  ModelArgs model;
};

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  return ::inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

int ms(double seconds) { return static_cast<int>(seconds * 1000); }

// A socket stream whose reads also stop at a deadline for the whole request, so that a
// client dribbling one byte a second cannot hold a worker thread (cpp-httplib's own read
// timeout restarts at every byte).
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(int sock, int idle_ms, int write_ms) : sock_(sock), idle_ms_(idle_ms), write_ms_(write_ms) {}

  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }
  bool has_buffered() const { return offset_ < length_; }

  // Waits up to `wait_ms` for the first byte of a request, in slices, giving up early
  // when `stop()` says so.
  template <typename Stop>
  bool wait_for_request(int wait_ms, Stop stop) {
    if (has_buffered()) return true;
    const auto until = Clock::now() + std::chrono::milliseconds(wait_ms);
    while (Clock::now() < until) {
      if (stop()) return false;
      if (poll_for(POLLIN, 100)) return true;
    }
    return false;
  }

  bool is_readable() const override { return has_buffered() || poll_for(POLLIN, read_budget_ms()); }
  bool is_writable() const override { return poll_for(POLLOUT, write_ms_); }

  ssize_t read(char* ptr, size_t size) override {
    if (!has_buffered()) {
      if (!poll_for(POLLIN, read_budget_ms())) return -1;
      ssize_t n;
      do n = ::recv(sock_, buffer_, sizeof buffer_, 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      offset_ = 0;
      length_ = static_cast<std::size_t>(n);
    }
    const std::size_t n = std::min(size, length_ - offset_);
    std::memcpy(ptr, buffer_ + offset_, n);
    offset_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!poll_for(POLLOUT, write_ms_)) return -1;
    ssize_t n;
    do n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  int read_budget_ms() const {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    return static_cast<int>(std::max<long long>(0, std::min<long long>(left, idle_ms_)));
  }
  bool poll_for(short events, int timeout_ms) const {
    pollfd p{sock_, events, 0};
    int r;
    do r = ::poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0 && (p.revents & (events | POLLHUP | POLLERR));
  }
  void address(bool remote, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int r = remote ? ::getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len)
                         : ::getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len);
    if (r != 0) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
      port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
      port = ntohs(a->sin6_port);
    }
    ip = text;
  }

  int sock_;
  int idle_ms_, write_ms_;
  Clock::time_point deadline_ = Clock::now();
  char buffer_[8192];
  std::size_t offset_ = 0, length_ = 0;
};

class Server : public httplib::Server {
 public:
  explicit Server(const ServeArgs& args)
      : request_ms_(ms(args.request_timeout)), idle_ms_(ms(args.idle_timeout)), write_ms_(ms(args.idle_timeout) * 2) {}

 private:
  bool process_and_close_socket(socket_t sock) override {
    DeadlineStream stream(sock, idle_ms_, write_ms_);
    bool ok = true;
    const auto stopping = [this] { return svr_sock_ == INVALID_SOCKET; };
    for (std::size_t count = keep_alive_max_count_; count > 0; --count) {
      // The first request of an accepted connection is served even while stopping (the
      // client sent it before we stopped accepting); keep-alive ends at once then.
      const bool first = count == keep_alive_max_count_;
      if (!stream.wait_for_request(first ? idle_ms_ : static_cast<int>(keep_alive_timeout_sec_ * 1000),
                                   [&] { return !first && stopping(); }))
        break;
      stream.set_deadline(Clock::now() + std::chrono::milliseconds(request_ms_));
      bool connection_closed = false;
      ok = process_request(stream, count == 1 || stopping(), connection_closed, [&](httplib::Request& req) {
        stream.get_remote_ip_and_port(req.remote_addr, req.remote_port);
        stream.get_local_ip_and_port(req.local_addr, req.local_port);
      });
      if (!ok || connection_closed || stopping()) break;
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ok;
  }

  int request_ms_, idle_ms_, write_ms_;
};

// One thread per connection, at most `threads`; beyond that, up to `threads` accepted
// connections wait, and then the accept loop itself waits (the kernel's backlog holds
// the rest): a cap on connections and on memory.
class BoundedPool : public httplib::TaskQueue {
 public:
  explicit BoundedPool(std::size_t threads) : max_waiting_(threads) {
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mutex_);
    room_.wait(lock, [&] { return jobs_.size() < max_waiting_ || shutdown_; });
    jobs_.push_back(std::move(fn));
    ready_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shutdown_ = true;
    }
    ready_.notify_all();
    room_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // shutting down, nothing left
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        room_.notify_one();
      }
      fn();
    }
  }
  std::size_t max_waiting_;
  std::mutex mutex_;
  std::condition_variable ready_, room_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool shutdown_ = false;
};

void log_line(LogLevel level, const std::string& message) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::fprintf(stderr, "%s imgsearch serve: %s%s\n", stamp, level == LogLevel::Warning ? "warning: " : "",
               message.c_str());
}

int run_serve(ServeArgs args) {
  if (args.token.empty())
    if (const char* t = std::getenv("IMGSEARCH_TOKEN"); t && *t) args.token = t;
  if (!is_loopback(args.host) && args.token.empty() && !args.public_bind)
    throw Error(ErrorKind::InvalidArgument,
                fmt::format("refusing to serve on {} (reachable from other machines) without --token; give a token, "
                            "or --public to serve anyone who can connect",
                            args.host));

  // SIGINT/SIGTERM write a byte to a pipe (all a handler may safely do, on whichever
  // thread LibTorch's pools leave it to); a thread reading the pipe stops the server.
  if (::pipe(g_stop_pipe) != 0) throw Error(ErrorKind::Io, "cannot create a pipe");
  struct sigaction action {};
  action.sa_handler = [](int) {
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(g_stop_pipe[1], &byte, 1);
  };
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  ServeOptions options;
  options.index_path = resolve_index_path(args.index);
  const ModelInfo index_model = load_index_model(options.index_path);
  options.model_path = resolve_model_path(args.model, &index_model);
  options.model = args.model.options();
  options.decode = args.model.decode();
  options.token = args.token;
  options.cors_origin = args.cors;
  options.max_upload_bytes = static_cast<std::size_t>(args.max_upload_mb * 1024 * 1024);
  options.max_batch = args.batch_size;
  options.qe_k = args.qe;
  options.qe_alpha = args.qe_alpha;
  SearchService service(options);
  tune_allocator_for(service.index()->model());
  set_log_callback(log_line);  // reloads and failures go to stderr, stamped
  if (args.reload_interval > 0) service.watch_index(std::chrono::milliseconds(ms(args.reload_interval)));

  Server server(args);
  server.new_task_queue = [&] { return new BoundedPool(static_cast<std::size_t>(args.max_connections)); };
  server.set_payload_max_length(options.max_upload_bytes + (64u << 10));  // + multipart framing
  server.set_keep_alive_max_count(100);
  server.set_keep_alive_timeout(static_cast<time_t>(std::max(1.0, args.idle_timeout)));
  server.set_read_timeout(static_cast<time_t>(args.idle_timeout));
  server.set_write_timeout(static_cast<time_t>(args.idle_timeout * 2));
  server.set_tcp_nodelay(true);
  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    // cpp-httplib would parse a multipart body itself and keep no raw body; imgsearch
    // parses it (and fuzzes that parser), so the header is renamed before the body is read.
    const std::string type = req.get_header_value("Content-Type");
    if (type.compare(0, 10, "multipart/") == 0 || type.compare(0, 10, "Multipart/") == 0) {
      auto& mutable_req = const_cast<httplib::Request&>(req);  // the server's own, non-const object
      mutable_req.headers.erase("Content-Type");
      mutable_req.headers.emplace("X-Imgsearch-Content-Type", type);
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  const auto handle = [&service](const httplib::Request& req, httplib::Response& res) {
    HttpRequest request;
    request.method = req.method;
    request.target = req.target;
    for (const auto& [name, value] : req.headers)
      request.headers.emplace_back(name == "X-Imgsearch-Content-Type" ? "Content-Type" : name, value);
    request.body = req.body;
    HttpResponse response = service.handle(request);
    res.status = response.status;
    for (const auto& [name, value] : response.headers) res.set_header(name, value);
    if (response.status != 204 && response.status != 304)
      res.set_content(std::move(response.body), response.content_type.c_str());
  };
  for (const char* pattern : {".*"}) {
    server.Get(pattern, handle);
    server.Post(pattern, handle);
    server.Put(pattern, handle);
    server.Patch(pattern, handle);
    server.Delete(pattern, handle);
    server.Options(pattern, handle);
  }
  // Errors cpp-httplib answers itself (413 over the payload limit, 400 on a bad request
  // line or header) get the same JSON body as ours.
  const std::size_t max_upload = options.max_upload_bytes;
  server.set_error_handler(httplib::Server::HandlerWithResponse([&service, max_upload](const httplib::Request&,
                                                                                       httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string reason = res.status == 413   ? fmt::format("the upload is over the limit of {} bytes", max_upload)
                               : res.status == 404 ? std::string("not found")
                                                   : fmt::format("bad request (HTTP {})", res.status);
    const HttpResponse r = service.transport_error(res.status, reason);
    res.set_content(r.body, r.content_type.c_str());
    res.set_header("X-Content-Type-Options", "nosniff");
    return httplib::Server::HandlerResponse::Handled;
  }));

  int port = args.port;
  if (port == 0) {
    port = server.bind_to_any_port(args.host);
    if (port < 0) throw Error(ErrorKind::Io, fmt::format("cannot listen on {}: no free port", args.host));
  } else if (!server.bind_to_port(args.host, port)) {
    throw Error(ErrorKind::Io, fmt::format("cannot listen on {}:{}: {}", args.host, port, std::strerror(errno)));
  }
  const bool v6 = args.host.find(':') != std::string::npos;
  std::printf("http://%s%s%s:%d/\n", v6 ? "[" : "", args.host.c_str(), v6 ? "]" : "", port);
  std::fflush(stdout);
  log_line(LogLevel::Info, fmt::format("serving {} ({} images, model {}) on {}:{}", options.index_path,
                                       service.index()->size(), service.model_info().name, args.host, port));

  std::thread signal_thread([&] {
    char byte = 0;
    while (::read(g_stop_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    server.stop();
  });
  const bool listened = server.listen_after_bind();  // returns once stop() ran and in-flight requests finished
  {
    const char byte = 0;  // wakes the signal thread when no signal came
    [[maybe_unused]] const auto n = ::write(g_stop_pipe[1], &byte, 1);
  }
  signal_thread.join();
  service.stop_watching();
  log_line(LogLevel::Info, "stopped");
  return listened ? kExitOk : kExitFailure;
}

}  // namespace

void setup_serve(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<ServeArgs>();
  app.add_option("-i,--index", args->index, "index file (default: $IMGSEARCH_INDEX, then ./imgsearch.index)");
  app.add_option("--host", args->host, "address to listen on (default 127.0.0.1)");
  app.add_option("--port", args->port, "port (default 8080; 0 picks a free one, printed in the URL)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--token", args->token,
                 "require 'Authorization: Bearer TOKEN' on /api and /metrics (default: $IMGSEARCH_TOKEN)");
  app.add_option("--max-upload-mb", args->max_upload_mb, "largest accepted upload in MiB (default 20)")
      ->check(CLI::Range(0.001, 1024.0));
  app.add_option("--cors", args->cors, "allow cross-origin /api requests from this origin (e.g. https://a.example)");
  app.add_flag("--public", args->public_bind, "allow a non-loopback --host without --token");
  app.add_option("--max-connections", args->max_connections, "connections served at once (default 64)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--request-timeout", args->request_timeout,
                 "seconds a client has to send one whole request (default 10)")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--idle-timeout", args->idle_timeout,
                 "seconds a client may stay silent mid-request or idle between requests (default 5)")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--reload-interval", args->reload_interval,
                 "seconds between looks at the index file for a new version (default 2; 0 = never)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--batch-size", args->batch_size,
                 "most concurrent uploads in one CNN pass (default 8; docs/benchmarks.md says why)")
      ->check(CLI::Range(1, 64));
  app.add_option("--qe", args->qe, "query expansion for every search (0 = off; default: the index's; "
                                   "a request's qe= overrides it)")
      ->check(CLI::Range(0, kMaxExpansionK));
  app.add_option("--qe-alpha", args->qe_alpha, "query expansion weight exponent (default: the index's, else 3)")
      ->check(CLI::Range(0.0, double(kMaxAlpha)));
  args->model.add_to(app);
  app.callback([&runner, args] { runner = [args] { return run_serve(*args); }; });
}

}  // namespace imgsearch::cli
