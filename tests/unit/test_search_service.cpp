// SearchService (the request handling of `imgsearch serve`) called without sockets, on a
// small real index: 8 Corel-1k classes x 6 images, the real MobileNetV2.
#include "test_helpers.h"

#include <imgsearch/error.h>
#include <imgsearch/http_request.h>
#include <imgsearch/index_info.h>
#include <imgsearch/index_io.h>
#include <imgsearch/search_service.h>
#include <imgsearch/searcher.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

using namespace imgsearch;
using json = nlohmann::json;

namespace {

const char* const kClasses[] = {"africans", "beaches", "buildings", "buses", "dinosaurs", "elephants", "flowers",
                                "horses"};

ModelOptions mobilenet_options() {
  ModelOptions o;
  o.overrides.mean = {0.5f, 0.5f, 0.5f};
  o.overrides.std = {0.5f, 0.5f, 0.5f};
  o.precision = Precision::Fp32;
  o.threads = 1;
  return o;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Builds (once per test run) the small index, `per_class` images of each class.
std::string build_index(const std::string& path, int per_class,
                        const std::string& model_path = test::mobilenet_path()) {
  auto model = Model::load(model_path, mobilenet_options());
  std::vector<IndexEntry> entries;
  std::vector<float> vectors;
  ImageIndex probe(model->output_dim(), {}, model->info());
  Searcher searcher(probe, *model);
  for (int c = 0; c < 8; ++c)
    for (int i = 0; i < per_class; ++i) {
      const std::string file = test::corel(std::string(kClasses[c]) + "/" + std::to_string(c * 100 + i) + ".jpg");
      IndexEntry e;
      e.path = file;
      e.size = std::filesystem::file_size(file);
      entries.push_back(e);
      const auto v = searcher.embed_file(file);
      vectors.insert(vectors.end(), v.begin(), v.end());
    }
  ImageIndex index(model->output_dim(), {}, model->info());
  index.add(entries, vectors.data(), 1);
  save_index(index, path);
  return path;
}

// The index for `per_class` images a class, built once per test run (in the test data
// folder; concurrent test processes may both build it: the save is an atomic rename) and
// copied to `path`.
std::string copy_of_index(const std::string& path, int per_class,
                          const std::string& model_path = test::mobilenet_path()) {
  const std::string cached = std::string(IMGSEARCH_TEST_DATA_DIR) + "/serve-" +
                             std::filesystem::path(model_path).stem().string() + "-" + std::to_string(per_class) +
                             ".index";
  if (!std::filesystem::exists(cached)) {
    std::filesystem::create_directories(IMGSEARCH_TEST_DATA_DIR);
    build_index(cached, per_class, model_path);
  }
  std::filesystem::copy_file(cached, path, std::filesystem::copy_options::overwrite_existing);
  return path;
}

struct Fixture {
  test::TempDir tmp;
  std::string index_path = copy_of_index(tmp.file("small.index"), 6);

  ServeOptions options(const std::string& token = "") const {
    ServeOptions o;
    o.index_path = index_path;
    o.model_path = test::mobilenet_path();
    o.model = mobilenet_options();
    o.token = token;
    o.max_upload_bytes = 1 << 20;
    return o;
  }
};

HttpRequest get(const std::string& target) { return {"GET", target, {}, {}}; }
HttpRequest post(const std::string& target, std::string body, const std::string& type) {
  return {"POST", target, {{"Content-Type", type}}, std::move(body)};
}

json body_json(const HttpResponse& r) {
  INFO(r.body.substr(0, 300));
  REQUIRE(r.content_type == "application/json");
  return json::parse(r.body);
}

std::string multipart(const std::string& field, const std::string& data, const std::string& boundary) {
  return "preamble\r\n--" + boundary + "\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--" +
         boundary + "\r\nContent-Disposition: form-data; name=\"" + field +
         "\"; filename=\"300.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n" + data + "\r\n--" + boundary + "--\r\n";
}

}  // namespace

TEST_CASE("serve: an upload ranks exactly like the query path, raw or multipart", "[serve]") {
  Fixture f;
  SearchService service(f.options());
  const auto index = service.index();
  const std::string bus = test::corel("buses/300.jpg");
  const std::string bytes = read_file(bus);

  const auto raw = service.handle(post("/api/search?k=6", bytes, "image/jpeg"));
  REQUIRE(raw.status == 200);
  const json r = body_json(raw);
  REQUIRE(r["results"].size() == 6);
  CHECK(r["results"][0]["path"] == bus);
  CHECK(r["results"][0]["rank"] == 1);
  CHECK(r["results"][0]["score"].get<double>() > 0.999);
  CHECK(r["took_ms"].get<double>() >= 0);
  CHECK(r["query"]["type"] == "upload");
  for (const auto& hit : r["results"]) CHECK_THAT(hit["path"].get<std::string>(), Catch::Contains("/buses/"));

  // The query path (imgsearch query): same ids in the same order, same scores.
  auto model = load_model_for_index(test::mobilenet_path(), mobilenet_options(), index->model(), f.index_path);
  Searcher searcher(*index, *model);
  SearchOptions so;
  so.k = 6;
  const auto expected = searcher.search_file(bus, so);
  REQUIRE(expected.size() == 6);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CHECK(r["results"][i]["id"] == expected[i].id);
    CHECK(r["results"][i]["score"].get<double>() == Approx(expected[i].score).margin(1e-4));
  }

