/* bf16_emul.h - a plain C model of the AVX-512 intrinsics that the native
 * kernels of backends/cpu/cpu_bf16.c use.
 *
 * What this is: the few types and intrinsics of cpu_bf16.c's native path
 * written lane by lane, so that a test build of that file
 * (-DCPU_BF16_EMULATE -I tests) runs the native kernels' packing layout,
 * register tiling, masks and epilogues on any machine, AVX-512 or not.
 * Masked loads and stores touch only the lanes in their masks, as the
 * hardware does, so a mask that reaches past an array shows up under a
 * memory checker.  _mm512_dpbf16_ps follows Intel's SDM description of
 * vdpbf16ps: per float lane j, acc += a[2j+1] b[2j+1] (fused), then acc
 * += a[2j] b[2j] (fused), denormal inputs read as zero and denormal
 * results flushed to zero, rounding to nearest even.
 *
 * What this is not: a general emulator (only what cpu_bf16.c calls), fast
 * (a few nanoseconds per lane), or a claim about any particular CPU's
 * vdpbf16ps beyond the SDM's description.
 */
#ifndef MLTK_BF16_EMUL_H
#define MLTK_BF16_EMUL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct { float f[16]; } __m512;
typedef struct { uint32_t u[16]; } __m512i;
typedef struct { uint16_t h[16]; } __m256i;
typedef struct { uint16_t h[32]; } __m512bh;
typedef uint16_t __mmask16;

#define EMU static inline

EMU __m512bh emu_as_bh(__m512i x)
{
    __m512bh r;
    memcpy(&r, &x, sizeof r);
    return r;
}
#define AS_BH(x) emu_as_bh(x)

/* ---- float vectors ---- */

EMU __m512 _mm512_setzero_ps(void)
{
    __m512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = 0.0f;
    return r;
}

EMU __m512 _mm512_set1_ps(float x)
{
    __m512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = x;
    return r;
}

EMU __m512 _mm512_loadu_ps(const void *p)
{
    __m512 r;
    memcpy(&r, p, sizeof r);
    return r;
}

EMU __m512 _mm512_maskz_loadu_ps(__mmask16 k, const void *p)
{
    __m512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = (k >> i) & 1 ? ((const float *)p)[i] : 0.0f;
    return r;
}

EMU void _mm512_storeu_ps(void *p, __m512 x)
{
    memcpy(p, &x, sizeof x);
}

EMU void _mm512_mask_storeu_ps(void *p, __mmask16 k, __m512 x)
{
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            ((float *)p)[i] = x.f[i];
}

EMU __m512 _mm512_mul_ps(__m512 a, __m512 b)
{
    for (int i = 0; i < 16; i++)
        a.f[i] *= b.f[i];
    return a;
}

EMU __m512 _mm512_fmadd_ps(__m512 a, __m512 b, __m512 c)
{
    for (int i = 0; i < 16; i++)
        c.f[i] = fmaf(a.f[i], b.f[i], c.f[i]);
    return c;
}

/* ---- bf16 dot products ---- */

EMU float emu_bf16_daz(uint16_t h)
{
    uint32_t x = (h & 0x7f80u) ? (uint32_t)h << 16 : (uint32_t)(h & 0x8000u) << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

EMU float emu_ftz(float f)
{
    return fpclassify(f) == FP_SUBNORMAL ? copysignf(0.0f, f) : f;
}

EMU __m512 _mm512_dpbf16_ps(__m512 acc, __m512bh a, __m512bh b)
{
    for (int j = 0; j < 16; j++) {
        float s = emu_ftz(fmaf(emu_bf16_daz(a.h[2 * j + 1]), emu_bf16_daz(b.h[2 * j + 1]),
                               emu_ftz(acc.f[j])));
        acc.f[j] = emu_ftz(fmaf(emu_bf16_daz(a.h[2 * j]), emu_bf16_daz(b.h[2 * j]), s));
    }
    return acc;
}

/* ---- integer vectors ---- */

EMU __m512i _mm512_set1_epi32(int x)
{
    __m512i r;
    for (int i = 0; i < 16; i++)
        r.u[i] = (uint32_t)x;
    return r;
}

EMU __m512i _mm512_loadu_si512(const void *p)
{
    __m512i r;
    memcpy(&r, p, sizeof r);
    return r;
}

EMU void _mm512_storeu_si512(void *p, __m512i x)
{
    memcpy(p, &x, sizeof x);
}

EMU void _mm512_mask_storeu_epi32(void *p, __mmask16 k, __m512i x)
{
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            memcpy((char *)p + 4 * i, &x.u[i], 4);
}

EMU __m512i _mm512_castps_si512(__m512 x)
{
    __m512i r;
    memcpy(&r, &x, sizeof r);
    return r;
}

EMU __m512 _mm512_castsi512_ps(__m512i x)
{
    __m512 r;
    memcpy(&r, &x, sizeof r);
    return r;
}

EMU __m512i _mm512_and_si512(__m512i a, __m512i b)
{
    for (int i = 0; i < 16; i++)
        a.u[i] &= b.u[i];
    return a;
}

EMU __m512i _mm512_or_si512(__m512i a, __m512i b)
{
    for (int i = 0; i < 16; i++)
        a.u[i] |= b.u[i];
    return a;
}

EMU __m512i _mm512_add_epi32(__m512i a, __m512i b)
{
    for (int i = 0; i < 16; i++)
        a.u[i] += b.u[i];
    return a;
}

EMU __m512i _mm512_srli_epi32(__m512i a, unsigned n)
{
    for (int i = 0; i < 16; i++)
        a.u[i] = n > 31 ? 0 : a.u[i] >> n;
    return a;
}

EMU __m512i _mm512_slli_epi32(__m512i a, unsigned n)
{
    for (int i = 0; i < 16; i++)
        a.u[i] = n > 31 ? 0 : a.u[i] << n;
    return a;
}

EMU __mmask16 _mm512_cmpgt_epu32_mask(__m512i a, __m512i b)
{
    __mmask16 k = 0;
    for (int i = 0; i < 16; i++)
        if (a.u[i] > b.u[i])
            k |= (__mmask16)(1u << i);
    return k;
}

EMU __m512i _mm512_mask_mov_epi32(__m512i src, __mmask16 k, __m512i a)
{
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            src.u[i] = a.u[i];
    return src;
}

/* ---- 16-bit halves ---- */

EMU __m256i _mm512_cvtepi32_epi16(__m512i a)
{
    __m256i r;
    for (int i = 0; i < 16; i++)
        r.h[i] = (uint16_t)a.u[i];
    return r;
}

EMU __m512i _mm512_cvtepu16_epi32(__m256i a)
{
    __m512i r;
    for (int i = 0; i < 16; i++)
        r.u[i] = a.h[i];
    return r;
}

EMU __m256i _mm256_loadu_si256(const void *p)
{
    __m256i r;
    memcpy(&r, p, sizeof r);
    return r;
}

EMU __m256i _mm256_maskz_loadu_epi16(__mmask16 k, const void *p)
{
    __m256i r;
    for (int i = 0; i < 16; i++)
        r.h[i] = (k >> i) & 1 ? ((const uint16_t *)p)[i] : 0;
    return r;
}

EMU void _mm256_storeu_si256(void *p, __m256i x)
{
    memcpy(p, &x, sizeof x);
}

EMU void _mm256_mask_storeu_epi16(void *p, __mmask16 k, __m256i x)
{
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            ((uint16_t *)p)[i] = x.h[i];
}

#undef EMU

#endif /* MLTK_BF16_EMUL_H */
