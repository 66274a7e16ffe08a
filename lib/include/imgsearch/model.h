// A TorchScript image model that maps preprocessed images to L2-normalised embeddings.
// A TorchScript file can run arbitrary code when loaded: load only models you trust.
#pragma once

#include "imgsearch/descriptor.h"
#include "imgsearch/image.h"
#include "imgsearch/preprocess.h"

#include <array>
#include <vector>
#include <memory>
#include <optional>
#include <string>

namespace imgsearch {

// What a model is and how to feed it. Exported models carry it inside the file
// (extra file "imgsearch.json", written by models/export.py); foreign TorchScript files
// get it from ModelOverrides.
struct ModelInfo {
  std::string name;          // e.g. "resnet50"
  std::string weights;       // "imagenet", "random", "file:<name>", "imported", "" if unknown
  int output_dim = 0;        // 0 until known (foreign models are probed on first use)
  PreprocessConfig preprocess;
  std::string color = "RGB";
  std::string quantized;     // "int8" for a file models/export.py --quantize int8 wrote, else ""
  Descriptor descriptor;     // how an image becomes a vector (descriptor.h); not the model file's
  bool has_embedded_metadata = false;

  std::string path;          // the file it was loaded from (absolute)
  std::string content_hash;  // XXH3-64 of the file, 16 hex digits

  std::string to_json() const;  // compact JSON; the keys of docs/formats.md
  static ModelInfo from_json(const std::string& json);  // throws Error(Format)
};

// Settings given on the command line; they win over embedded metadata.
struct ModelOverrides {
  std::optional<std::array<float, 3>> mean;
  std::optional<std::array<float, 3>> std;
  std::optional<int> input_size;
  std::optional<int> resize;
  std::optional<Descriptor> descriptor;
  bool any() const { return mean || std || input_size || resize || descriptor; }
};

// Int8 runs a quantised model file (models/export.py --quantize int8) on LibTorch's oneDNN
// quantized engine; a quantised file runs only in int8, an fp32 file never does.
enum class Precision { Auto, Fp32, Bf16, Int8 };
const char* to_string(Precision precision);
Precision parse_precision(const std::string& text);  // "auto", "fp32", "bf16", "int8"
// Whether this CPU runs bf16 natively (AVX512-BF16 or AMX); Auto picks bf16 only then.
bool cpu_has_native_bf16();
// Whether int8 models run correctly here: a CPU with VNNI (AVX512-VNNI, AVX-VNNI, AMX).
// Without it LibTorch's int8 kernels give wrong embeddings, and Model::load refuses them.
bool cpu_runs_int8_faithfully();
// What Auto resolves to: int8 for a quantised model, else bf16 where native, else fp32.
Precision resolve_precision(Precision requested, const ModelInfo& info);

struct ModelOptions {
  ModelOverrides overrides;
  Precision precision = Precision::Auto;
  int threads = 0;  // torch intra-op threads; 0 = all cores
};

// One image made ready for the model (Model::prepare): one plane for the pooled descriptor
// (the centre crop), one per scale for R-MAC (the whole image at that size).
struct ModelInput {
  struct Plane {
    int height = 0, width = 0;
  };
  std::vector<Plane> planes;
  std::vector<float> data;  // each plane's 3 x height x width floats (CHW), one after another
};

class Model {
 public:
  // Throws Error(Model) naming the file when it is missing, truncated or not TorchScript.
  static std::unique_ptr<Model> load(const std::string& path, const ModelOptions& options = {});
  ~Model();

  const ModelInfo& info() const { return info_; }
  Precision precision() const { return precision_; }
  int output_dim();  // runs the model once on a blank image when the metadata lacks it

  // An image as info().descriptor feeds it to the model. Thread-safe (no model state).
  ModelInput prepare(const Image& image) const;
  // The vectors of prepared images: inputs.size() * output_dim() floats, each row
  // L2-normalised. Pooled inputs run as one batch; R-MAC runs each scale of each image
  // (sizes differ). Not thread-safe.
  void embed(const std::vector<const ModelInput*>& inputs, float* output);
  // The pooled descriptor's batch: n preprocessed images, n * 3 * S * S floats
  // (S = info().preprocess.input_size). Not thread-safe.
  void embed(const float* input, int n, float* output);
  // The smallest shorter side a JPEG may be decoded at (a reduced DCT scale) while the
  // vectors stay within cosine 0.999 of a full decode: twice what the model resizes to.
  int min_decode_shorter_side() const;

 private:
  Model();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ModelInfo info_;
  Precision precision_ = Precision::Fp32;
};

// XXH3-64 of a file's contents, 16 lowercase hex digits. Throws Error(Io).
std::string hash_file(const std::string& path);

}  // namespace imgsearch
