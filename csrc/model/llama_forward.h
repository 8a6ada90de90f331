// The Llama-family decoder's forward pass over a paged KV cache, in one native call per engine step.
//
// Python builds a LlamaForward once from the model's stored weights (quantized blocks as in the GGUF
// file, or float) and the engine's per-layer KV pools, then calls run() with the step's flat tokens:
// decodes first, then prefill chunks, exactly the layout of llmkit.serve's ModelRunner. Each layer is
// RMSNorm -> Q/K/V (one parallel region) -> RoPE + KV-cache write -> paged attention -> O projection +
// residual -> RMSNorm -> gate/up with SiLU-multiply (one region) -> down + residual; no Python and
// no torch run between layers. The specification is llmkit.core.models.llama.LlamaModel.forward.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/kernel_args.h"
#include "cpu/int8_repack.h"

namespace llmkit {

struct WeightView {
  const void* data = nullptr;
  WeightFormat format = WeightFormat::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_bytes = 0;
  // With int8 activations: the same weight repacked for SIMD (cpu/int8_repack.h), owned by the forward
  // (the embedding's: by its Python owner; lookups then read it, not the stored table).
  const PackedInt8Weight* packed = nullptr;
};

struct LayerWeights {
  const float* attn_norm = nullptr;
  const float* ffn_norm = nullptr;
  WeightView q, k, v, o, gate, up, down;
  const float* q_bias = nullptr;  // optional (Qwen2)
  const float* k_bias = nullptr;
  const float* v_bias = nullptr;
  CacheView cache;
};

struct LlamaShape {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate = 0;
  float rms_eps = 1e-5f;
  float rope_attention_scaling = 1.0f;
  std::vector<float> inv_freq;  // [head_dim / 2]
  bool int8_activations = false;  // Q8 activations for Q8_0/Q4_0/Q4_1 weights (see QuantMatmulArgs)
  // With int8 activations: drop the stored weights' pages as they are repacked when they are a read-only
  // file mapping (see PackedInt8Buffer), so the repacked copy does not double the weights' memory.
  bool release_stored = false;
};

struct ForwardStep {
  int64_t tokens = 0;
  const int64_t* input_ids = nullptr;  // [tokens]
  const int64_t* positions = nullptr;  // [tokens]
  IndexView slot_mapping;              // [tokens]
  int64_t num_decode = 0;              // the first num_decode tokens are one per decoding sequence
  IndexView decode_block_tables;       // [num_decode, decode_max_blocks]
  int64_t decode_max_blocks = 0;
  IndexView decode_seq_lens;           // [num_decode]
  int64_t num_prefill = 0;             // prefill sequences
  IndexView prefill_block_tables;      // [num_prefill, prefill_max_blocks]
  int64_t prefill_max_blocks = 0;
  IndexView prefill_seq_lens;          // [num_prefill]
  IndexView query_start_loc;           // [num_prefill + 1], offsets into the prefill part
  int64_t num_layers = 0;              // layers to run (early exit runs fewer)
  float attention_scale = 1.0f;
  int num_threads = 1;
  float* hidden_out = nullptr;  // [tokens, hidden], after the final norm
  // Optional: rows whose input is a given embedding instead of their token's (a VLM's image embeddings).
  int64_t num_embedded = 0;
  const int64_t* embedded_rows = nullptr;  // [num_embedded], each in [0, tokens)
  const float* embedded = nullptr;         // [num_embedded, hidden]
};

class LlamaForward {
 public:
  // With shape.int8_activations, every Q8_0/Q4_0/Q4_1 projection is repacked here, once.
  LlamaForward(LlamaShape shape, WeightView embedding, const float* final_norm, std::vector<LayerWeights> layers);

  // Every id, slot, length and block id in `step` must be validated by the caller.
  void run(const ForwardStep& step);

  const LlamaShape& shape() const { return shape_; }
  int64_t num_layers() const { return int64_t(layers_.size()); }
  // Bytes of repacked weights this forward owns, and of stored weights whose pages it released.
  int64_t packed_bytes() const { return packed_bytes_; }
  int64_t released_bytes() const { return released_bytes_; }

 private:
  void layer(const LayerWeights& w, const ForwardStep& step);

  LlamaShape shape_;
  WeightView embedding_;
  const float* final_norm_;
  std::vector<LayerWeights> layers_;
  std::vector<std::unique_ptr<PackedInt8Buffer>> packed_;
  int64_t packed_bytes_ = 0;
  int64_t released_bytes_ = 0;
  // Activations, grown to the largest step seen.
  std::vector<float> x_, normed_, qkv_, attn_, gate_up_, act_, cos_, sin_;
  // The int8 activations of one region's input (quantized once, read by every matmul of the region).
  std::vector<int8_t> q8_;
  std::vector<float> q8_scale_, q8_sum_;
  // With a packed embedding (the tied LM head's copy): the step's rows gathered back into the stored layout.
  std::vector<uint8_t> embed_rows_;
  std::vector<int64_t> embed_order_;
};

}  // namespace llmkit
