// Decoding the generated image corpus (tests/corpus/make_corpus.py): every good image
// decodes to what PIL decodes, every bad one is refused with its name and the reason,
// the pixel limit holds, and EXIF orientation is applied.
#include "test_helpers.h"

#include <imgsearch/error.h>
#include <imgsearch/file_scan.h>
#include <imgsearch/image.h>
#include <imgsearch/model.h>
#include <imgsearch/preprocess.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

using namespace imgsearch;

namespace {

struct Corpus {
  test::TempDir dir;
  std::vector<std::string> good;                           // relative to images/
  std::vector<std::pair<std::string, std::string>> bad;    // name, reason regex

  Corpus() {
    const std::string cmd = "/usr/bin/python3 '" + test::source("tests/corpus/make_corpus.py") + "' '" +
                            dir.path.string() + "' --no-special --photos '" + test::shared("datasets/corel1k/images") +
                            "'";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make_corpus.py failed: " + cmd);
    std::ifstream in(dir.file("manifest.tsv"));
    for (std::string line; std::getline(in, line);) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      for (std::string part; std::getline(ss, part, '\t');) f.push_back(part);
      if (f[0] == "good") good.push_back(f[1]);
      if (f[0] == "bad") bad.emplace_back(f[1], f[2]);
    }
  }
  std::string image(const std::string& name) const { return dir.file("images/" + name); }
  std::string ref(const std::string& name) const {
    return dir.file("ref/" + std::regex_replace(name, std::regex("/"), "__") + ".ppm");
  }
};

const Corpus& corpus() {
  static const Corpus c;  // each test case runs in its own process: generated once there
  return c;
}

Image read_ppm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string magic;
  int maxval = 0;
  Image img;
  in >> magic >> img.width >> img.height >> maxval;
  in.get();
  if (magic != "P6" || maxval != 255) throw std::runtime_error(path + ": not a P6 PPM");
  img.pixels.resize(std::size_t(img.width) * img.height * 3);
  in.read(reinterpret_cast<char*>(img.pixels.data()), static_cast<std::streamsize>(img.pixels.size()));
  if (!in) throw std::runtime_error(path + ": truncated");
  return img;
}

double mean_abs_diff(const Image& a, const Image& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return sum / double(a.pixels.size());
}

}  // namespace

TEST_CASE("every good image in the corpus decodes like PIL decodes it", "[image][corpus]") {
  const Corpus& c = corpus();
  REQUIRE(c.good.size() >= 28);
  for (const std::string& name : c.good) {
    INFO(name);
    const Image got = decode_image_file(c.image(name));
    const Image want = read_ppm(c.ref(name));
    REQUIRE(got.width == want.width);
    REQUIRE(got.height == want.height);
    REQUIRE(got.pixels.size() == std::size_t(got.width) * got.height * 3);
    const double mad = mean_abs_diff(got, want);
    INFO("mean absolute difference " << mad);
    // libjpeg-turbo, libwebp and zlib give PIL's pixels exactly (all of them do, with
    // Debian bookworm's Pillow); the CMYK-to-RGB rounding has changed between Pillow
    // versions, so it gets some slack.
    CHECK(mad <= (name == "cmyk.jpg" ? 1.0 : 0.01));
  }
}

TEST_CASE("every bad file in the corpus is refused with its name and the reason", "[image][corpus]") {
  const Corpus& c = corpus();
  REQUIRE(c.bad.size() >= 25);
  for (const auto& [name, reason] : c.bad) {
    INFO(name << " should be refused with /" << reason << "/");
    const std::string path = c.image(name);
    std::string message;
    try {
      const Image img = decode_image_file(path);
      FAIL("decoded as " << img.width << "x" << img.height);
    } catch (const Error& e) {
      message = e.what();
    }
    INFO("message: " << message);
    CHECK(message.rfind(path + ": ", 0) == 0);
    CHECK(std::regex_search(message, std::regex(reason)));
    CHECK(message.find('\n') == std::string::npos);
  }
}

