#include "ccrc32c.h"
#include <string.h>

#if defined(__x86_64__) && defined(__SSE4_2__) && defined(__PCLMUL__)
#include <nmmintrin.h>
#include <wmmintrin.h>

/* One crc32 instruction has a latency of 3 cycles and a throughput of 1, so a single stream runs at a
   third of the unit's speed. Large buffers are cut into three interleaved streams of `block` bytes each,
   whose registers are joined afterwards: for the register without pre/post inversion,
   crc(A || B) = crc(A) * x^(8|B|) + crc0(B) mod P, and the multiplication by x^(8|B|) is one carry-less
   multiply by a constant and one crc32 instruction (it reduces a 64-bit value times x^32 mod P). */

enum { LONG_BLOCK = 4096, SHORT_BLOCK = 256 };

/* x^e mod P in the bit-reflected representation the crc32 instruction uses (bit 31 is x^0). */
static uint32_t xpow_mod_p(uint32_t e) {
    uint32_t v = 0x80000000u;
    while (e--) v = (v & 1) ? (v >> 1) ^ 0x82F63B78u : v >> 1;
    return v;
}

/* The constant that shifts a register over `bytes` zero bytes: the reflected carry-less product of two
   32-bit values is the true product times x, and the crc32 instruction multiplies by x^32, hence the 33. */
static uint64_t shift_constant(uint32_t bytes) { return xpow_mod_p(8u * bytes - 33u); }

static uint64_t long_shift, short_shift;

__attribute__((constructor)) static void ballast_crc32c_init(void) {
    long_shift = shift_constant(LONG_BLOCK);
    short_shift = shift_constant(SHORT_BLOCK);
}

static inline uint64_t shift(uint64_t crc, uint64_t k) {
    __m128i product = _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)crc), _mm_cvtsi64_si128((long long)k), 0x00);
    return _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(product));
}

static inline uint64_t load64(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* Three streams of `block` bytes from p, folded into c. */
static inline uint64_t three_way(uint64_t c, const unsigned char *p, size_t block, uint64_t k) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < block; i += 8) {
        c = _mm_crc32_u64(c, load64(p + i));
        c1 = _mm_crc32_u64(c1, load64(p + block + i));
        c2 = _mm_crc32_u64(c2, load64(p + 2 * block + i));
    }
    c = shift(c, k) ^ c1;
    return shift(c, k) ^ c2;
}

uint32_t ballast_crc32c(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = ~crc & 0xFFFFFFFFu;
    for (; length >= 3 * LONG_BLOCK; p += 3 * LONG_BLOCK, length -= 3 * LONG_BLOCK) c = three_way(c, p, LONG_BLOCK, long_shift);
    for (; length >= 3 * SHORT_BLOCK; p += 3 * SHORT_BLOCK, length -= 3 * SHORT_BLOCK) c = three_way(c, p, SHORT_BLOCK, short_shift);
    for (; length >= 8; p += 8, length -= 8) c = _mm_crc32_u64(c, load64(p));
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