  const auto form = service.handle(
      post("/api/search?k=6", multipart("image", bytes, "xYz-42"), "multipart/form-data; boundary=\"xYz-42\""));
  REQUIRE(form.status == 200);
  const json m = body_json(form);
  for (std::size_t i = 0; i < 6; ++i) CHECK(m["results"][i]["id"] == r["results"][i]["id"]);

  const auto no_field = service.handle(
      post("/api/search", multipart("photo", bytes, "b"), "multipart/form-data; boundary=b"));
  CHECK(no_field.status == 400);
  CHECK_THAT(body_json(no_field)["error"].get<std::string>(), Catch::Contains("'image'"));
}

TEST_CASE("serve: id search, refine, images, thumbnails, info, health, metrics", "[serve]") {
  Fixture f;
  SearchService service(f.options());
  const auto index = service.index();
  // Ids of the index are in class order: 6 per class, buses are 18..23, dinosaurs 24..29.
  REQUIRE(index->path(18) == test::corel("buses/300.jpg"));

  const json byid = body_json(service.handle(get("/api/search?id=18&k=5")));
  CHECK(byid["query"]["id"] == 18);
  CHECK(byid["query"]["path"] == index->path(18));
  REQUIRE(byid["results"].size() == 5);
  CHECK(byid["results"][0]["id"] == 18);
  CHECK(byid["results"][0]["score"].get<double>() == Approx(1.0).margin(1e-4));
  CHECK(service.handle(get("/api/search?id=18")).status == 200);
  CHECK(body_json(service.handle(get("/api/search?id=18")))["results"].size() == 9);  // default k

  // Refine: two buses good, one bad; the bad one is gone, buses lead.
  const auto refined = service.handle(
      post("/api/search", R"({"positive": [18, 19], "negative": [20], "k": 5})", "application/json"));
  REQUIRE(refined.status == 200);
  const json rj = body_json(refined);
  REQUIRE(rj["results"].size() == 5);
  std::set<int> ids;
  for (const auto& hit : rj["results"]) ids.insert(hit["id"].get<int>());
  CHECK(ids.count(20) == 0);
  CHECK(ids.count(18) == 1);
  CHECK(ids.count(19) == 1);
  CHECK(rj["results"][0]["id"].get<int>() >= 18);
  CHECK(rj["results"][0]["id"].get<int>() <= 23);
  CHECK(rj["query"]["negative"] == json::array({20}));
  // The Rocchio vector: mean(good) - 0.5 * mean(bad), normalised; its best hit's score
  // is its cosine with that image.
  {
    const int dim = index->dim();
    std::vector<double> q(dim);
    for (int d = 0; d < dim; ++d)
      q[d] = (index->vector(18)[d] + index->vector(19)[d]) / 2.0 - 0.5 * index->vector(20)[d];
    const int top = rj["results"][0]["id"];
    std::vector<float> qf(q.begin(), q.end());
    CHECK(rj["results"][0]["score"].get<double>() == Approx(test::cosine(qf.data(), index->vector(top), dim)).margin(1e-4));
  }

  const auto image = service.handle(get("/api/images/18"));
  CHECK(image.status == 200);
  CHECK(image.content_type == "image/jpeg");
  CHECK(image.body == read_file(index->path(18)));
  CHECK(image.header("X-Content-Type-Options") == "nosniff");

  const auto thumb = service.handle(get("/api/thumbs/18"));
  REQUIRE(thumb.status == 200);
  CHECK(thumb.content_type == "image/jpeg");
  CHECK(thumb.body.substr(0, 3) == "\xFF\xD8\xFF");
  const Image small = decode_image_memory(reinterpret_cast<const std::uint8_t*>(thumb.body.data()), thumb.body.size());
  CHECK(std::max(small.width, small.height) == 200);
  CHECK(service.handle(get("/api/thumbs/18")).body == thumb.body);  // from the cache

  const auto info = service.handle(get("/api/info"));
  CHECK(info.status == 200);
  CHECK(info.body == index_info_json(*index, f.index_path, std::filesystem::file_size(f.index_path)));

  const json health = body_json(service.handle(get("/healthz")));
  CHECK(health["status"] == "ok");
  CHECK(health["images"] == 48);

  const auto page = service.handle(get("/"));
  CHECK(page.status == 200);
  CHECK(page.content_type == "text/html; charset=utf-8");
  const std::string csp = page.header("Content-Security-Policy");
  CHECK_THAT(csp, Catch::Contains("default-src 'none'"));
  const std::string nonce = csp.substr(csp.find("'nonce-") + 7, 24);
  CHECK_THAT(page.body, Catch::Contains("<script nonce=\"" + nonce + "\">"));
  CHECK(page.body.find("{{NONCE}}") == std::string::npos);
  CHECK(page.body.find("http://") == std::string::npos);   // nothing fetched from elsewhere
  CHECK(page.body.find("https://") == std::string::npos);
  CHECK(service.handle(get("/")).header("Content-Security-Policy") != csp);  // a fresh nonce each time

  const auto metrics = service.handle(get("/metrics"));
  CHECK(metrics.status == 200);
  CHECK_THAT(metrics.body, Catch::Contains("imgsearch_http_requests_total{endpoint=\"search_id\",status=\"200\"} 3"));
  CHECK_THAT(metrics.body, Catch::Contains("imgsearch_http_requests_total{endpoint=\"thumbs\",status=\"200\"} 2"));
  CHECK_THAT(metrics.body, Catch::Contains("imgsearch_http_request_duration_seconds_bucket{endpoint=\"images\",le=\"+Inf\"} 1"));
  CHECK_THAT(metrics.body, Catch::Contains("imgsearch_index_images 48"));
  CHECK_THAT(metrics.body, Catch::Contains("imgsearch_thumbnail_cache_hits_total 1"));
  CHECK_THAT(metrics.body, Catch::Contains("imgsearch_model_info{name=\"mobilenet_v2"));
}

