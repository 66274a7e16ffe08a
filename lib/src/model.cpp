#include "imgsearch/model.h"

#include "imgsearch/error.h"
#include "imgsearch/file_scan.h"
#include "imgsearch/log.h"
#include "model_info_json.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>
#include <xxhash.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <thread>

namespace imgsearch {

namespace {

constexpr const char* kMetadataFile = "imgsearch.json";

std::string first_line(const std::string& text) {
  const auto nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

// Freezes the module (weights become constants, batch norms fold into convolutions) and,
// in fp32, applies optimize_for_inference (MKLDNN-prepacked convolutions). Measured on a
// Sapphire Rapids with AMX (docs/benchmarks.md): with channels_last input, bf16 runs
// fastest merely frozen, fp32 fastest optimised.
// int8 is merely frozen: its quantized convolutions are oneDNN kernels already.
void prepare_module(torch::jit::Module& module, Precision precision, const std::string& path) {
  if (module.parameters().size() == 0 && module.attributes().size() == 0) return;  // already frozen
  try {
    module = precision == Precision::Fp32 ? torch::jit::optimize_for_inference(module) : torch::jit::freeze(module);
  } catch (const std::exception& e) {
    throw_error(ErrorKind::Model, "{}: cannot prepare the model: {}", path, first_line(e.what()));
  }
}

}  // namespace

const char* to_string(Precision precision) {
  switch (precision) {
    case Precision::Auto: return "auto";
    case Precision::Fp32: return "fp32";
    case Precision::Bf16: return "bf16";
    case Precision::Int8: return "int8";
  }
  return "?";
}

Precision parse_precision(const std::string& text) {
  if (text == "auto") return Precision::Auto;
  if (text == "fp32") return Precision::Fp32;
  if (text == "bf16") return Precision::Bf16;
  if (text == "int8") return Precision::Int8;
  throw_error(ErrorKind::InvalidArgument, "unknown precision '{}' (expected auto, fp32, bf16 or int8)", text);
}

Precision resolve_precision(Precision requested, const ModelInfo& info) {
  if (requested != Precision::Auto) return requested;
  if (info.quantized == "int8") return Precision::Int8;
  return cpu_has_native_bf16() ? Precision::Bf16 : Precision::Fp32;
}

namespace {
// Whether the first CPU's /proc/cpuinfo flags hold any of `wanted`.
bool cpu_has_any_flag(std::initializer_list<const char*> wanted) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string w;
    while (words >> w)
      for (const char* f : wanted)
        if (w == f) return true;
    return false;
  }
  return false;
}
}  // namespace

bool cpu_has_native_bf16() { return cpu_has_any_flag({"avx512_bf16", "amx_bf16"}); }

bool cpu_runs_int8_faithfully() { return cpu_has_any_flag({"avx512_vnni", "avx_vnni", "amx_int8"}); }

std::string hash_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw_error(ErrorKind::Io, "{}: cannot open: {}", path, std::strerror(errno));
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(), &XXH3_freeState);
  XXH3_64bits_reset(state.get());
  std::vector<char> buffer(1 << 20);
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) XXH3_64bits_update(state.get(), buffer.data(), n);
  if (std::ferror(file.get())) throw_error(ErrorKind::Io, "{}: read error", path);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH3_64bits_digest(state.get())));
  return hex;
}

struct Model::Impl {
  torch::jit::Module module;
  torch::jit::Module features;  // the feature map, for R-MAC
  torch::Dtype dtype = torch::kFloat32;