TEST_CASE("the pixel limit is read from the header and configurable", "[image][corpus]") {
  const Corpus& c = corpus();
  // Every decoder path: libjpeg-turbo, libwebp, stb (PNG, GIF, BMP).
  for (const char* name : {"plain.jpg", "lossy.webp", "rgb.png", "animated.gif", "photo.bmp"}) {
    INFO(name);
    const Image img = decode_image_file(c.image(name));
    DecodeOptions at_limit;
    at_limit.max_pixels = std::uint64_t(img.width) * img.height;
    CHECK(decode_image_file(c.image(name), at_limit).width == img.width);
    DecodeOptions below;
    below.max_pixels = at_limit.max_pixels - 1;
    CHECK_THROWS_WITH(decode_image_file(c.image(name), below), Catch::Contains("pixels exceeds the limit of"));
  }
  // The bombs declare 900 and 268 million pixels: refused by the default limit of 100
  // million, and only by the limit (raising it lets the decoder try, and fail on the
  // missing data instead).
  CHECK_THROWS_WITH(decode_image_file(c.image("bomb_30000x30000.png")),
                    Catch::Contains("30000x30000 pixels exceeds the limit of 100000000"));
  CHECK_THROWS_WITH(decode_image_file(c.image("bomb_30000x30000.jpg")),
                    Catch::Contains("30000x30000 pixels exceeds the limit of 100000000"));
  CHECK_THROWS_WITH(decode_image_file(c.image("bomb_16384x16384.webp")),
                    Catch::Contains("16384x16384 pixels exceeds the limit of 100000000"));
}

TEST_CASE("EXIF orientations 1-8 all give the upright photo and the same embedding", "[image][exif][model]") {
  const Corpus& c = corpus();
  const Image upright = read_ppm(c.dir.file("exif/upright.ppm"));
  ModelOptions options;
  options.overrides.mean = {0.5f, 0.5f, 0.5f};
  options.overrides.std = {0.5f, 0.5f, 0.5f};
  options.precision = Precision::Fp32;
  auto model = Model::load(test::mobilenet_path(), options);
  const auto& cfg = model->info().preprocess;
  std::vector<float> input(3 * std::size_t(cfg.input_size) * cfg.input_size);
  std::vector<std::vector<float>> embeddings;
  std::vector<std::vector<float>> unrotated;
  for (int k = 1; k <= 8; ++k) {
    const std::string path = c.dir.file("exif/orient" + std::to_string(k) + ".jpg");
    INFO(path);
    const Image img = decode_image_file(path);
    REQUIRE(img.width == upright.width);
    REQUIRE(img.height == upright.height);
    // The same pixels as PIL's ImageOps.exif_transpose, and close to the upright original
    // (each file is a separate JPEG encoding of the transformed photo).
    CHECK(mean_abs_diff(img, read_ppm(c.dir.file("exif/orient" + std::to_string(k) + ".ppm"))) <= 0.01);
    const double to_upright = mean_abs_diff(img, upright);
    INFO("mean absolute difference to the upright photo " << to_upright);
    CHECK(to_upright < 2.0);
    preprocess(img, cfg, input.data());
    embeddings.emplace_back(1280);
    model->embed(input.data(), 1, embeddings.back().data());

    // Without the tag applied the test must see a difference: it can fail.
    DecodeOptions raw;
    raw.apply_exif_orientation = false;
    const Image stored = decode_image_file(path, raw);
    if (k >= 5) {
      CHECK(stored.width == upright.height);
    } else if (k > 1) {
      CHECK(mean_abs_diff(stored, upright) > 20.0);
    }
    preprocess(stored, cfg, input.data());
    unrotated.emplace_back(1280);
    model->embed(input.data(), 1, unrotated.back().data());
  }
  for (int k = 2; k <= 8; ++k) {
    const double cos = test::cosine(embeddings[0].data(), embeddings[k - 1].data(), 1280);
    const double cos_raw = test::cosine(unrotated[0].data(), unrotated[k - 1].data(), 1280);
    INFO("orientation " << k << ": cosine " << cos << " with the tag applied, " << cos_raw << " without");
    CHECK(cos >= 0.99);
    CHECK(cos_raw < cos);
  }
}

