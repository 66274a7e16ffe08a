// LDA with shrinkage on LibTorch's linear algebra (double precision, CPU).
#include "imgsearch/learn.h"

#include "imgsearch/colour_histogram.h"
#include "imgsearch/error.h"

#include <torch/torch.h>

#include <chrono>
#include <cstring>
#include <cmath>
#include <thread>
#include <unordered_map>

namespace imgsearch {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

LearnReport learn_projection(ImageIndex& index, const Labels& labels, const LearnOptions& options) {
  const std::size_t n = index.size();
  const int model_dim = index.model_dim();
  const int colour_bins = options.colour ? kColourBins : 0;
  const int dim_in = model_dim + colour_bins;
  IMGSEARCH_CHECK(labels.size() == n, ErrorKind::InvalidArgument, "learn: {} labels for {} images", labels.size(), n);
  IMGSEARCH_CHECK(options.dim >= 1, ErrorKind::InvalidArgument, "learn: --dim must be at least 1, not {}", options.dim);
  IMGSEARCH_CHECK(options.shrinkage >= 0 && options.shrinkage <= 1, ErrorKind::InvalidArgument,
                  "learn: shrinkage must be in 0..1, not {}", options.shrinkage);
  IMGSEARCH_CHECK(options.holdout >= 0 && options.holdout < 1, ErrorKind::InvalidArgument,
                  "learn: --holdout must be in [0, 1), not {}", options.holdout);
  IMGSEARCH_CHECK(!options.colour || (std::isfinite(options.colour_weight) && options.colour_weight > 0 &&
                                      options.colour_weight <= 100),
                  ErrorKind::InvalidArgument, "learn: the colour weight must be in (0, 100], not {}", options.colour_weight);
  const auto start = std::chrono::steady_clock::now();
  LearnReport report;
  report.images = n;
  report.in_dim = dim_in;
  report.colour_bins = colour_bins;
  report.vector_bytes_before = static_cast<std::uint64_t>(n) * index.dim() * sizeof(float);

  // The fitting set: labelled, not held out; labels with a single image there carry no
  // within-class information and are dropped.
  std::unordered_map<std::string, std::size_t> count;
  std::vector<std::uint32_t> candidates;
  for (std::size_t i = 0; i < n; ++i) {
    if (labels[i].empty()) continue;
    ++report.labelled;
    if (options.holdout > 0 && is_held_out(index.entry(i).path, options.holdout, options.seed)) {
      ++report.held_out;
      continue;
    }
    candidates.push_back(static_cast<std::uint32_t>(i));
    ++count[labels[i]];
  }
  std::unordered_map<std::string, int> class_of;
  std::vector<std::uint32_t> fit;
  std::vector<std::int64_t> cls;
  for (std::uint32_t i : candidates) {
    if (count[labels[i]] < 2) continue;
    auto [it, inserted] = class_of.emplace(labels[i], static_cast<int>(class_of.size()));
    fit.push_back(i);
    cls.push_back(it->second);
  }
  if (options.colour) {
    std::size_t without = 0;
    for (std::uint32_t i : fit) without += index.colour(i) == nullptr;
    IMGSEARCH_CHECK(without == 0, ErrorKind::InvalidArgument,
                    "learn: {} of the {} images to fit on have no colour histogram (indexed before imgsearch made "
                    "them); run `imgsearch index` on the same folders once to add them, or learn without colour",
                    without, fit.size());
  }
  const std::size_t classes = class_of.size();
  report.fitted = fit.size();
  report.labels = classes;
  IMGSEARCH_CHECK(classes >= 2, ErrorKind::InvalidArgument,
                  "learn: needs at least two labels with two images each to fit on; found {} ({} labelled images, {} "
                  "held out)",
                  classes, report.labelled, report.held_out);
  const int out_dim = std::min<int>({options.dim, static_cast<int>(classes) - 1, dim_in});
  const int threads =
      options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int saved_threads = torch::get_num_threads();
  torch::set_num_threads(threads);
  struct RestoreThreads {
    int n;
    ~RestoreThreads() { torch::set_num_threads(n); }
  } restore{saved_threads};

  torch::NoGradGuard no_grad;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const std::int64_t m = static_cast<std::int64_t>(fit.size());
  torch::Tensor x = torch::empty({m, dim_in}, torch::TensorOptions().dtype(torch::kFloat32));
  {
    float* dst = x.data_ptr<float>();
    Projection colour_only;  // for colour_input: the weight and bins the projection will have
    colour_only.colour_bins = colour_bins;
    colour_only.colour_weight = static_cast<float>(options.colour_weight);
    for (std::int64_t r = 0; r < m; ++r) {
      const std::uint32_t id = fit[static_cast<std::size_t>(r)];
      std::memcpy(dst + r * dim_in, index.model_vector(id), sizeof(float) * model_dim);
      if (colour_bins) colour_input(colour_only, index.colour(id), dst + r * dim_in + model_dim);
    }
  }
  x = x.to(torch::kFloat64);
  const torch::Tensor y = torch::from_blob(cls.data(), {m}, torch::TensorOptions().dtype(torch::kInt64)).clone();
  const torch::Tensor mean = x.mean(0);
  // Class means by one scatter-add.
  torch::Tensor sums = torch::zeros({static_cast<std::int64_t>(classes), dim_in}, f64).index_add_(0, y, x);
  torch::Tensor sizes = torch::zeros({static_cast<std::int64_t>(classes)}, f64).index_add_(0, y, torch::ones({m}, f64));
  const torch::Tensor class_means = sums / sizes.unsqueeze(1);
  const torch::Tensor within = x - class_means.index_select(0, y);
  torch::Tensor sw = within.t().mm(within) / static_cast<double>(m);
  const torch::Tensor between_dev = (class_means - mean) * sizes.sqrt().unsqueeze(1);
  const torch::Tensor sb = between_dev.t().mm(between_dev) / static_cast<double>(m);
  // Shrinkage keeps Sw invertible and well conditioned with few images per dimension.
  const double avg_var = sw.trace().item<double>() / dim_in;
  IMGSEARCH_CHECK(std::isfinite(avg_var) && avg_var > 0, ErrorKind::InvalidArgument,
                  "learn: the labelled images' vectors do not vary within their labels");
  sw = sw * (1.0 - options.shrinkage) + torch::eye(dim_in, f64) * (options.shrinkage * avg_var);
  sw = sw + torch::eye(dim_in, f64) * (1e-9 * avg_var);  // shrinkage 0 on a rank-deficient Sw
  // Sb v = lambda Sw v  <=>  (L^-1 Sb L^-T) u = lambda u with Sw = L L^T, v = L^-T u.
  const torch::Tensor l = torch::linalg::cholesky(sw);
  const torch::Tensor linv_sb = torch::linalg::solve_triangular(l, sb, /*upper=*/false, /*left=*/true, false);
  torch::Tensor sym = torch::linalg::solve_triangular(l, linv_sb.t(), false, true, false);
  sym = (sym + sym.t()) * 0.5;
  auto [eigenvalues, eigenvectors] = torch::linalg::eigh(sym, "L");  // ascending
  const torch::Tensor top = eigenvectors.narrow(1, dim_in - out_dim, out_dim).flip({1});  // D x out, best first
  const torch::Tensor w = torch::linalg::solve_triangular(l.t(), top, /*upper=*/true, true, false).t().contiguous();
  IMGSEARCH_CHECK(torch::isfinite(w).all().item<bool>(), ErrorKind::InvalidArgument,
                  "learn: the fit did not converge (non-finite projection)");

  Projection projection;
  projection.in_dim = model_dim;
  projection.colour_bins = colour_bins;
  projection.colour_weight = options.colour ? static_cast<float>(options.colour_weight) : 0.0f;
  projection.out_dim = out_dim;
  const torch::Tensor mean32 = mean.to(torch::kFloat32).contiguous();
  const torch::Tensor w32 = w.to(torch::kFloat32).contiguous();
  projection.mean.assign(mean32.data_ptr<float>(), mean32.data_ptr<float>() + dim_in);
  projection.matrix.assign(w32.data_ptr<float>(), w32.data_ptr<float>() + static_cast<std::size_t>(out_dim) * dim_in);
  projection.description = options.description;
  report.fit_seconds = seconds_since(start);

  const auto apply_start = std::chrono::steady_clock::now();
  index.set_projection(std::move(projection), options.threads);
  report.apply_seconds = seconds_since(apply_start);
  report.out_dim = out_dim;
  report.vector_bytes_after = static_cast<std::uint64_t>(n) * index.dim() * sizeof(float);
  return report;
}

}  // namespace imgsearch