TEST_CASE("serve: bad requests get JSON errors with the right status", "[serve]") {
  Fixture f;
  SearchService service(f.options());
  const std::string jpeg = read_file(test::corel("buses/300.jpg"));
  auto status_of = [&](const HttpRequest& r) {
    const auto resp = service.handle(r);
    INFO(r.method << " " << r.target << " -> " << resp.body);
    CHECK(resp.content_type == "application/json");
    CHECK(json::parse(resp.body).contains("error"));
    return resp.status;
  };
  CHECK(status_of(get("/api/search?id=48")) == 404);
  CHECK(status_of(get("/api/images/48")) == 404);
  CHECK(status_of(get("/api/thumbs/99999999999")) == 400);
  CHECK(status_of(get("/api/images/../../etc/passwd")) == 400);
  CHECK(status_of(get("/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd")) == 400);
  CHECK(status_of(get("/../../etc/passwd")) == 404);
  CHECK(status_of(get("/api/search?id=../../etc/passwd")) == 400);
  CHECK(status_of(get("/api/search?id=-1")) == 400);
  CHECK(status_of(get("/api/search?id=1&k=0")) == 400);
  CHECK(status_of(get("/api/search?id=1&k=100000")) == 400);
  CHECK(status_of(get("/api/search?id=1&k=%zz")) == 400);
  CHECK(status_of(get("/api/search")) == 400);
  CHECK(status_of(get("/api/nothing")) == 404);
  CHECK(status_of({"DELETE", "/api/search", {}, {}}) == 405);
  CHECK(status_of(post("/api/search", "", "image/jpeg")) == 400);
  CHECK(status_of(post("/api/search", jpeg.substr(0, jpeg.size() / 2), "image/jpeg")) == 415);
  CHECK(status_of(post("/api/search", std::string(5000, '\x42'), "application/octet-stream")) == 415);
  CHECK(status_of(post("/api/search", std::string(2u << 20, 'x'), "image/jpeg")) == 413);
  CHECK(status_of(post("/api/search", "{\"positive\": [1", "application/json")) == 400);
  CHECK(status_of(post("/api/search", R"({"positive": [1], "negative": [1]})", "application/json")) == 400);
  CHECK(status_of(post("/api/search", R"({"positive": [], "negative": [2]})", "application/json")) == 400);
  CHECK(status_of(post("/api/search", R"({"positive": [4800]})", "application/json")) == 404);
  CHECK(status_of(post("/api/search", R"({"positive": [1], "sql": 1})", "application/json")) == 400);
  CHECK(status_of(post("/api/search", "--b\r\nno", "multipart/form-data; boundary=b")) == 400);

  // The message of a broken image is the decoder's one-line reason, as the CLI prints it.
  const auto truncated = service.handle(post("/api/search", jpeg.substr(0, jpeg.size() / 2), "image/jpeg"));
  CHECK_THAT(json::parse(truncated.body)["error"].get<std::string>(), Catch::StartsWith("upload: "));

  // A 30000x30000 PNG header: refused as too large (413) before any pixel is allocated.
  std::string png = "\x89PNG\r\n\x1a\n";
  png += std::string("\0\0\0\x0dIHDR", 8);
  png += std::string("\0\0\x75\x30\0\0\x75\x30\x08\x02\0\0\0", 13);
  png += std::string("\0\0\0\0", 4);  // CRC (not checked before the size)
  CHECK(status_of(post("/api/search", png, "image/png")) == 413);
}