  // An image tensor as the model takes it: colour order, dtype, channels_last (oneDNN's
  // native layout: ResNet50 bf16 runs about twice as fast with it, fp32 a quarter faster).
  torch::Tensor input(const float* data, int n, int height, int width, const ModelInfo& info) const {
    torch::Tensor x = torch::from_blob(const_cast<float*>(data), {n, 3, height, width}, torch::kFloat32);
    if (info.color == "BGR") x = x.flip(1);
    return x.to(torch::TensorOptions().dtype(dtype), false, false, at::MemoryFormat::ChannelsLast);
  }
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path, const ModelOptions& options) {
  std::unique_ptr<Model> model(new Model());
  ModelInfo& info = model->info_;
  info.path = absolute_path(path);
  {
    std::FILE* probe = std::fopen(path.c_str(), "rb");
    if (!probe) throw_error(ErrorKind::Model, "{}: cannot open model: {}", path, std::strerror(errno));
    std::fclose(probe);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
      throw_error(ErrorKind::Model, "{}: cannot open model: not a regular file", path);
  }
  info.content_hash = hash_file(path);

  const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Torch defaults to half the cores here; set it explicitly.
  torch::set_num_threads(threads);

  // Quantised weights are unpacked for the engine current at load time: oneDNN, the one
  // the exporter quantises for (Debian's LibTorch has oneDNN and QNNPACK, not FBGEMM).
  // Harmless for float models.
  {
    const auto& engines = at::globalContext().supportedQEngines();
    if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) != engines.end())
      at::globalContext().setQEngine(at::QEngine::ONEDNN);
  }
  torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
  try {
    model->impl_->module = torch::jit::load(path, torch::kCPU, extra);
  } catch (const std::exception& e) {
    throw_error(ErrorKind::Model, "{}: not a loadable TorchScript model: {}", path, first_line(e.what()));
  }

  const std::string& meta = extra[kMetadataFile];
  info.name = std::filesystem::path(path).stem().string();
  if (!meta.empty()) {
    try {
      detail::apply_model_metadata(nlohmann::json::parse(meta), info);
    } catch (const std::exception& e) {
      throw_error(ErrorKind::Model, "{}: bad embedded metadata: {}", path, e.what());
    }
    info.has_embedded_metadata = true;
  } else if (!options.overrides.mean || !options.overrides.std) {
    log(LogLevel::Warning, fmt::format("{}: the model carries no preprocessing metadata; assuming ImageNet mean/std. "
                                       "Pass --mean and --std, or make it self-describing with models/export.py import",
                                       path));
  }
  const ModelOverrides& o = options.overrides;
  if (o.mean) info.preprocess.mean = *o.mean;
  if (o.std) info.preprocess.std = *o.std;
  if (o.input_size) info.preprocess.input_size = *o.input_size;
  if (o.resize) info.preprocess.resize = *o.resize;
  else if (o.input_size && !info.has_embedded_metadata)
    info.preprocess.resize = static_cast<int>(std::lround(*o.input_size * 256.0 / 224.0));
  if (o.descriptor) info.descriptor = *o.descriptor;
  // R-MAC's vectors have as many dimensions as the feature map has channels, whatever the
  // model's own output: probed on first use.
  if (!info.descriptor.pooled()) info.output_dim = 0;
  detail::validate_model_info(info, path);

  Precision precision = resolve_precision(options.precision, info);
  if (precision == Precision::Int8 && info.quantized != "int8")
    throw_error(ErrorKind::Model,
                "{}: --precision int8 needs a quantised model file; make one with models/export.py ARCH "
                "--quantize int8 --calibrate DIR",
                path);
  if (precision != Precision::Int8 && info.quantized == "int8")
    throw_error(ErrorKind::Model, "{}: the model is quantised to int8 and runs only in int8 (--precision auto or int8), not {}",
                path, to_string(precision));
  if (precision == Precision::Int8 && at::globalContext().qEngine() != at::QEngine::ONEDNN)
    throw_error(ErrorKind::Model, "{}: int8 models need LibTorch's oneDNN quantized engine, which this LibTorch lacks",
                path);
  // Measured: on an AVX2-only CPU LibTorch 1.13's int8 kernels (oneDNN, and QNNPACK too)
  // give the real MobileNetV2 embeddings at cosine 0.24 to its fp32 output, and
  // reduce_range at quantisation does not help; with VNNI (AVX512-BF16 EPYC, Sapphire
  // Rapids) 0.95 and above. Refused rather than answered wrongly.
  if (precision == Precision::Int8 && !cpu_runs_int8_faithfully())
    throw_error(ErrorKind::Model,
                "{}: int8 models need a CPU with VNNI (AVX512-VNNI, AVX-VNNI or AMX); on this one LibTorch's int8 "
                "kernels give wrong embeddings. Use an fp32 export of the model (models/export.py without --quantize)",
                path);
  torch::jit::Module& module = model->impl_->module;
  module.eval();
  if (!info.descriptor.pooled() && !(module.hasattr("features") && module.attr("features").isModule()))
    throw_error(ErrorKind::Model,
                "{}: the R-MAC descriptor needs the model's last feature map, a `features` submodule (as torchvision's "
                "MobileNetV2, VGG and DenseNet have), which this model lacks",
                path);
  if (precision == Precision::Bf16 && module.parameters().size() == 0) {
    // A frozen module keeps its weights as constants, which .to() cannot convert.
    log(LogLevel::Warning, fmt::format("{}: frozen module, running in fp32", path));
    precision = Precision::Fp32;
  }
  try {
    // Weights stored as float16 (export.py import --fp16, the built-in model) halve the
    // file; they run as float32 or bf16 like any other model.
    bool half_weights = false;
    for (const auto& p : module.parameters()) half_weights = half_weights || p.scalar_type() == torch::kHalf;
    if (half_weights && precision != Precision::Bf16) module.to(torch::kFloat32);
    if (precision == Precision::Bf16) {
      module.to(torch::kBFloat16);
      model->impl_->dtype = torch::kBFloat16;
    }
  } catch (const std::exception& e) {
    throw_error(ErrorKind::Model, "{}: cannot prepare the model: {}", path, first_line(e.what()));
  }
  // Queries and extraction run the same prepared graph: in bf16 a graph with unfolded
  // batch norms gives features that differ from the frozen ones at cosine ~0.999.
  if (info.descriptor.pooled()) {
    prepare_module(module, precision, path);
  } else {
    model->impl_->features = module.attr("features").toModule();
    prepare_module(model->impl_->features, precision, path);
  }
  model->precision_ = precision;
  return model;
}

