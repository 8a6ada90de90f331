// Device discovery, the per-device error word, and error checks for the CUDA ops.
#include <mutex>
#include <vector>

#include "cuda/common.cuh"

namespace llmkit {
namespace cuda {

namespace {

std::mutex error_words_mutex;
std::vector<unsigned*> error_words;  // host pointers of mapped pinned memory, one per device
bool checks_on = true;

}  // namespace

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("llmkit.kernels: ") + what + " failed: " + cudaGetErrorString(status));
  }
}

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for callers
    return 0;
  }
  return count;
}

int multiprocessor_count(int device) {
  int count = 0;
  check(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return count;
}

unsigned* device_error_word(int device) {
  std::lock_guard<std::mutex> lock(error_words_mutex);
  if (int(error_words.size()) <= device) error_words.resize(device + 1, nullptr);
  if (error_words[device] == nullptr) {
    unsigned* host = nullptr;
    check(cudaHostAlloc(reinterpret_cast<void**>(&host), sizeof(unsigned), cudaHostAllocMapped | cudaHostAllocPortable),
          "cudaHostAlloc");
    *host = 0;
    error_words[device] = host;
  }
  unsigned* on_device = nullptr;
  check(cudaHostGetDevicePointer(reinterpret_cast<void**>(&on_device), error_words[device], 0),
        "cudaHostGetDevicePointer");
  return on_device;
}

uint32_t take_errors(const Launch& launch) {
  DeviceScope scope(launch.device);
  check(cudaGetLastError(), "kernel launch");
  check(cudaStreamSynchronize(stream_of(launch)), "cudaStreamSynchronize");
  std::lock_guard<std::mutex> lock(error_words_mutex);
  if (int(error_words.size()) <= launch.device || error_words[launch.device] == nullptr) return 0;
  volatile unsigned* word = error_words[launch.device];
  const uint32_t bits = *word;
  *word = 0;
  return bits;
}

bool checks_enabled() { return checks_on; }

// Ops run while checks were off leave their bits in the word (nobody takes them); turning checks back on
// waits for those kernels and clears the bits, so the next checked op reports only its own input.
void set_checks_enabled(bool enabled) {
  if (enabled && !checks_on) {
    std::lock_guard<std::mutex> lock(error_words_mutex);
    for (int device = 0; device < int(error_words.size()); ++device) {
      if (error_words[device] == nullptr) continue;
      DeviceScope scope(device);
      check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
      *static_cast<volatile unsigned*>(error_words[device]) = 0;
    }
  }
  checks_on = enabled;
}

}  // namespace cuda
}  // namespace llmkit
