// Token byte strings and a trie over them in preorder (built once per tokenizer).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llmkit::grammar {

struct Vocabulary {
  int vocab_size = 0;
  int max_token_length = 0;
  std::vector<std::string> token_bytes;  // empty for tokens that are never grammar text
  std::vector<int32_t> stop_token_ids;
  std::vector<uint8_t> node_byte;        // [nodes]; node 0 is the root
  std::vector<int32_t> node_depth;       // [nodes]
  std::vector<int32_t> subtree_end;      // [nodes]
  std::vector<int32_t> token_offsets;    // [nodes + 1]: tokens ending at each node (CSR)
  std::vector<int32_t> node_tokens;
};

std::shared_ptr<const Vocabulary> make_vocabulary(const std::vector<std::optional<std::string>>& token_bytes,
                                                   std::vector<int32_t> stop_token_ids);

}  // namespace llmkit::grammar
