// AVX-512 (F, BW, VL, DQ) build with 512-bit vectors preferred; chosen at run time.
#define LLMKIT_CPU_ISA avx512
#define LLMKIT_CPU_ISA_NAME "avx512"
#define LLMKIT_CPU_TABLE kAvx512Table
#include "cpu/isa_build.h"
