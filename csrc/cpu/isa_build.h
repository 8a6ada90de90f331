// Body of one instruction-set build: the includer defines LLMKIT_CPU_ISA (a namespace name, so the
// inline helpers of each build stay distinct symbols) and LLMKIT_CPU_TABLE, then includes this file.
#include "cpu/activation_impl.h"
#include "cpu/attention_impl.h"
#include "cpu/bitmask_impl.h"
#include "cpu/kernel_table.h"
#include "cpu/kv_quant_impl.h"
#include "cpu/quant_matmul_impl.h"

namespace llmkit {
namespace cpu {

extern const KernelTable LLMKIT_CPU_TABLE;
const KernelTable LLMKIT_CPU_TABLE = {
    LLMKIT_CPU_ISA_NAME,
    &LLMKIT_CPU_ISA::attention,
    &LLMKIT_CPU_ISA::cache_write,
    &LLMKIT_CPU_ISA::quantize_kv,
    &LLMKIT_CPU_ISA::dequantize_kv,
    &LLMKIT_CPU_ISA::apply_bitmask,
    &LLMKIT_CPU_ISA::quant_matmul,
    &LLMKIT_CPU_ISA::quant_matmul_rows,
    &LLMKIT_CPU_ISA::quantize_q8,
    &LLMKIT_CPU_ISA::silu_mul,
    &LLMKIT_CPU_ISA::dequantize_rows,
    &LLMKIT_CPU_ISA::int8_packed_rows,
};

}  // namespace cpu
}  // namespace llmkit
