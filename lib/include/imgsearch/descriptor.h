// How an image becomes one vector. The default takes the model's own output on a centre
// crop (for an ImageNet CNN: average pooling of its last feature map). R-MAC instead runs
// the model's feature map (its `features` submodule) on the whole image at several
// scales and max-pools regions of it (Tolias et al., "Particular object retrieval with
// integral max-pooling of CNN activations", 2016): better at finding the same object or
// scene (Holidays, UKBench), worse at categories and edited copies (docs/eval.md), and
// 19x the pixels of the default for a 4:3 photo at the default scales (8x slower).
#pragma once

#include <string>
#include <vector>

namespace imgsearch {

enum class DescriptorKind { Pooled, Rmac };

struct Descriptor {
  DescriptorKind kind = DescriptorKind::Pooled;
  std::vector<int> scales;  // R-MAC: the whole image's longer side at each scale, in pixels

  bool pooled() const { return kind == DescriptorKind::Pooled; }
  // "pooled", or "rmac:448,640,800": what parse() reads back.
  std::string name() const;
  // "pooled", "rmac" (the default scales) or "rmac:S1,S2,..." (16..2048 each, at most 8).
  // Throws Error(InvalidArgument) naming what is wrong.
  static Descriptor parse(const std::string& text);
  bool operator==(const Descriptor& o) const { return kind == o.kind && scales == o.scales; }
  bool operator!=(const Descriptor& o) const { return !(*this == o); }
};

// The scales measured best on Holidays and UKBench (docs/eval.md).
std::vector<int> default_rmac_scales();

// R-MAC's square regions over an H x W feature map: `levels` levels of overlapping
// squares (about 40 % overlap), as in the authors' code.
struct RmacRegion {
  int y = 0, x = 0, size = 0;
};
std::vector<RmacRegion> rmac_regions(int height, int width, int levels = 3);

// Adds the R-MAC of one feature map (height x width x channels floats, channels last) to
// `sum` (`channels` floats): each region max-pooled and L2-normalised, the regions summed,
// the sum L2-normalised. A multi-scale descriptor is the normalised sum of these.
void add_rmac(const float* map, int height, int width, int channels, float* sum);

}  // namespace imgsearch