TEST_CASE("serve: query expansion per server (--qe) and per request (qe=), ranked like query --qe", "[serve]") {
  Fixture f;
  ServeOptions o = f.options();
  o.qe_k = 3;  // the server's default; the index stores none
  SearchService service(o);
  const auto index = service.index();
  auto model = load_model_for_index(test::mobilenet_path(), mobilenet_options(), index->model(), f.index_path);
  Searcher searcher(*index, *model);
  auto expected_for = [&](int qe_k, float alpha) {
    SearchOptions so;
    so.k = 12;
    so.expansion = QueryExpansion{qe_k, alpha};
    return searcher.search_by_id(18, so);
  };
  auto ids_of = [](const json& r) {
    std::vector<std::uint32_t> ids;
    for (const auto& hit : r["results"]) ids.push_back(hit["id"].get<std::uint32_t>());
    return ids;
  };
  auto ids_of_hits = [](const std::vector<SearchHit>& hits) {
    std::vector<std::uint32_t> ids;
    for (const auto& h : hits) ids.push_back(h.id);
    return ids;
  };
  const json by_server = body_json(service.handle(get("/api/search?id=18&k=12")));
  const json off = body_json(service.handle(get("/api/search?id=18&k=12&qe=0")));
  const json alpha1 = body_json(service.handle(get("/api/search?id=18&k=12&qe=3&qe_alpha=1.5")));
  const auto expected3 = expected_for(3, 3.0f);
  const auto expected0 = expected_for(0, 3.0f);
  CHECK(ids_of(by_server) == ids_of_hits(expected3));
  CHECK(ids_of(off) == ids_of_hits(expected0));
  CHECK(ids_of(alpha1) == ids_of_hits(expected_for(3, 1.5f)));
  // Expansion changes the scores (they are against the expanded query), not just the order.
  REQUIRE(by_server["results"].size() == 12);
  CHECK(off["results"][0]["score"].get<double>() == Approx(1.0).margin(1e-4));
  CHECK(by_server["results"][0]["score"].get<double>() < 0.999);
  for (std::size_t i = 0; i < 12; ++i)
    CHECK(by_server["results"][i]["score"].get<double>() == Approx(expected3[i].score).margin(1e-4));
  for (const char* bad : {"qe=-1", "qe=1001", "qe=x", "qe_alpha=nan", "qe_alpha=1e3", "qe_alpha=-2", "qe_alpha=101"}) {
    const auto r = service.handle(get(std::string("/api/search?id=18&") + bad));
    INFO(bad << " -> " << r.body);
    CHECK(r.status == 400);
  }
  ServeOptions wrong = f.options();
  wrong.qe_alpha = 1000;
  CHECK_THROWS_AS(SearchService(wrong), Error);
}

