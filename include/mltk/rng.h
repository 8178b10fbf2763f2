/* rng.h - the counter-based random numbers every backend must reproduce.
 *
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11).  Element i of a stream (seed, offset) uses counter
 * c = offset + i: block (c / 4) with key (seed lo, seed hi), word (c % 4).
 * Uniforms are (word >> 8) * 2^-24 in [0,1); normals use Box-Muller on the
 * pair of words (2k, 2k+1) of the block, so element c takes
 * words 2*((c%4)/2) and 2*((c%4)/2)+1 and the cosine branch for even c,
 * the sine branch for odd c.  Header-only so that CPU and GPU code share
 * one definition.
 */
#ifndef MLTK_RNG_H
#define MLTK_RNG_H

#include <stdint.h>
#include <math.h>

#ifndef MLTK_HD
#ifdef __CUDACC__
#define MLTK_HD __host__ __device__
#else
#define MLTK_HD
#endif
#endif

static inline MLTK_HD void mltk_philox4x32(uint32_t out[4], uint64_t counter, uint64_t seed)
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* uniform in [0,1) for element c of stream seed */
static inline MLTK_HD float mltk_rng_u01(uint64_t seed, uint64_t c)
{
    uint32_t w[4];
    mltk_philox4x32(w, c >> 2, seed);
    return (float)(w[c & 3] >> 8) * (1.0f / 16777216.0f);
}

/* standard normal for element c of stream seed */
static inline MLTK_HD float mltk_rng_normal01(uint64_t seed, uint64_t c)
{
    uint32_t w[4];
    mltk_philox4x32(w, c >> 2, seed);
    unsigned k = (unsigned)(c & 3) & ~1u;
    /* u1 in (0,1], u2 in [0,1) */
    double u1 = ((double)(w[k] >> 8) + 1.0) * (1.0 / 16777216.0);
    double u2 = (double)(w[k + 1] >> 8) * (1.0 / 16777216.0);
    double r = sqrt(-2.0 * log(u1));
    double a = 6.283185307179586 * u2;
    return (float)((c & 1) ? r * sin(a) : r * cos(a));
}

#endif /* MLTK_RNG_H */