TEST_CASE("a FIFO, a directory and a symlink loop are refused without hanging", "[image]") {
  test::TempDir dir;
  REQUIRE(mkfifo(dir.file("fifo.jpg").c_str(), 0644) == 0);
  CHECK_THROWS_WITH(decode_image_file(dir.file("fifo.jpg")), Catch::Contains("not a regular file"));
  std::filesystem::create_directory(dir.file("x.jpg"));
  CHECK_THROWS_WITH(decode_image_file(dir.file("x.jpg")), Catch::Contains("is a directory"));
  std::filesystem::create_symlink("loop.jpg", dir.file("loop.jpg"));
  CHECK_THROWS_WITH(decode_image_file(dir.file("loop.jpg")), Catch::Contains("symbolic links"));
}

TEST_CASE("WebP is an image extension", "[image]") {
  CHECK(has_image_extension("a/b.webp"));
  CHECK(has_image_extension("a/B.WEBP"));
  CHECK(has_image_extension("x.JPG"));
  CHECK_FALSE(has_image_extension("a.jpg/readme"));
  CHECK_FALSE(has_image_extension("notes.txt"));
}

TEST_CASE("scanning survives symlink loops and odd names, and keeps going past problems", "[scan]") {
  test::TempDir dir;
  namespace fs = std::filesystem;
  fs::create_directories(dir.file("a/b"));
  fs::create_directories(dir.file("x.jpg"));
  fs::create_directories(dir.file(".hidden"));
  for (const char* f : {"a/one.jpg", "a/b/two.png", "x.jpg/three.webp", "with space.jpg", "ünïcødé 写真.jpg",
                        "-dash.jpg", ".hidden/no.jpg", ".no.jpg", "notes.txt"})
    std::ofstream(dir.file(f)) << "x";
  fs::create_directory_symlink("..", dir.file("a/b/up"));  // a cycle
  fs::create_directory_symlink(dir.path, dir.file("a/self"));
  fs::create_symlink("loop.jpg", dir.file("loop.jpg"));
  fs::create_symlink("a/one.jpg", dir.file("link.jpg"));

  const ScanResult r = collect_image_files({dir.path.string()});
  std::vector<std::string> names;
  for (const std::string& f : r.files) names.push_back(f.substr(dir.path.string().size() + 1));
  const std::vector<std::string> want = {"-dash.jpg", "a/b/two.png", "a/one.jpg", "link.jpg", "loop.jpg",
                                         "with space.jpg", "x.jpg/three.webp", "ünïcødé 写真.jpg"};
  CHECK(names == want);
  CHECK(r.problems.empty());

  // A missing input is a problem; the other inputs are still scanned.
  const ScanResult r2 = collect_image_files({dir.file("missing"), dir.file("a")});
  REQUIRE(r2.problems.size() == 1);
  CHECK(r2.problems[0].path == dir.file("missing"));
  CHECK(r2.files.size() == 2);

  // An unreadable directory is a problem and its siblings are scanned; only testable
  // where permissions bite (not as root: tests/cli/test_bad_images.sh covers it there).
  fs::permissions(dir.file("a/b"), fs::perms::none);
  if (::access(dir.file("a/b").c_str(), R_OK) != 0) {
    const ScanResult r3 = collect_image_files({dir.path.string()});
    REQUIRE(r3.problems.size() == 1);
    CHECK(r3.problems[0].path == dir.file("a/b"));
    CHECK(r3.files.size() == want.size() - 1);
  }
  fs::permissions(dir.file("a/b"), fs::perms::owner_all);
}