TEST_CASE("serve: a token guards /api and /metrics, not the page", "[serve]") {
  Fixture f;
  SearchService service(f.options("s3cret"));
  CHECK(service.handle(get("/api/search?id=1")).status == 401);
  CHECK(service.handle(get("/api/search?id=1")).header("WWW-Authenticate") == "Bearer");
  HttpRequest wrong = get("/api/search?id=1");
  wrong.headers.emplace_back("Authorization", "Bearer s3creT");
  CHECK(service.handle(wrong).status == 401);
  HttpRequest right = get("/api/thumbs/1");
  right.headers.emplace_back("authorization", "Bearer s3cret");
  CHECK(service.handle(right).status == 200);
  CHECK(service.handle(get("/metrics")).status == 401);
  CHECK(service.handle(get("/")).status == 200);
  CHECK(service.handle(get("/healthz")).status == 200);
}

TEST_CASE("serve: CORS when asked for, 503 when too many uploads wait", "[serve]") {
  Fixture f;
  ServeOptions o = f.options();
  o.cors_origin = "https://app.example";
  o.max_queued_uploads = 0;  // every upload finds the queue full
  SearchService service(o);
  const auto preflight = service.handle({"OPTIONS", "/api/search", {{"Origin", "https://app.example"}}, {}});
  CHECK(preflight.status == 204);
  CHECK(preflight.header("Access-Control-Allow-Origin") == "https://app.example");
  CHECK_THAT(preflight.header("Access-Control-Allow-Headers"), Catch::Contains("Authorization"));
  CHECK(service.handle(get("/api/info")).header("Access-Control-Allow-Origin") == "https://app.example");
  CHECK(service.handle(get("/")).header("Access-Control-Allow-Origin").empty());  // the page is same-origin only

  const auto busy = service.handle(post("/api/search", read_file(test::corel("buses/300.jpg")), "image/jpeg"));
  CHECK(busy.status == 503);
  CHECK(busy.header("Retry-After") == "1");
  CHECK_THAT(body_json(busy)["error"].get<std::string>(), Catch::Contains("busy"));
  CHECK(service.handle(get("/api/search?id=3")).status == 200);  // id searches never wait for the CNN
  CHECK_THAT(service.handle(get("/metrics")).body, Catch::Contains("imgsearch_overloaded_total 1"));

  SearchService plain(f.options());
  CHECK(plain.handle(get("/api/info")).header("Access-Control-Allow-Origin").empty());
}

TEST_CASE("serve: concurrent uploads are batched and each gets its own answer", "[serve]") {
  Fixture f;
  ServeOptions o = f.options();
  o.batch_wait = std::chrono::milliseconds(50);
  SearchService service(o);
  const char* files[] = {"buses/301.jpg", "dinosaurs/401.jpg", "horses/701.jpg", "flowers/601.jpg"};
  const int threads = 8;
  std::vector<std::string> top(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const auto r = service.handle(post("/api/search?k=1", read_file(test::corel(files[t % 4])), "image/jpeg"));
      if (r.status == 200) top[t] = json::parse(r.body)["results"][0]["path"];
    });
  for (auto& t : pool) t.join();
  for (int t = 0; t < threads; ++t) CHECK(top[t] == test::corel(files[t % 4]));
  const std::string metrics = service.handle(get("/metrics")).body;
  CHECK_THAT(metrics, Catch::Contains("imgsearch_inference_images_total 8"));
  // With 50 ms to gather companions, 8 simultaneous uploads need fewer than 8 passes.
  const auto at = metrics.find("\nimgsearch_inference_batches_total ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stoi(metrics.substr(at + 35)) < 8);
}

