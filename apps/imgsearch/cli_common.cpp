#include "cli_common.h"

#include <imgsearch/error.h>
#include <imgsearch/file_scan.h>
#include <imgsearch/log.h>
#include <imgsearch/searcher.h>

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <malloc.h>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <unistd.h>

namespace imgsearch::cli {

namespace {

std::array<float, 3> parse_triple(const std::string& text, const char* option) {
  std::array<float, 3> v{};
  std::istringstream in(text);
  std::string part;
  int i = 0;
  while (std::getline(in, part, ',')) {
    if (i >= 3) break;
    try {
      std::size_t used = 0;
      v[i] = std::stof(part, &used);
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw_error(ErrorKind::InvalidArgument, "{}: expected three numbers like 0.5,0.5,0.5, got '{}'", option, text);
    }
    ++i;
  }
  if (i != 3 || in.rdbuf()->in_avail() > 0)
    throw_error(ErrorKind::InvalidArgument, "{}: expected three numbers like 0.5,0.5,0.5, got '{}'", option, text);
  return v;
}

std::atomic<bool> g_interrupted{false};

void on_signal(int) { g_interrupted = true; }

}  // namespace

void ModelArgs::add_to(CLI::App& app) {
  app.add_option("-m,--model", model, "TorchScript model file (default: $IMGSEARCH_MODEL, the index's model, "
                                       "then --print-default-model: the built-in MobileNetV2 unless you exported one)");
  app.add_option("--mean", mean, "per-channel mean R,G,B, for models without embedded metadata");
  app.add_option("--std", std, "per-channel std R,G,B, for models without embedded metadata");
  app.add_option("--input-size", input_size, "crop size the model expects (default 224)")->check(CLI::Range(16, 4096));
  app.add_option("--resize", resize, "shorter side is resized to this before the crop (default 256)")
      ->check(CLI::Range(16, 8192));
  app.add_option("--descriptor", descriptor,
                 "how an image becomes a vector: pooled (the model's output on a centre crop; the default) or rmac "
                 "(regional max pooling of its feature map on the whole image at 448, 640 and 800 pixels; "
                 "rmac:S1,S2,... for other scales): better for the same object or scene, worse for categories, "
                 "about 8x slower to extract. An index keeps the descriptor it was built with");
  app.add_option("--precision", precision, "inference precision: auto (int8 for a quantised model file, else bf16 where the CPU has it "
                 "natively, else fp32), fp32, bf16, int8 (quantised model files only)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "int8"}));
  app.add_option("--threads", threads, "worker and inference threads (default: all cores)")->check(CLI::Range(0, 1024));
  app.add_option("--max-pixels", max_pixels, "refuse images with more pixels than this (default 100000000)")
      ->check(CLI::PositiveNumber);
}

ModelOverrides ModelArgs::overrides() const {
  ModelOverrides o;
  if (!mean.empty()) o.mean = parse_triple(mean, "--mean");
  if (!std.empty()) o.std = parse_triple(std, "--std");
  if (input_size > 0) o.input_size = input_size;
  if (resize > 0) o.resize = resize;
  if (!descriptor.empty()) o.descriptor = Descriptor::parse(descriptor);
  return o;
}

ModelOptions ModelArgs::options() const {
  ModelOptions o;
  o.overrides = overrides();
  o.precision = parse_precision(precision);
  o.threads = threads;
  return o;
}

DecodeOptions ModelArgs::decode() const {
  DecodeOptions d;
  d.max_pixels = max_pixels;
  return d;
}

std::string exported_default_model_path() {
  std::string base;
  if (const char* home = std::getenv("IMGSEARCH_HOME"); home && *home) {
    base = home;
  } else if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    base = std::string(xdg) + "/imgsearch";
  } else if (const char* user_home = std::getenv("HOME"); user_home && *user_home) {
    base = std::string(user_home) + "/.local/share/imgsearch";
  } else {
    base = ".imgsearch";
  }
  return base + "/models/default.pt";
}

std::string builtin_model_path() {
  // Beside the binary: <prefix>/bin/imgsearch and <prefix>/share/imgsearch/models/ in an
  // installed tree, an extracted .deb and the build tree alike (build/bin, build/share).
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto candidate = exe.parent_path().parent_path() / "share/imgsearch/models" / kBuiltinModelFile;
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate.string();
  }
  return std::string(IMGSEARCH_INSTALL_DATADIR) + "/imgsearch/models/" + kBuiltinModelFile;
}

std::string default_model_path() {
  const std::string exported = exported_default_model_path();
  return ::access(exported.c_str(), R_OK) == 0 ? exported : builtin_model_path();
}

