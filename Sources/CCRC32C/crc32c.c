#include "ccrc32c.h"
#include <string.h>

#if defined(__x86_64__) && defined(__SSE4_2__)
#include <nmmintrin.h>

uint32_t ballast_crc32c(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = ~crc & 0xFFFFFFFFu;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        length -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (length--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}
#else
static uint32_t table[256];
static int ready = 0;

uint32_t ballast_crc32c(uint32_t crc, const void *data, size_t length) {
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *p = (const unsigned char *)data;
    uint32_t c = ~crc;
    while (length--) c = table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}
#endif