TEST_CASE("serve: a new index is swapped in, a corrupt one is refused and the old one kept", "[serve]") {
  Fixture f;
  SearchService service(f.options());
  CHECK_FALSE(service.reload_if_changed());  // unchanged
  const auto old_index = service.index();
  REQUIRE(old_index->size() == 48);

  // A smaller index (4 per class) atomically renamed over the old one.
  copy_of_index(f.tmp.file("next.index"), 4);
  std::filesystem::rename(f.tmp.file("next.index"), f.index_path);
  CHECK(service.reload_if_changed());
  CHECK(service.index()->size() == 32);
  CHECK(old_index->size() == 48);  // requests holding the old one still have it whole
  CHECK(body_json(service.handle(get("/healthz")))["reloads"] == 1);

  // Garbage written in place: the 32-image index keeps serving; health says why.
  const std::string good = read_file(f.index_path);
  {
    std::ofstream out(f.index_path, std::ios::binary | std::ios::trunc);
    out << good.substr(0, good.size() / 2);
  }
  CHECK_FALSE(service.reload_if_changed());
  CHECK(service.index()->size() == 32);
  const json health = body_json(service.handle(get("/healthz")));
  CHECK(health["status"] == "degraded");
  CHECK(health["reload_failures"] == 1);
  CHECK_THAT(health["reload_error"].get<std::string>(), Catch::Contains(f.index_path));
  CHECK(service.handle(get("/api/search?id=31")).status == 200);
  CHECK_THAT(service.handle(get("/metrics")).body, Catch::Contains("imgsearch_index_reload_failing 1"));
  CHECK_FALSE(service.reload_if_changed());  // the same bad file is not retried
  CHECK(body_json(service.handle(get("/healthz")))["reload_failures"] == 1);

  // A good file again clears the failure.
  {
    std::ofstream out(f.index_path, std::ios::binary | std::ios::trunc);
    out << good;
  }
  CHECK(service.reload_if_changed());
  CHECK(body_json(service.handle(get("/healthz")))["status"] == "ok");

  // An index made with another model cannot be searched with the one loaded: refused.
  copy_of_index(f.tmp.file("other.index"), 1, test::random_mobilenet_path());
  std::filesystem::rename(f.tmp.file("other.index"), f.index_path);
  CHECK_FALSE(service.reload_if_changed());
  CHECK(service.index()->size() == 32);
  CHECK_THAT(body_json(service.handle(get("/healthz")))["reload_error"].get<std::string>(),
             Catch::Contains("another model"));
}

