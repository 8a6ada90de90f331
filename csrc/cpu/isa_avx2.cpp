// AVX2 + FMA + F16C build; compiled with those flags only (see CMakeLists.txt), chosen at run time.
#define LLMKIT_CPU_ISA avx2
#define LLMKIT_CPU_ISA_NAME "avx2"
#define LLMKIT_CPU_TABLE kAvx2Table
#include "cpu/isa_build.h"
