#ifndef CCRC32C_H
#define CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (pass 0 to start). Uses the SSE4.2
/// crc32 instruction on x86-64 and a bytewise table elsewhere.
uint32_t ballast_crc32c(uint32_t crc, const void *data, size_t length);

#endif
