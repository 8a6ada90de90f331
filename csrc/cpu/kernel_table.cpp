#include "cpu/kernel_table.h"

#include <cstdlib>
#include <cstring>

namespace llmkit {
namespace cpu {

extern const KernelTable kBaselineTable;
#if defined(LLMKIT_CPU_X86_ISAS)
extern const KernelTable kAvx2Table;
extern const KernelTable kAvx512Table;
#endif

namespace {

struct Tables {
  const KernelTable* supported[3];
  int count = 0;
  const KernelTable* active = nullptr;

  Tables() {
#if defined(LLMKIT_CPU_X86_ISAS)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c")) {
      supported[count++] = &kAvx512Table;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
      supported[count++] = &kAvx2Table;
    }
#endif
    supported[count++] = &kBaselineTable;
    active = supported[0];
    const char* forced = std::getenv("LLMKIT_CPU_ISA");
    if (forced != nullptr) {
      for (int i = 0; i < count; ++i) {
        if (std::strcmp(supported[i]->isa, forced) == 0) active = supported[i];
      }
    }
  }
};

Tables& tables() {
  static Tables instance;
  return instance;
}

}  // namespace

const KernelTable* const* supported_tables(int* count) {
  *count = tables().count;
  return tables().supported;
}

const KernelTable& active_table() { return *tables().active; }

bool select_table(const char* isa) {
  Tables& t = tables();
  for (int i = 0; i < t.count; ++i) {
    if (std::strcmp(t.supported[i]->isa, isa) == 0) {
      t.active = t.supported[i];
      return true;
    }
  }
  return false;
}

}  // namespace cpu
}  // namespace llmkit
