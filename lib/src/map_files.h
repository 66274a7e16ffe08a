// Internal: per-file work on worker threads, results handed back on the calling thread.
#pragma once

#include "parallel_for.h"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace imgsearch::detail {

// Runs work(path, result) for every path on `threads` workers and calls
// on_result(i, result, error) on this thread as each finishes (in completion order), so
// the caller's state needs no lock. A file whose work throws reports the message as
// `error`; one bad file never stops the others. When on_result throws, the workers stop
// after their current file and the exception is rethrown; `cancel` stops them too.
template <typename Result, typename Work, typename OnResult>
void map_files(const std::vector<std::string>& paths, int threads, const std::atomic<bool>* cancel, const Work& work,
               const OnResult& on_result) {
  if (paths.empty()) return;
  struct Done {
    std::size_t index;
    Result result;
    std::string error;
  };
  const int workers = static_cast<int>(std::min<std::size_t>(resolve_threads(threads), paths.size()));
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
          work(paths[i], d.result);
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
      on_result(d.index, d.result, d.error);
    } catch (...) {
      fatal = std::current_exception();
      next = paths.size();
    }
  }
  for (auto& t : pool) t.join();
  if (fatal) std::rethrow_exception(fatal);
}

}  // namespace imgsearch::detail