int Model::output_dim() {
  if (info_.output_dim == 0) {
    // R-MAC's dimension is the feature map's channels: a small plane tells it cheaply.
    const int s = info_.descriptor.pooled() ? info_.preprocess.input_size : 64;
    ModelInput blank;
    blank.planes.push_back({s, s});
    blank.data.assign(static_cast<std::size_t>(3) * s * s, 0.0f);
    embed({&blank}, nullptr);
  }
  return info_.output_dim;
}

int Model::min_decode_shorter_side() const {
  if (info_.descriptor.pooled()) return 2 * info_.preprocess.resize;
  // The scales are longer sides; twice the largest on the shorter side is more than
  // enough for any aspect ratio.
  return 2 * *std::max_element(info_.descriptor.scales.begin(), info_.descriptor.scales.end());
}

ModelInput Model::prepare(const Image& image) const {
  ModelInput in;
  if (info_.descriptor.pooled()) {
    const int s = info_.preprocess.input_size;
    in.planes.push_back({s, s});
    in.data.resize(static_cast<std::size_t>(3) * s * s);
    preprocess(image, info_.preprocess, in.data.data());
    return in;
  }
  for (int scale : info_.descriptor.scales) {
    ModelInput::Plane p;
    preprocess_whole(image, scale, info_.preprocess, in.data, p.height, p.width);
    in.planes.push_back(p);
  }
  return in;
}

