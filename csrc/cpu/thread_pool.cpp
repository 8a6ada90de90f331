#include "cpu/thread_pool.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LLMKIT_PAUSE() _mm_pause()
#else
#define LLMKIT_PAUSE() std::this_thread::yield()
#endif

namespace llmkit {
namespace cpu {
namespace {

thread_local bool in_region = false;

class Pool {
 public:
  void run(int threads, const std::function<void(int)>& body) {
    std::lock_guard<std::mutex> serial(callers_);  // one region at a time: regions from two Python threads queue
    grow(threads - 1);
    body_ = &body;
    pending_.store(threads - 1);
    const uint64_t region = ++region_;
    // seq_cst stores: pair with the sleeper count below (a worker either parks after seeing its ticket
    // unchanged, and is counted, or sees the new ticket).
    for (int w = 0; w < threads - 1; ++w) workers_[w]->ticket.store(region);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    in_region = true;
    body(0);
    in_region = false;
    while (pending_.load(std::memory_order_acquire) > 0) LLMKIT_PAUSE();
    body_ = nullptr;
  }

 private:
  struct Worker {
    std::atomic<uint64_t> ticket{0};  // the region this worker is asked to run
    std::thread thread;
  };

  void grow(int count) {
    while (int(workers_.size()) < count) {
      workers_.push_back(std::make_unique<Worker>());
      Worker* worker = workers_.back().get();
      const int index = int(workers_.size());
      const uint64_t start = region_;  // tickets before the worker runs: it must not miss the next one
      worker->ticket.store(start);
      worker->thread = std::thread([this, worker, index, start] { work(*worker, index, start); });
      worker->thread.detach();  // the pool lives until the process ends
    }
  }

  void work(Worker& worker, int index, uint64_t seen) {
    in_region = true;
    for (;;) {
      seen = wait_for_ticket(worker, seen);
      (*body_)(index);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  uint64_t wait_for_ticket(Worker& worker, uint64_t seen) {
    const auto start = std::chrono::steady_clock::now();
    for (int spins = 0;; ++spins) {
      const uint64_t now = worker.ticket.load(std::memory_order_acquire);
      if (now != seen) return now;
      LLMKIT_PAUSE();
      if ((spins & 255) == 255 && std::chrono::steady_clock::now() - start > std::chrono::microseconds(kSpinMicros)) {
        break;
      }
    }
    std::unique_lock<std::mutex> lock(mutex_);
    sleepers_.fetch_add(1);
    wake_.wait(lock, [&] { return worker.ticket.load() != seen; });
    sleepers_.fetch_sub(1);
    return worker.ticket.load();
  }

  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex callers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  uint64_t region_ = 0;
  std::atomic<int> sleepers_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* body_ = nullptr;
};

Pool* instance = nullptr;

// A forked child has none of the parent's worker threads: it starts a fresh pool (the old one leaks).
void forget_pool_in_child() { instance = nullptr; }

Pool& pool() {
  static std::mutex creation;
  std::lock_guard<std::mutex> lock(creation);
  static const bool registered = (pthread_atfork(nullptr, nullptr, forget_pool_in_child), true);
  (void)registered;
  if (instance == nullptr) instance = new Pool();  // never destroyed: detached workers use it until exit
  return *instance;
}

}  // namespace

void run_on_threads(int threads, const std::function<void(int)>& body) {
  if (threads <= 1 || in_region) {
    for (int t = 0; t < (threads < 1 ? 1 : threads); ++t) body(t);
    return;
  }
  pool().run(threads, body);
}

}  // namespace cpu
}  // namespace llmkit
