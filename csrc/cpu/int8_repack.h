// Q8_0 / Q4_0 / Q4_1 weights repacked for the int8-activation matmul (cpu/quant_int8_impl.h), the idea of
// llama.cpp's Q4_0x8: rows in groups of 8, interleaved so that one 256-bit vector holds 4 consecutive
// weights of each of the 8 rows. A maddubs against the token's 4 activation bytes broadcast to all 8
// rows then yields every row's partial dot in its own lanes, and one madd/cvt/fma per block finishes
// 8 rows at once (the GGUF layout needs that per row, plus a horizontal sum at the end).
//
// Layout: group g (rows 8g..8g+7), block b (columns 32b..32b+31) at groups + (g * blocks + b) * group_block_bytes:
//   fp16 d[8]                      the 8 rows' scales, as stored (converted to float32 in the kernel)
//   fp16 m[8]                      Q4_1 only: the 8 rows' mins
//   Q4_0/Q4_1: 4 x 32 bytes        vector k (k = 0..3), byte 4r + j = the row's stored byte qs[4k + j]:
//                                  low nibble = weight 4k + j, high nibble = weight 16 + 4k + j
//   Q8_0:      8 x 32 bytes        vector k (k = 0..7), byte 4r + j = the row's weight 4k + j (int8)
// so a group block takes exactly the bytes of its 8 rows' GGUF blocks. Rows past the last full group
// (rows % 8) are copied in the GGUF layout into `tail`, which the kernel reads with the unpacked path.
//
// Memory: the copy takes the stored weight's bytes again. Where the stored weight is a read-only file
// mapping (a memory-mapped GGUF), its pages are dropped while it is repacked and fault back from the file
// if anything reads it later, so only the copy stays resident.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "common/kernel_args.h"

namespace llmkit {

constexpr int64_t kPackRows = 8;

// A repacked weight as the kernels read it (memory owned by a PackedInt8Buffer).
struct PackedInt8Weight {
  WeightFormat format = WeightFormat::kQ4_0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_bytes = 0;          // of a GGUF row (tail rows)
  int64_t group_rows = 0;         // rows / 8 * 8: the rows in groups
  int64_t group_block_bytes = 0;  // one group's block (see above)
  const uint8_t* groups = nullptr;
  const uint8_t* tail = nullptr;  // rows [group_rows, rows) in the GGUF layout
};

inline bool repackable_for_int8(WeightFormat f) {
  return f == WeightFormat::kQ8_0 || f == WeightFormat::kQ4_0 || f == WeightFormat::kQ4_1;
}

// GGUF block bytes and the bytes of its fp16 header (d, or d and m) for the repackable formats.
inline int64_t gguf_block_bytes(WeightFormat f) {
  return f == WeightFormat::kQ8_0 ? 34 : (f == WeightFormat::kQ4_1 ? 20 : 18);
}
inline int64_t gguf_header_bytes(WeightFormat f) { return f == WeightFormat::kQ4_1 ? 4 : 2; }

// True when [data, data + bytes) lies in one read-only file-backed mapping (a memory-mapped GGUF): its
// resident pages may then be dropped, and anything that reads them again faults them back from the file
// unchanged. Anonymous or writable memory is never released: it would read back as zeros.
// `mapping`, when given, receives the mapping's [begin, end).
inline bool read_only_file_mapping(const void* data, int64_t bytes, uintptr_t* mapping = nullptr) {
#if defined(__linux__)
  if (bytes <= 0) return false;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data), end = begin + uintptr_t(bytes);
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr) return false;
  bool found = false;
  char line[4096];
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    unsigned long lo = 0, hi = 0, offset = 0, inode = 0;
    char perms[8] = {0}, dev[32] = {0};
    int path_at = 0;
    if (std::sscanf(line, "%lx-%lx %7s %lx %31s %lu %n", &lo, &hi, perms, &offset, dev, &inode, &path_at) < 6) continue;
    if (begin < lo || begin >= hi) continue;
    const bool has_path = path_at > 0 && line[path_at] == '/';
    found = end <= hi && inode != 0 && has_path && perms[0] == 'r' && perms[1] == '-';
    if (found && mapping != nullptr) {
      mapping[0] = lo;
      mapping[1] = hi;
    }
    break;
  }
  std::fclose(maps);
  return found;
#else
  (void)data;
  (void)bytes;
  (void)mapping;
  return false;
#endif
}

inline uintptr_t page_bytes() {
#if defined(__linux__)
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  return page;
#else
  return 4096;
#endif
}

// Drops this process's resident pages wholly inside [begin, end) of a range read_only_file_mapping accepted.
inline void drop_file_pages(const uint8_t* begin, const uint8_t* end) {
#if defined(__linux__)
  const uintptr_t page = page_bytes();
  const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;
  const uintptr_t last = reinterpret_cast<uintptr_t>(end) / page * page;
  if (first < last) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
#else
  (void)begin;
  (void)end;
#endif
}

