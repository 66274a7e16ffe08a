// libFuzzer harness: read_features_file() on arbitrary bytes.
#include "fuzz_memfile.h"

#include <imgsearch/error.h>
#include <imgsearch/features_file.h>

#include <cmath>

namespace {

void load(const std::uint8_t* data, std::size_t size) {
  const fuzz::MemFile file(data, size);
  try {
    const imgsearch::FeatureSet f = imgsearch::read_features_file(file.path());
    // What it returned must be consistent: touch every row and path.
    if (f.vectors.size() != f.size() * static_cast<std::size_t>(f.dim)) std::abort();
    double sum = 0;
    for (std::size_t i = 0; i < f.size(); ++i) sum += f.row(i)[f.dim - 1] + f.paths[i].size();
    if (!std::isfinite(sum)) std::abort();
  } catch (const imgsearch::Error& e) {
    if (e.kind() != imgsearch::ErrorKind::Format || std::string(e.what()).rfind(file.path(), 0) != 0) {
      std::fprintf(stderr, "unexpected error: %s\n", e.what());
      std::abort();
    }
  }
}

}  // namespace

// Each input is loaded as it is, and again with its checksums repaired, so that the
// structural checks behind the checksums get fuzzed too.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  load(data, size);
  const std::vector<std::uint8_t> fixed = fuzz::with_fixed_checksums(data, size);
  if (!fixed.empty()) load(fixed.data(), fixed.size());
  return 0;
}
