// A pool of CPU worker threads that spin briefly, then park, and never hold a region up.
//
// A decode step runs hundreds of short parallel regions back to back: a worker that slept between
// them would pay a wake-up (tens of microseconds) each time, and one that spun forever (OpenMP's
// default) steals a core from the Python thread and from other processes between steps. Workers
// here spin for kSpinMicros after a region, then sleep on a condition variable.
//
// Work is handed out one index at a time and the caller takes indices too, so a region never waits
// for a worker that the OS has descheduled (a shared 2-core VM does that often): a worker that
// arrives after every index is taken skips the region.
#pragma once

#include <cstdint>
#include <functional>

namespace llmkit {
namespace cpu {

// How long an idle worker spins before it parks.
constexpr int64_t kSpinMicros = 200;

// Calls fn(i) for every i in [0, count) on the caller and up to threads - 1 workers; returns when all
// calls have returned. Nested calls (from inside fn) run inline on the calling thread.
void parallel_for(int64_t count, int threads, const std::function<void(int64_t)>& fn);

template <class Fn>
inline void parallel_for_dynamic(int64_t count, int threads, Fn&& fn) {
  if (count <= 0) return;
  if (threads <= 1 || count == 1) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  parallel_for(count, threads, [&](int64_t i) { fn(i); });
}

// [0, count) in contiguous ranges of whole `grain` multiples (a few per thread): fn(begin, end).
template <class Fn>
inline void parallel_for_ranges(int64_t count, int64_t grain, int threads, Fn&& fn) {
  if (count <= 0) return;
  const int64_t units = (count + grain - 1) / grain;
  const int64_t chunks = threads <= 1 ? 1 : (units < 4 * int64_t(threads) ? units : 4 * int64_t(threads));
  parallel_for_dynamic(chunks, threads, [&](int64_t c) {
    const int64_t begin = units * c / chunks * grain;
    int64_t end = units * (c + 1) / chunks * grain;
    if (end > count) end = count;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace cpu
}  // namespace llmkit
