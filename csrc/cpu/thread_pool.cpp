#include "cpu/thread_pool.h"

#include <atomic>
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

// state_: bits 0..15 workers inside the region, bit 16 closed, bits 17.. the region id.
constexpr uint64_t kInsideMask = 0xFFFF;
constexpr uint64_t kClosed = uint64_t(1) << 16;
constexpr int kIdShift = 17;

class Pool {
 public:
  void run(int64_t count, int threads, const std::function<void(int64_t)>& fn) {
    std::lock_guard<std::mutex> serial(callers_);  // regions from two Python threads queue
    grow(threads - 1);
    fn_ = &fn;
    count_ = count;
    next_.store(0, std::memory_order_relaxed);
    const uint64_t region = ++region_;
    state_.store(region << kIdShift);
    // seq_cst: pairs with the sleeper count (a worker either parks counted, or sees its new ticket).
    for (int w = 0; w < threads - 1; ++w) workers_[size_t(w)]->ticket.store(region);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    in_region = true;
    take_indices();
    in_region = false;
    state_.fetch_or(kClosed);  // latecomers skip; wait for those inside to finish their indices
    while ((state_.load(std::memory_order_acquire) & kInsideMask) != 0) LLMKIT_PAUSE();
  }

 private:
  struct Worker {
    std::atomic<uint64_t> ticket{0};  // the latest region this worker is asked to join
  };

  void take_indices() {
    for (int64_t i = next_.fetch_add(1, std::memory_order_relaxed); i < count_;
         i = next_.fetch_add(1, std::memory_order_relaxed)) {
      (*fn_)(i);
    }
  }

  void grow(int count) {
    while (int(workers_.size()) < count) {
      workers_.push_back(std::make_unique<Worker>());
      Worker* worker = workers_.back().get();
      const uint64_t start = region_;  // the worker must not miss a ticket issued before it runs
      worker->ticket.store(start);
      std::thread([this, worker, start] { work(*worker, start); }).detach();  // lives until the process ends
    }
  }

  void work(Worker& worker, uint64_t seen) {
    in_region = true;
    for (;;) {
      seen = wait_for_ticket(worker, seen);
      if (enter(seen)) {
        take_indices();
        state_.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  // Joins region `region` if it is still open.
  bool enter(uint64_t region) {
    uint64_t s = state_.load();
    for (;;) {
      if ((s >> kIdShift) != region || (s & kClosed) != 0) return false;
      if (state_.compare_exchange_weak(s, s + 1)) return true;
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
  std::atomic<uint64_t> state_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int64_t> next_{0};
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t count_ = 0;
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

void parallel_for(int64_t count, int threads, const std::function<void(int64_t)>& fn) {
  if (count <= 0) return;
  if (threads <= 1 || count == 1 || in_region) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  pool().run(count, threads, fn);
}

}  // namespace cpu
}  // namespace llmkit
