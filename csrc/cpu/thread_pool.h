// A pool of CPU worker threads that spin briefly, then park.
//
// A decode step runs hundreds of short parallel regions back to back: a worker that slept between
// them would pay a wake-up (tens of microseconds) each time, and one that spun forever (OpenMP's
// default) steals a core from the Python thread and from other processes between steps. Workers
// here spin for kSpinMicros after finishing a region, then sleep on a condition variable.
#pragma once

#include <cstdint>
#include <functional>

namespace llmkit {
namespace cpu {

// How long an idle worker spins before it parks.
constexpr int64_t kSpinMicros = 200;

// Runs body(thread_index) for thread_index in [0, threads) concurrently (the caller runs index 0) and
// returns when every call has returned. threads <= 1 runs body(0) inline. Not reentrant: a body must not
// call run_on_threads itself (nested calls run inline, on one thread).
void run_on_threads(int threads, const std::function<void(int)>& body);

// Calls fn(i) for every i in [0, count) on up to `threads` threads, handing out indices one at a
// time (dynamic schedule); fn must be safe to call concurrently for different i.
template <class Fn>
inline void parallel_for_dynamic(int64_t count, int threads, Fn&& fn);

// Splits [0, count) into `threads` contiguous ranges of whole `grain` multiples: fn(begin, end, thread).
template <class Fn>
inline void parallel_for_static(int64_t count, int64_t grain, int threads, Fn&& fn);

}  // namespace cpu
}  // namespace llmkit

#include <atomic>

namespace llmkit {
namespace cpu {

template <class Fn>
inline void parallel_for_dynamic(int64_t count, int threads, Fn&& fn) {
  if (count <= 0) return;
  if (threads > count) threads = int(count);
  if (threads <= 1) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  run_on_threads(threads, [&](int) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < count;
         i = next.fetch_add(1, std::memory_order_relaxed)) {
      fn(i);
    }
  });
}

template <class Fn>
inline void parallel_for_static(int64_t count, int64_t grain, int threads, Fn&& fn) {
  if (count <= 0) return;
  const int64_t units = (count + grain - 1) / grain;
  if (threads > units) threads = int(units);
  if (threads <= 1) {
    fn(int64_t(0), count, 0);
    return;
  }
  run_on_threads(threads, [&](int t) {
    const int64_t begin = units * t / threads * grain;
    int64_t end = units * (t + 1) / threads * grain;
    if (end > count) end = count;
    if (begin < end) fn(begin, end, t);
  });
}

}  // namespace cpu
}  // namespace llmkit