// Row `row` of a repacked weight back in its GGUF layout (`row_bytes` bytes at `out`): the packing's inverse,
// so decoding it gives exactly the stored row (the embedding lookup of a table whose pages were released).
inline void unpack_row(const PackedInt8Weight& w, int64_t row, uint8_t* out) {
  if (row >= w.group_rows) {
    std::memcpy(out, w.tail + (row - w.group_rows) * w.row_bytes, size_t(w.row_bytes));
    return;
  }
  const int64_t block = gguf_block_bytes(w.format), header = gguf_header_bytes(w.format), payload = block - header;
  const int64_t blocks = w.cols / 32, r = row % kPackRows;
  const uint8_t* group = w.groups + row / kPackRows * blocks * w.group_block_bytes;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* in = group + b * w.group_block_bytes;
    uint8_t* to = out + b * block;
    for (int64_t h = 0; h < header / 2; ++h) std::memcpy(to + h * 2, in + (h * kPackRows + r) * 2, 2);
    in += header * kPackRows;
    for (int64_t k = 0; k < payload / 4; ++k) std::memcpy(to + header + k * 4, in + (k * kPackRows + r) * 4, 4);
  }
}

// Owns a 64-byte aligned repacked copy of a stored weight [rows, row_bytes]. With release_stored, the
// stored weight's pages are dropped as the repacking passes them (every 1 MiB) when it is a read-only file
// mapping, so the stored and the repacked copy are never both resident in full (released() says so).
class PackedInt8Buffer {
 public:
  PackedInt8Buffer(const uint8_t* weight, WeightFormat format, int64_t rows, int64_t cols,
                   bool release_stored = false) {
    if (!repackable_for_int8(format)) throw std::invalid_argument("only Q8_0 / Q4_0 / Q4_1 weights are repacked");
    if (cols <= 0 || cols % 32 != 0 || rows < 0) throw std::invalid_argument("cols must be a positive multiple of 32");
    const int64_t block = gguf_block_bytes(format), header = gguf_header_bytes(format);
    const int64_t blocks = cols / 32, payload = block - header;
    view_.format = format;
    view_.rows = rows;
    view_.cols = cols;
    view_.row_bytes = blocks * block;
    view_.group_rows = rows / kPackRows * kPackRows;
    view_.group_block_bytes = kPackRows * block;
    const int64_t bytes = rows * view_.row_bytes;
    data_ = static_cast<uint8_t*>(std::aligned_alloc(64, size_t((bytes + 63) / 64 * 64 + 64)));
    if (data_ == nullptr) throw std::bad_alloc();
    bytes_ = bytes;
    uintptr_t mapping[2] = {0, 0};
    released_ = release_stored && read_only_file_mapping(weight, bytes, mapping);
    const uint8_t* dropped_to = weight;  // pages before this are released
    uint8_t* out = data_;
    for (int64_t g = 0; g < view_.group_rows / kPackRows; ++g) {
      const uint8_t* rows8 = weight + g * kPackRows * view_.row_bytes;
      for (int64_t b = 0; b < blocks; ++b) {
        // fp16 headers: d of the 8 rows, then (Q4_1) m of the 8 rows.
        for (int64_t h = 0; h < header / 2; ++h) {
          for (int64_t r = 0; r < kPackRows; ++r) {
            std::memcpy(out + (h * kPackRows + r) * 2, rows8 + r * view_.row_bytes + b * block + h * 2, 2);
          }
        }
        out += header * kPackRows;
        // Payload in 4-byte pieces: vector k holds piece k of each row.
        for (int64_t k = 0; k < payload / 4; ++k) {
          for (int64_t r = 0; r < kPackRows; ++r) {
            std::memcpy(out + (k * kPackRows + r) * 4, rows8 + r * view_.row_bytes + b * block + header + k * 4, 4);
          }
        }
        out += payload * kPackRows;
      }
      // Release what has been read, up to a page boundary, every 1 MiB.
      const uint8_t* read_to = rows8 + kPackRows * view_.row_bytes;
      const uint8_t* boundary = read_to - reinterpret_cast<uintptr_t>(read_to) % page_bytes();
      if (released_ && boundary - dropped_to >= (int64_t(1) << 20)) {
        drop_file_pages(dropped_to, boundary);
        dropped_to = boundary;
      }
    }
    view_.groups = data_;
    view_.tail = out;
    std::memcpy(out, weight + view_.group_rows * view_.row_bytes, size_t((rows - view_.group_rows) * view_.row_bytes));
    if (released_) {
      drop_file_pages(dropped_to, weight + bytes);
      // A read fault maps the file's cached pages around it too (64 KiB on Linux), so the neighbouring
      // tensors' edges came in with this one's first and last pages, and the edge pages it shares with
      // them stayed: drop those as well (the mapping is read-only and file-backed, so they fault back
      // unchanged if read). 4.7 MB on SmolLM2-135M.
      const uintptr_t around = uintptr_t(1) << 16, begin = reinterpret_cast<uintptr_t>(weight);
      const uintptr_t end = begin + uintptr_t(bytes);
      const uintptr_t before = begin - mapping[0] < around ? mapping[0] : begin - around;
      const uintptr_t after = mapping[1] - end < around ? mapping[1] : end + around;
      drop_file_pages(reinterpret_cast<const uint8_t*>(before), reinterpret_cast<const uint8_t*>(after));
    }
  }
  PackedInt8Buffer(const PackedInt8Buffer&) = delete;
  PackedInt8Buffer& operator=(const PackedInt8Buffer&) = delete;
  ~PackedInt8Buffer() { std::free(data_); }

  const PackedInt8Weight& view() const { return view_; }
  int64_t bytes() const { return bytes_; }
  bool released() const { return released_; }

 private:
  uint8_t* data_ = nullptr;
  int64_t bytes_ = 0;
  bool released_ = false;
  PackedInt8Weight view_;
};

}  // namespace llmkit
