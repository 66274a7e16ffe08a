#include "imgsearch/extractor.h"

#include "imgsearch/colour_histogram.h"
#include "imgsearch/error.h"
#include "imgsearch/preprocess.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace imgsearch {

namespace {

struct Item {
  std::size_t index = 0;
  ModelInput input;  // no planes when decoding failed
  DuplicateSignals signals;
  std::vector<float> colour;
  std::string error;
};

// Decoded images wait here for the inference thread; bounded so decoding cannot run
// ahead and fill memory with tensors.
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) {}

  bool push(Item item) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_full_.wait(lock, [&] { return items_.size() < capacity_ || closed_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  // Waits for an item; false once every producer is done and the queue is drained.
  bool pop(Item& item) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait(lock, [&] { return !items_.empty() || producers_ == 0 || closed_; });
    if (items_.empty()) return false;
    item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return true;
  }

  void add_producer() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++producers_;
  }
  void producer_done() {
    std::lock_guard<std::mutex> lock(mutex_);
    --producers_;
    not_empty_.notify_all();
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Item> items_;
  std::size_t capacity_;
  int producers_ = 0;
  bool closed_ = false;
};

}  // namespace

std::size_t extract_features(Model& model, const std::vector<std::string>& paths, const ExtractOptions& options,
                             const std::function<void(const ExtractResult&)>& on_result) {
  if (paths.empty()) return 0;
  const int batch_size = std::max(1, options.batch_size);
  const int dim = model.output_dim();
  int workers = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = static_cast<int>(std::min<std::size_t>(workers, paths.size()));

  // Large JPEGs are decoded at a reduced DCT scale (libjpeg-turbo: n/8) that keeps the
  // shorter side at least twice the resize target: several times faster for camera
  // photos, and features stay within cosine 0.999 of a full decode (docs/benchmarks.md;
  // keeping only 1x the target drops the worst case to 0.997).
  DecodeOptions decode = options.decode;
  if (decode.min_shorter_side == 0) decode.min_shorter_side = model.min_decode_shorter_side();

  BoundedQueue queue(static_cast<std::size_t>(2 * batch_size + workers));
  std::atomic<std::size_t> next{0};
  auto cancelled = [&] { return options.cancel && options.cancel->load(); };

  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) queue.add_producer();
  for (int w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      for (;;) {
        const std::size_t i = next.fetch_add(1);
        if (i >= paths.size() || cancelled()) break;
        Item item;
        item.index = i;
        try {
          const Image image = decode_with_signals(paths[i], decode, item.signals);
          item.input = model.prepare(image);
          item.colour = colour_histogram(image);
        } catch (const std::exception& e) {
          item.input = ModelInput{};
          item.error = e.what();
        }
        if (!queue.push(std::move(item))) break;
      }
      queue.producer_done();
    });
  }

  std::size_t succeeded = 0;
  std::exception_ptr fatal;
  std::vector<Item> batch;
  std::vector<const ModelInput*> inputs;
  std::vector<float> output;
  auto flush = [&] {
    if (batch.empty()) return;
    inputs.clear();
    for (const Item& b : batch) inputs.push_back(&b.input);
    output.resize(batch.size() * dim);
    model.embed(inputs, output.data());
    for (std::size_t b = 0; b < batch.size(); ++b) {
      ExtractResult r;
      r.input_index = batch[b].index;
      r.path = paths[batch[b].index];
      r.ok = true;
      r.vector = output.data() + b * dim;
      r.signals = &batch[b].signals;
      r.colour = &batch[b].colour;
      on_result(r);
      ++succeeded;
    }
    batch.clear();
  };
  try {
    Item item;
    for (;;) {
      // Wait for a full batch; only the last one may be partial. Running a partial batch
      // whenever the queue is momentarily empty looks like it keeps the CNN busy, but on
      // a CPU the decoders and the CNN share the same cores, and small batches cost more
      // per image (and each new batch size sets up new oneDNN kernels).
      if (!queue.pop(item)) break;  // every producer is done and the queue is drained
      if (item.input.planes.empty()) {
        ExtractResult r;
        r.input_index = item.index;
        r.path = paths[item.index];
        r.error = std::move(item.error);
        on_result(r);
        continue;
      }
      batch.push_back(std::move(item));
      if (static_cast<int>(batch.size()) >= batch_size) flush();
    }
    flush();
  } catch (...) {
    fatal = std::current_exception();
  }
  queue.close();
  for (auto& t : pool) t.join();
  if (fatal) std::rethrow_exception(fatal);
  return succeeded;
}

}  // namespace imgsearch
