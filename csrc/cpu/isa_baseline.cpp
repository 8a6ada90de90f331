// The portable build (x86-64 SSE2 or the target's baseline); always present.
#define LLMKIT_CPU_ISA baseline
#define LLMKIT_CPU_ISA_NAME "baseline"
#define LLMKIT_CPU_TABLE kBaselineTable
#include "cpu/isa_build.h"
