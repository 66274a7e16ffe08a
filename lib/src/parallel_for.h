// Internal: the library's one way to spread a loop over worker threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace imgsearch {

// `threads` as the user gave it: 0 (or less) means one per core.
inline int resolve_threads(int threads) {
  return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Runs fn(i), or fn(i, worker) when fn takes a worker number (0 .. threads-1, for per-thread
// scratch), for every i in [begin, end): each worker takes the next i from a shared counter.
// Inline on the caller's thread when threads <= 1 or fewer than `min_parallel` items (a
// thread start costs more than a few cheap items). The first exception stops handing out
// work and is rethrown once every worker has finished.
template <typename Fn>
void parallel_for(std::size_t begin, std::size_t end, int threads, Fn&& fn, std::size_t min_parallel = 2) {
  auto call = [&fn](std::size_t i, int worker) {
    if constexpr (std::is_invocable_v<Fn&, std::size_t, int>)
      fn(i, worker);
    else
      fn(i);
  };
  if (threads <= 1 || end - begin < min_parallel) {
    for (std::size_t i = begin; i < end; ++i) call(i, 0);
    return;
  }
  std::atomic<std::size_t> next{begin};
  std::exception_ptr error;
  std::mutex error_mutex;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (;;) {
        const std::size_t i = next.fetch_add(1);
        if (i >= end) return;
        try {
          call(i, t);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          next = end;
          return;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace imgsearch