std::string resolve_model_path(const ModelArgs& args, const ModelInfo* index_model) {
  if (!args.model.empty()) return args.model;
  if (const char* env = std::getenv("IMGSEARCH_MODEL"); env && *env) return env;
  if (index_model && !index_model->path.empty()) {
    // An index built with the built-in model keeps working when imgsearch moves (a build
    // tree, then an installed package): the same file is found by its content hash.
    if (::access(index_model->path.c_str(), R_OK) != 0 && !index_model->content_hash.empty()) {
      const std::string builtin = builtin_model_path();
      if (::access(builtin.c_str(), R_OK) == 0 && hash_file(builtin) == index_model->content_hash) return builtin;
    }
    return index_model->path;
  }
  const std::string model = default_model_path();
  if (::access(model.c_str(), R_OK) != 0)
    throw_error(ErrorKind::Model,
                "no model given and the built-in model {} is missing (a broken installation?); pass -m MODEL.pt or "
                "set IMGSEARCH_MODEL",
                model);
  return model;
}

std::string resolve_index_path(const std::string& option) {
  if (!option.empty()) return option;
  if (const char* env = std::getenv("IMGSEARCH_INDEX"); env && *env) return env;
  return "imgsearch.index";
}

std::size_t auto_int8_from() {
  const char* env = std::getenv("IMGSEARCH_INT8_FROM");
  if (!env || !*env) return kDefaultInt8FromImages;
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(env, &end, 10);
  if (*end || errno || env[0] == '-' || n < 1)
    throw_error(ErrorKind::InvalidArgument, "IMGSEARCH_INT8_FROM: expected a number of images (1 or more), got '{}'",
                env);
  return static_cast<std::size_t>(n);
}

void tune_allocator_for(const ModelInfo& model) {
  if (model.descriptor.pooled()) return;
  // R-MAC runs the CNN on whole images at up to 800 pixels: activations of 15-50 MB that
  // glibc would mmap and unmap at every layer (above its 32 MB dynamic limit), zeroing
  // fresh pages each time. Kept in the heap instead, Holidays extracts 1.45x faster
  // (sys time 13 s -> 1.4 s for 60 images). Only then: a pooled model's buffers are small,
  // and a server should hand big freed blocks back.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

std::unique_ptr<Model> load_model(const ModelArgs& args) {
  auto model = Model::load(resolve_model_path(args, nullptr), args.options());
  tune_allocator_for(model->info());
  return model;
}

std::unique_ptr<Model> load_model_for_index(const ModelArgs& args, const ModelInfo& index_model,
                                            const std::string& index_path) {
  auto model = imgsearch::load_model_for_index(resolve_model_path(args, &index_model), args.options(), index_model,
                                               index_path);
  tune_allocator_for(model->info());
  return model;
}

std::vector<std::string> expand_stdin(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  bool stdin_read = false;
  for (const std::string& input : inputs) {
    if (input != "-") {
      out.push_back(input);
      continue;
    }
    if (stdin_read) continue;
    stdin_read = true;
    std::string line;
    while (std::getline(std::cin, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) out.push_back(line);
    }
  }
  return out;
}

void report_problem(const std::string& message) { std::fprintf(stderr, "imgsearch: %s\n", message.c_str()); }
void warn(const std::string& message) { std::fprintf(stderr, "imgsearch: warning: %s\n", message.c_str()); }

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

const std::atomic<bool>& interrupted() { return g_interrupted; }

Progress::Progress(std::string label, std::size_t total)
    : label_(std::move(label)), total_(total), enabled_(::isatty(STDERR_FILENO) == 1 && total > 0),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::tick(std::size_t n) {
  done_ += n;
  draw(done_ == total_);
}

void Progress::draw(bool force) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? done_ / seconds : 0;
  const double eta = rate > 0 ? (total_ - done_) / rate : 0;
  const int width = 30;
  const int filled = static_cast<int>(width * done_ / total_);
  std::fprintf(stderr, "\r%s [%s%s] %zu/%zu %.1f img/s ETA %.0fs  ", label_.c_str(), std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(), done_, total_, rate, eta);
  std::fflush(stderr);
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  if (done_ != total_) draw(true);  // tick() already drew the final state otherwise
  std::fprintf(stderr, "\n");
  finished_ = true;
}

std::size_t run_extraction(Model& model, const std::vector<std::string>& files, const ModelArgs& args, int batch_size,
                           const std::function<void(const ExtractResult&)>& on_vector) {
  ExtractOptions options;
  options.threads = args.threads;
  options.batch_size = batch_size;
  options.decode = args.decode();
  options.cancel = &interrupted();
  std::size_t failures = 0;
  Progress progress("extracting", files.size());
  extract_features(model, files, options, [&](const ExtractResult& r) {
    if (r.ok) {
      on_vector(r);
    } else {
      ++failures;
      // The decoder names the file in its message; say it once.
      report_problem(r.error.rfind(r.path, 0) == 0 ? r.error : r.path + ": " + r.error);
    }
    progress.tick();
  });
  progress.finish();
  return failures;
}

}  // namespace imgsearch::cli