TEST_CASE("serve request parsing: query strings, multipart, feedback JSON", "[serve]") {
  const auto p = parse_query_string("id=17&k=9&&name=a%20b+c&flag");
  REQUIRE(p.size() == 4);
  CHECK(*find_param(p, "id") == "17");
  CHECK(*find_param(p, "name") == "a b c");
  CHECK(*find_param(p, "flag") == "");
  CHECK_FALSE(find_param(p, "nope"));
  CHECK_THROWS_AS(parse_query_string("a=%4"), Error);
  CHECK_THROWS_AS(parse_query_string("a=%zz"), Error);
  CHECK(parse_int("0042", 0, 100, "k") == 42);
  for (const char* bad : {"", "+1", " 1", "1 ", "0x10", "101", "1e3", "-1", "99999999999999999999"})
    CHECK_THROWS_AS(parse_int(bad, 0, 100, "k"), Error);
  CHECK(header_parameter("multipart/form-data; charset=x; boundary=\"a b\"", "boundary") == "a b");
  CHECK(media_type(" Multipart/Form-Data ; boundary=x") == "multipart/form-data");

  const std::string body = multipart("image", std::string("a\r\nb\0c", 6), "B");  // the parts point into it
  const auto parts = parse_multipart(body, "B");
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].name == "note");
  CHECK(parts[0].data == "hello");
  CHECK(parts[1].name == "image");
  CHECK(parts[1].filename == "300.jpg");
  CHECK(parts[1].content_type == "image/jpeg");
  CHECK(parts[1].data == std::string_view("a\r\nb\0c", 6));
  CHECK_THROWS_AS(parse_multipart("--B\r\nContent-Disposition: form-data; name=x\r\n\r\nno end", "B"), Error);
  CHECK_THROWS_AS(parse_multipart("no boundary here", "B"), Error);

  const auto fb = parse_feedback_json(R"({"positive": [1, 2], "negative": [3], "k": 4})");
  CHECK(fb.positive == std::vector<std::uint32_t>{1, 2});
  CHECK(fb.negative == std::vector<std::uint32_t>{3});
  CHECK(*fb.k == 4);
  for (const char* bad : {"[]", "{\"positive\": 1}", "{\"positive\": [-1]}", "{\"positive\": [1.5]}",
                          "{\"positive\": [4294967296]}", "{\"k\": 0}", "{\"k\": \"9\"}", "{\"x\": 1}",
                          "{\"positive\": [[1]]}", "nope"})
    CHECK_THROWS_AS(parse_feedback_json(bad), Error);
}

// An R-MAC index: uploads are embedded the index's way (whole image, feature map) with no
// option saying so, concurrent uploads batched into one embed call each get their own
// vector, and every answer equals the query path's.
TEST_CASE("serve: an R-MAC index embeds uploads with its descriptor, batched or not", "[serve][descriptor]") {
  test::TempDir tmp;
  const std::string index_path = tmp.file("rmac.index");
  ModelOptions mo = mobilenet_options();
  mo.overrides.descriptor = Descriptor::parse("rmac:320");
  std::vector<std::string> files;
  for (const char* name : {"100000", "100001", "100100", "100101", "100200", "100201", "100300", "100301"})
    files.push_back(test::shared(std::string("datasets/holidays300/images/") + name + ".jpg"));
  {
    auto model = Model::load(test::mobilenet_path(), mo);
    ImageIndex index(model->output_dim(), {}, model->info());
    Searcher searcher(index, *model);
    std::vector<IndexEntry> entries;
    std::vector<float> vectors;
    for (const auto& file : files) {
      IndexEntry e;
      e.path = file;
      entries.push_back(e);
      const auto v = searcher.embed_file(file);
      vectors.insert(vectors.end(), v.begin(), v.end());
    }
    index.add(entries, vectors.data(), 1);
    save_index(index, index_path);
  }
  ServeOptions o;
  o.index_path = index_path;
  o.model_path = test::mobilenet_path();
  o.model = mobilenet_options();  // no descriptor: the index's applies
  o.max_upload_bytes = 1 << 20;
  o.batch_wait = std::chrono::milliseconds(200);  // the three uploads share a batch
  SearchService service(o);
  const auto index = service.index();
  CHECK(index->model().descriptor.name() == "rmac:320");

  auto model = load_model_for_index(test::mobilenet_path(), mobilenet_options(), index->model(), index_path);
  Searcher searcher(*index, *model);
  SearchOptions so;
  so.k = 4;
  std::vector<HttpResponse> responses(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] { responses[t] = service.handle(post("/api/search?k=4", read_file(files[2 * t]), "image/jpeg")); });
  for (auto& t : threads) t.join();
  std::vector<json> answers;
  for (const auto& r : responses) answers.push_back(body_json(r));
  for (int t = 0; t < 3; ++t) {
    const auto expected = searcher.search_file(files[2 * t], so);
    REQUIRE(answers[t]["results"].size() == 4);
    CHECK(answers[t]["results"][0]["path"] == files[2 * t]);
    CHECK(answers[t]["results"][0]["score"].get<double>() > 0.999);
    for (std::size_t i = 0; i < 4; ++i) {
      CHECK(answers[t]["results"][i]["id"] == expected[i].id);
      CHECK(answers[t]["results"][i]["score"].get<double>() == Approx(expected[i].score).margin(1e-4));
    }
  }
}
