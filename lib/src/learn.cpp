// LDA with shrinkage on LibTorch's linear algebra (double precision, CPU), a small head
// trained with LibTorch on the CPU, and PCA.
#include "imgsearch/learn.h"

#include "imgsearch/colour_histogram.h"
#include "imgsearch/error.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <cstring>
#include <cmath>
#include <thread>
#include <unordered_map>

namespace imgsearch {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// torch's thread count for the fit, restored afterwards (the caller's LibTorch may be
// extracting on its own setting).
struct TorchThreads {
  int saved;
  explicit TorchThreads(int threads) : saved(torch::get_num_threads()) {
    torch::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  ~TorchThreads() { torch::set_num_threads(saved); }
};

std::vector<float> to_floats(const torch::Tensor& t) {
  const torch::Tensor f = t.to(torch::kFloat32).contiguous();
  return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
}

// The common end of every fit: the projection set on the index (projecting every stored
// vector and rebuilding the graph), timed, and the report completed.
LearnReport apply_projection(ImageIndex& index, Projection projection, int threads,
                             std::chrono::steady_clock::time_point fit_start, LearnReport report) {
  report.fit_seconds = seconds_since(fit_start);
  report.out_dim = projection.out_dim;
  const auto apply_start = std::chrono::steady_clock::now();
  index.set_projection(std::move(projection), threads);
  report.apply_seconds = seconds_since(apply_start);
  report.vector_bytes_after = static_cast<std::uint64_t>(index.size()) * index.dim() * sizeof(float);
  return report;
}

// The fitting rows: [normalised model vector ; colour input], float32, m x input.
torch::Tensor fit_inputs(const ImageIndex& index, const std::vector<std::uint32_t>& fit, const LearnOptions& options) {
  const int model_dim = index.model_dim();
  const int colour_bins = options.colour ? kColourBins : 0;
  const int dim_in = model_dim + colour_bins;
  const std::int64_t m = static_cast<std::int64_t>(fit.size());
  torch::Tensor x = torch::empty({m, dim_in}, torch::TensorOptions().dtype(torch::kFloat32));
  float* dst = x.data_ptr<float>();
  Projection colour_only;  // for colour_input: the weight and bins the projection will have
  colour_only.colour_bins = colour_bins;
  colour_only.colour_weight = static_cast<float>(options.colour_weight);
  for (std::int64_t r = 0; r < m; ++r) {
    const std::uint32_t id = fit[static_cast<std::size_t>(r)];
    std::memcpy(dst + r * dim_in, index.model_vector(id), sizeof(float) * model_dim);
    if (colour_bins) colour_input(colour_only, index.colour(id), dst + r * dim_in + model_dim);
  }
  return x;
}

// The learned head: Linear -> BatchNorm -> ReLU -> Dropout -> Linear, trained as a
// classifier against normalised class proxies (a cosine softmax, the proxy loss of metric
// learning: an image's output is pulled towards its label's proxy and away from the
// others'), with label smoothing, AdamW and a one-cycle learning rate. Only the head is
// kept: BatchNorm folded into the first layer, the proxies dropped.
Projection fit_head(const ImageIndex& index, const std::vector<std::uint32_t>& fit, const std::vector<std::int64_t>& cls,
                    std::size_t classes, const LearnOptions& options, LearnReport& report) {
  IMGSEARCH_CHECK(options.hidden >= 1 && options.hidden <= kMaxHiddenUnits, ErrorKind::InvalidArgument,
                  "learn: --hidden must be in 1..{}, not {}", kMaxHiddenUnits, options.hidden);
  IMGSEARCH_CHECK(options.epochs >= 0 && options.epochs <= 1000, ErrorKind::InvalidArgument,
                  "learn: --epochs must be in 1..1000 (or 0, auto), not {}", options.epochs);
  const int out_dim = std::min(options.dim, options.hidden);
  torch::manual_seed(options.seed);
  const torch::Tensor x_raw = fit_inputs(index, fit, options);
  const torch::Tensor mean = x_raw.mean(0);
  const torch::Tensor x = x_raw - mean;
  const std::int64_t m = x.size(0), dim_in = x.size(1);
  const torch::Tensor y = torch::from_blob(const_cast<std::int64_t*>(cls.data()), {m}, torch::kInt64).clone();

  torch::nn::Linear first(dim_in, options.hidden), last(options.hidden, out_dim);
  torch::nn::BatchNorm1d norm(options.hidden);
  torch::nn::Sequential net(first, norm, torch::nn::ReLU(), torch::nn::Dropout(0.2), last);
  torch::Tensor proxies = (torch::randn({static_cast<std::int64_t>(classes), out_dim}) * 0.01).set_requires_grad(true);
  std::vector<torch::Tensor> parameters = net->parameters();
  parameters.push_back(proxies);
  constexpr double kPeakRate = 2e-3, kScale = 8, kSmoothing = 0.1;
  torch::optim::AdamW optimiser(parameters, torch::optim::AdamWOptions(kPeakRate).weight_decay(1e-4));
  constexpr std::int64_t kBatch = 256;
  const std::int64_t batches = (m + kBatch - 1) / kBatch;
  const int epochs = options.epochs > 0 ? options.epochs
                                        : static_cast<int>(std::min<std::int64_t>(
                                              1000, std::max<std::int64_t>(10, (kMinHeadSteps + batches - 1) / batches)));
  report.epochs = epochs;
  const std::int64_t steps = batches * epochs;
  const std::int64_t warmup = std::max<std::int64_t>(1, steps * 3 / 10);
  namespace F = torch::nn::functional;
  std::int64_t step = 0;
  net->train();
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const torch::Tensor order = torch::randperm(m, torch::kInt64);
    for (std::int64_t b = 0; b < batches; ++b, ++step) {
      // One cycle: a cosine up from peak/25 over the first 30 % of the steps, then down to ~0.
      const double rate =
          step < warmup
              ? kPeakRate * (0.04 + 0.96 * 0.5 * (1 - std::cos(M_PI * double(step) / warmup)))
              : kPeakRate * (1e-4 + (1 - 1e-4) * 0.5 * (1 + std::cos(M_PI * double(step - warmup) / (steps - warmup))));
      for (auto& group : optimiser.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(rate);
      const torch::Tensor rows = order.narrow(0, b * kBatch, std::min(kBatch, m - b * kBatch));
      if (rows.size(0) < 2) continue;  // BatchNorm needs two rows
      const torch::Tensor z = F::normalize(net->forward(x.index_select(0, rows)), F::NormalizeFuncOptions().dim(1));
      const torch::Tensor logits = kScale * z.mm(F::normalize(proxies, F::NormalizeFuncOptions().dim(1)).t());
      const torch::Tensor loss =
          F::cross_entropy(logits, y.index_select(0, rows), F::CrossEntropyFuncOptions().label_smoothing(kSmoothing));
      optimiser.zero_grad();
      loss.backward();
      optimiser.step();
    }
  }
  net->eval();
  torch::NoGradGuard no_grad;
  // BatchNorm in eval mode is an affine map per unit: folded into the first layer.
  const torch::Tensor scale = norm->weight / (norm->running_var + norm->options.eps()).sqrt();
  const torch::Tensor w1 = first->weight * scale.unsqueeze(1);
  const torch::Tensor b1 = (first->bias - norm->running_mean) * scale + norm->bias;
  {  // the folded head must compute what the trained one does
    const torch::Tensor sample = x.narrow(0, 0, std::min<std::int64_t>(m, 64));
    const torch::Tensor folded = torch::relu(sample.mm(w1.t()) + b1).mm(last->weight.t()) + last->bias;
    const double gap = (folded - net->forward(sample)).abs().max().item<double>();
    IMGSEARCH_CHECK(std::isfinite(gap) && gap <= 1e-3 * (1 + folded.abs().max().item<double>()),
                    ErrorKind::InvalidArgument, "learn: the head's fit did not converge (non-finite or inconsistent weights)");
  }
  Projection projection;
  projection.in_dim = index.model_dim();
  projection.colour_bins = options.colour ? kColourBins : 0;
  projection.colour_weight = options.colour ? static_cast<float>(options.colour_weight) : 0.0f;
  projection.out_dim = out_dim;
  projection.hidden = options.hidden;
  projection.mean = to_floats(mean);
  projection.matrix = to_floats(w1);
  projection.hidden_bias = to_floats(b1);
  projection.output_matrix = to_floats(last->weight);
  projection.output_bias = to_floats(last->bias);
  return projection;  // apply_projection's set_projection checks it
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
  const TorchThreads threads(options.threads);
  if (options.method == LearnMethod::Head) {
    Projection projection = fit_head(index, fit, cls, classes, options, report);
    // The description records the passes trained (auto picks them), whatever else the
    // caller put there.
    nlohmann::json description = nlohmann::json::parse(options.description, nullptr, false);
    if (!description.is_object()) description = nlohmann::json::object();
    description["epochs"] = report.epochs;
    projection.description = description.dump();
    return apply_projection(index, std::move(projection), options.threads, start, report);
  }
  const int out_dim = std::min<int>({options.dim, static_cast<int>(classes) - 1, dim_in});

  torch::NoGradGuard no_grad;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const std::int64_t m = static_cast<std::int64_t>(fit.size());
  torch::Tensor x = fit_inputs(index, fit, options).to(torch::kFloat64);
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
  projection.mean = to_floats(mean);
  projection.matrix = to_floats(w);
  projection.description = options.description;
  return apply_projection(index, std::move(projection), options.threads, start, report);
}

LearnReport learn_pca(ImageIndex& index, const LearnOptions& options) {
  const std::size_t n = index.size();
  const int model_dim = index.model_dim();
  IMGSEARCH_CHECK(options.dim >= 1 && options.dim < model_dim, ErrorKind::InvalidArgument,
                  "learn --pca: --dim must be in 1..{} (below the model's {} dimensions), not {}", model_dim - 1,
                  model_dim, options.dim);
  IMGSEARCH_CHECK(n >= 2, ErrorKind::InvalidArgument, "learn --pca: the index holds {} images; at least 2 are needed",
                  n);
  IMGSEARCH_CHECK(options.max_fit_images >= 2, ErrorKind::InvalidArgument,
                  "learn --pca: the sample must hold at least 2 images");
  const auto start = std::chrono::steady_clock::now();
  LearnReport report;
  report.images = n;
  report.in_dim = model_dim;
  report.vector_bytes_before = static_cast<std::uint64_t>(n) * index.dim() * sizeof(float);

  std::vector<std::uint32_t> fit(n);
  std::iota(fit.begin(), fit.end(), 0u);
  if (n > options.max_fit_images) {
    std::mt19937_64 rng(options.seed);
    for (std::size_t i = 0; i < options.max_fit_images; ++i)
      std::swap(fit[i], fit[i + std::uniform_int_distribution<std::size_t>(0, n - 1 - i)(rng)]);
    fit.resize(options.max_fit_images);
    std::sort(fit.begin(), fit.end());
  }
  report.fitted = fit.size();

  const TorchThreads threads(options.threads);
  torch::NoGradGuard no_grad;
  const std::int64_t m = static_cast<std::int64_t>(fit.size());
  // float32 rows, the D x D product accumulated by blocks in float64: a 10^5 x 1280
  // float64 copy would take 1 GB.
  torch::Tensor moment = torch::zeros({model_dim, model_dim}, torch::TensorOptions().dtype(torch::kFloat64));
  constexpr std::int64_t kBlock = 8192;
  torch::Tensor block = torch::empty({kBlock, model_dim}, torch::TensorOptions().dtype(torch::kFloat32));
  for (std::int64_t first = 0; first < m; first += kBlock) {
    const std::int64_t rows = std::min(kBlock, m - first);
    float* dst = block.data_ptr<float>();
    for (std::int64_t r = 0; r < rows; ++r)
      std::memcpy(dst + r * model_dim, index.model_vector(fit[static_cast<std::size_t>(first + r)]),
                  sizeof(float) * model_dim);
    const torch::Tensor b = block.narrow(0, 0, rows);
    moment += b.t().mm(b).to(torch::kFloat64);
  }
  moment = moment / static_cast<double>(m);
  moment = (moment + moment.t()) * 0.5;
  auto [eigenvalues, eigenvectors] = torch::linalg::eigh(moment, "L");  // ascending
  const int out_dim = options.dim;
  const torch::Tensor top = eigenvectors.narrow(1, model_dim - out_dim, out_dim).flip({1}).t().contiguous();  // out x D
  const double total = eigenvalues.clamp_min(0).sum().item<double>();
  IMGSEARCH_CHECK(std::isfinite(total) && total > 0 && torch::isfinite(top).all().item<bool>(), ErrorKind::InvalidArgument,
                  "learn --pca: the images' vectors are all zero or not finite");
  report.energy_kept = eigenvalues.narrow(0, model_dim - out_dim, out_dim).clamp_min(0).sum().item<double>() / total;

  Projection projection;
  projection.in_dim = model_dim;
  projection.out_dim = out_dim;
  projection.mean.assign(static_cast<std::size_t>(model_dim), 0.0f);  // not centred: see learn.h
  projection.matrix = to_floats(top);
  // "method": "pca" is what tells a reader to rescore (refinement.h), whatever else the
  // caller recorded.
  nlohmann::json description = nlohmann::json::parse(options.description, nullptr, false);
  if (!description.is_object()) description = nlohmann::json::object();
  description["method"] = "pca";
  projection.description = description.dump();
  projection.rescore = true;
  return apply_projection(index, std::move(projection), options.threads, start, report);
}

}  // namespace imgsearch
