// The machine's memory read bandwidth with 1 and 2 threads: AVX2 loads summed over a 512 MiB buffer
// (beyond any cache), best of 5. It bounds batch-1 decode: every token reads every weight once.
//
//   gcc -O2 -mavx2 benchmarks/read_bandwidth.c -o /tmp/read_bandwidth -lpthread && /tmp/read_bandwidth
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define FLOATS (512L * 1024 * 1024 / 4)

static float* data;

typedef struct {
  long begin, end;
  float sum;
} Range;

static void* read_range(void* arg) {
  Range* r = arg;
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (long i = r->begin; i < r->end; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(data + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(data + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(data + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(data + i + 24));
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  r->sum = lanes[0];
  return NULL;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
  data = aligned_alloc(64, FLOATS * 4);
  for (long i = 0; i < FLOATS; i++) data[i] = 1.0f;
  for (int threads = 1; threads <= 2; threads++) {
    double best = 1e9;
    for (int repeat = 0; repeat < 5; repeat++) {
      pthread_t workers[2];
      Range ranges[2];
      double start = now();
      for (int t = 0; t < threads; t++) {
        ranges[t].begin = FLOATS / threads * t;
        ranges[t].end = FLOATS / threads * (t + 1);
        pthread_create(&workers[t], NULL, read_range, &ranges[t]);
      }
      for (int t = 0; t < threads; t++) pthread_join(workers[t], NULL);
      double seconds = now() - start;
      if (seconds < best) best = seconds;
    }
    printf("%d thread%s: read %.1f GB/s\n", threads, threads > 1 ? "s" : "", FLOATS * 4 / best / 1e9);
  }
  free(data);
  return 0;
}
