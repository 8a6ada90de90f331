#include "grammar/vocabulary.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace llmkit::grammar {

std::shared_ptr<const Vocabulary> make_vocabulary(const std::vector<std::optional<std::string>>& token_bytes,
                                                   std::vector<int32_t> stop_token_ids) {
  auto v = std::make_shared<Vocabulary>();
  v->vocab_size = static_cast<int>(token_bytes.size());
  v->token_bytes.reserve(token_bytes.size());
  for (const auto& t : token_bytes) v->token_bytes.push_back(t.value_or(std::string()));
  for (int32_t id : stop_token_ids) {
    if (id < 0 || id >= v->vocab_size) {
      throw std::invalid_argument("stop token id " + std::to_string(id) + " is outside the vocabulary of " +
                                  std::to_string(v->vocab_size));
    }
  }
  v->stop_token_ids = std::move(stop_token_ids);
  std::vector<int32_t> order;
  for (int32_t i = 0; i < v->vocab_size; ++i) {
    if (!v->token_bytes[i].empty()) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return v->token_bytes[a] < v->token_bytes[b]; });
  std::vector<int32_t> token_node(v->vocab_size, -1);
  v->node_byte.push_back(0);
  v->node_depth.push_back(0);
  std::vector<int32_t> path{0};
  const std::string* previous = nullptr;
  for (int32_t id : order) {
    const std::string& data = v->token_bytes[id];
    size_t common = 0;
    if (previous != nullptr) {
      const size_t limit = std::min(previous->size(), data.size());
      while (common < limit && (*previous)[common] == data[common]) ++common;
    }
    path.resize(common + 1);
    for (size_t k = common; k < data.size(); ++k) {
      v->node_byte.push_back(static_cast<uint8_t>(data[k]));
      v->node_depth.push_back(static_cast<int32_t>(k + 1));
      path.push_back(static_cast<int32_t>(v->node_byte.size() - 1));
    }
    token_node[id] = path.back();
    v->max_token_length = std::max(v->max_token_length, static_cast<int>(data.size()));
    previous = &data;
  }
  const int nodes = static_cast<int>(v->node_byte.size());
  v->subtree_end.assign(nodes, nodes);
  std::vector<int32_t> open;
  for (int32_t node = 0; node < nodes; ++node) {
    while (!open.empty() && v->node_depth[open.back()] >= v->node_depth[node]) {
      v->subtree_end[open.back()] = node;
      open.pop_back();
    }
    open.push_back(node);
  }
  v->token_offsets.assign(nodes + 1, 0);
  for (int32_t id = 0; id < v->vocab_size; ++id) {
    if (token_node[id] >= 0) ++v->token_offsets[token_node[id] + 1];
  }
  std::partial_sum(v->token_offsets.begin(), v->token_offsets.end(), v->token_offsets.begin());
  v->node_tokens.assign(v->token_offsets[nodes], 0);
  std::vector<int32_t> fill(v->token_offsets.begin(), v->token_offsets.end() - 1);
  for (int32_t id = 0; id < v->vocab_size; ++id) {
    if (token_node[id] >= 0) v->node_tokens[fill[token_node[id]]++] = id;
  }
  return v;
}

}  // namespace llmkit::grammar
