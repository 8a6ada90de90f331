// reshape_and_cache on the CPU for every KV format: groups the kept tokens by block for the formats with
// per-block scales (whose kernel grows each block's scale once per step), then runs the active build.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/kernel_args.h"
#include "cpu/kernel_table.h"

namespace llmkit {
namespace cpu {

// Slots must already be checked (< num_blocks * block_size; negative slots skip their token).
inline void write_cache(const CacheWriteArgs& a, int num_threads) {
  const CacheView& c = a.cache;
  std::vector<std::pair<int64_t, int64_t>> kept;  // (block, token)
  if (has_block_scales(c.format)) {
    for (int64_t t = 0; t < a.key.tokens; ++t) {
      const int64_t slot = a.slot_mapping.at(t);
      if (slot >= 0) kept.emplace_back(slot / c.block_size, t);
    }
    std::sort(kept.begin(), kept.end());
  }
  std::vector<int64_t> order(kept.size()), group_starts;
  for (size_t i = 0; i < kept.size(); ++i) {
    order[i] = kept[i].second;
    if (i == 0 || kept[i].first != kept[i - 1].first) group_starts.push_back(int64_t(i));
  }
  group_starts.push_back(int64_t(kept.size()));
  const int64_t groups = int64_t(group_starts.size()) - 1;
  active_table().cache_write(a, order.data(), group_starts.data(), groups, num_threads > 0 ? num_threads : 1);
}

}  // namespace cpu
}  // namespace llmkit