void Model::embed(const std::vector<const ModelInput*>& inputs, float* output) {
  if (inputs.empty()) return;
  const int s = info_.preprocess.input_size;
  if (info_.descriptor.pooled()) {
    const std::size_t per = static_cast<std::size_t>(3) * s * s;
    std::vector<float> batch(per * inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const ModelInput& in = *inputs[i];
      IMGSEARCH_CHECK(in.planes.size() == 1 && in.planes[0].height == s && in.planes[0].width == s &&
                          in.data.size() == per,
                      ErrorKind::InvalidArgument, "{}: an input not prepared for this model", info_.path);
      std::copy(in.data.begin(), in.data.end(), batch.begin() + static_cast<std::ptrdiff_t>(i * per));
    }
    embed(batch.data(), static_cast<int>(inputs.size()), output);
    return;
  }
  // R-MAC: one image and scale a forward pass. Batching same-size photos was measured
  // slower (8 x 800 x 600 activations: 29.6 s against 18.2 s for 60 Holidays photos).
  std::vector<float> sum;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const ModelInput& in = *inputs[i];
    std::size_t offset = 0;
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (const ModelInput::Plane& p : in.planes) {
      const std::size_t floats = static_cast<std::size_t>(3) * p.height * p.width;
      IMGSEARCH_CHECK(p.height > 0 && p.width > 0 && offset + floats <= in.data.size(), ErrorKind::InvalidArgument,
                      "{}: an input not prepared for this model", info_.path);
      torch::Tensor map;
      try {
        c10::InferenceMode guard;
        torch::jit::IValue out = impl_->features.forward({impl_->input(in.data.data() + offset, 1, p.height, p.width, info_)});
        IMGSEARCH_CHECK(out.isTensor() && out.toTensor().dim() == 4 && out.toTensor().size(0) == 1, ErrorKind::Model,
                        "{}: the `features` submodule returned no feature map ([1, C, H, W])", info_.path);
        // Channels last, so that each position's channels are contiguous for the pooling.
        map = out.toTensor().to(torch::kFloat32).permute({0, 2, 3, 1}).contiguous();
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        throw_error(ErrorKind::Model, "{}: inference failed: {}", info_.path, first_line(e.what()));
      }
      const int channels = static_cast<int>(map.size(3));
      if (sum.empty()) sum.assign(static_cast<std::size_t>(channels), 0.0f);
      IMGSEARCH_CHECK(static_cast<std::size_t>(channels) == sum.size(), ErrorKind::Model,
                      "{}: the feature map's channels changed between scales", info_.path);
      add_rmac(map.data_ptr<float>(), static_cast<int>(map.size(1)), static_cast<int>(map.size(2)), channels,
               sum.data());
      offset += floats;
    }
    const int dim = static_cast<int>(sum.size());
    if (info_.output_dim == 0) info_.output_dim = dim;
    IMGSEARCH_CHECK(dim == info_.output_dim, ErrorKind::Model, "{}: the feature map has {} channels; expected {}",
                    info_.path, dim, info_.output_dim);
    double norm = 0;
    for (float v : sum) norm += static_cast<double>(v) * v;
    IMGSEARCH_CHECK(std::isfinite(norm), ErrorKind::Model, "{}: model produced NaN or infinity", info_.path);
    const float inv = static_cast<float>(1.0 / (std::sqrt(norm) + 1e-12));
    if (output)
      for (int k = 0; k < dim; ++k) output[i * dim + k] = sum[k] * inv;
  }
}

void Model::embed(const float* input, int n, float* output) {
  IMGSEARCH_CHECK(info_.descriptor.pooled(), ErrorKind::InvalidArgument,
                  "{}: the {} descriptor takes prepared inputs (Model::prepare)", info_.path, info_.descriptor.name());
  const int s = info_.preprocess.input_size;
  torch::Tensor result;
  try {
    c10::InferenceMode guard;
    torch::jit::IValue out = impl_->module.forward({impl_->input(input, n, s, s, info_)});
    IMGSEARCH_CHECK(out.isTensor(), ErrorKind::Model, "{}: the model returned {}, not a tensor", info_.path,
                    out.tagKind());
    result = out.toTensor();
    // Accept [N, D] and [N, D, 1, 1]; a real feature map needs pooling the model lacks.
    if (result.dim() == 4 && result.size(2) == 1 && result.size(3) == 1) result = result.flatten(1);
    IMGSEARCH_CHECK(result.dim() == 2 && result.size(0) == n && result.size(1) > 0, ErrorKind::Model,
                    "{}: model output has shape {}; expected [{}, D] (a pooled feature vector per image)", info_.path,
                    fmt::format("{}", fmt::join(result.sizes().vec(), "x")), n);
    result = torch::nn::functional::normalize(result.to(torch::kFloat32),
                                              torch::nn::functional::NormalizeFuncOptions().p(2).dim(1).eps(1e-12))
                 .contiguous();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw_error(ErrorKind::Model, "{}: inference failed: {}", info_.path, first_line(e.what()));
  }
  const int dim = static_cast<int>(result.size(1));
  if (info_.output_dim == 0) info_.output_dim = dim;
  IMGSEARCH_CHECK(dim == info_.output_dim, ErrorKind::Model, "{}: model output has {} dimensions; its metadata says {}",
                  info_.path, dim, info_.output_dim);
  IMGSEARCH_CHECK(torch::isfinite(result).all().item<bool>(), ErrorKind::Model, "{}: model produced NaN or infinity",
                  info_.path);
  if (output) std::memcpy(output, result.data_ptr<float>(), sizeof(float) * static_cast<std::size_t>(n) * dim);
}

}  // namespace imgsearch
