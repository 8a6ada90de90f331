// The MLP's activation, built once per instruction set: out = SiLU(gate) * up over a row's columns.
#pragma once

#include <cstdint>

#include "cpu/vec.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

// SiLU(g) = g / (1 + e^-g), with e^-|g| from the vector exp_nonpositive (so no exp ever overflows):
// g >= 0: g / (1 + t); g < 0: g * t / (1 + t), where t = e^-|g|. Below -87 t is 0, which gives g or 0
// as the true values round to; NaN stays NaN.
static inline VecF silu(VecF g) {
  const VecF t = exp_nonpositive(g < splat(0.0f) ? g : -g);
  const VecF scaled = g < splat(0.0f) ? g * t : g;
  return scaled / (splat(1.0f) + t);
}

static void silu_mul(const float* gate, const float* up, float* out, int64_t count) {
  int64_t i = 0;
  for (; i + kVecFloats <= count; i += kVecFloats) store_vec(out + i, silu(load_vec(gate + i)) * load_vec(up + i));
  if (i < count) {
    float g[kVecFloats] = {}, u[kVecFloats] = {}, o[kVecFloats];
    for (int64_t j = i; j < count; ++j) g[j - i] = gate[j], u[j - i] = up[j];
    store_vec(o, silu(load_vec(g)) * load_vec(u));
    for (int64_t j = i; j < count; ++j) out[j] = o[j - i];
  }
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
