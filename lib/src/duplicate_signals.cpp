#include "imgsearch/duplicate_signals.h"

#include "imgsearch/error.h"

#include <xxhash.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace imgsearch {

std::uint64_t content_hash(const std::uint8_t* data, std::size_t size) { return XXH3_64bits(data, size); }

std::uint64_t content_hash_file(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_image_bytes(path);
  return content_hash(bytes.data(), bytes.size());
}

DuplicateSignals duplicate_signals(const std::uint8_t* file_bytes, std::size_t size, const Image& decoded) {
  DuplicateSignals s;
  s.present = true;
  s.content_hash = content_hash(file_bytes, size);
  s.phash = perceptual_hashes(decoded);
  const CropThumbnail thumb = crop_thumbnail(decoded);
  s.thumbnail.assign(thumb.begin(), thumb.end());
  return s;
}

Image decode_with_signals(const std::string& path, const DecodeOptions& options, DuplicateSignals& signals) {
  const std::vector<std::uint8_t> bytes = read_image_bytes(path);
  Image image = decode_image_memory(bytes.data(), bytes.size(), options, path);
  signals = duplicate_signals(bytes.data(), bytes.size(), image);
  return image;
}

void compute_duplicate_signals(const std::vector<std::string>& paths, const DecodeOptions& options, int threads,
                               const std::atomic<bool>* cancel,
                               const std::function<void(std::size_t, const DuplicateSignals&, const std::string&)>& on_result) {
  if (paths.empty()) return;
  struct Done {
    std::size_t index;
    DuplicateSignals signals;
    std::string error;
  };
  int workers = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = static_cast<int>(std::min<std::size_t>(workers, paths.size()));
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<Done> done;
  int running = workers;
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      for (;;) {
        const std::size_t i = next.fetch_add(1);
        if (i >= paths.size() || (cancel && cancel->load())) break;
        Done d{i, {}, {}};
        try {
          decode_with_signals(paths[i], options, d.signals);
        } catch (const std::exception& e) {
          d.error = e.what();
        }
        std::lock_guard<std::mutex> lock(mutex);
        done.push_back(std::move(d));
        ready.notify_one();
      }
      std::lock_guard<std::mutex> lock(mutex);
      --running;
      ready.notify_one();
    });
  }
  std::exception_ptr fatal;
  for (;;) {
    std::unique_lock<std::mutex> lock(mutex);
    ready.wait(lock, [&] { return !done.empty() || running == 0; });
    if (done.empty()) break;
    Done d = std::move(done.front());
    done.pop_front();
    lock.unlock();
    if (fatal) continue;  // drain; the workers finish their current file
    try {
      on_result(d.index, d.signals, d.error);
    } catch (...) {
      fatal = std::current_exception();
      next = paths.size();
    }
  }
  for (auto& t : pool) t.join();
  if (fatal) std::rethrow_exception(fatal);
}

}  // namespace imgsearch
