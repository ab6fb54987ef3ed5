// Vector operations that Swift on Linux cannot spell (shuffles) or compiles poorly
// (a square root through sqrtf, a generic byte-to-float conversion call).
#ifndef HERD_CVECTOR_H
#define HERD_CVECTOR_H

// Swift imports this as SIMD8<Float>.
typedef float herd_float8 __attribute__((ext_vector_type(8)));

// The correctly rounded square root of every lane: one vsqrtps. Swift's
// Float.squareRoot() on Linux goes through C's sqrtf with errno semantics (a scalar
// sqrtss, a test and a call to sqrtf on a negative input), so a SIMD vector's
// squareRoot() was eight of those. Same bits as Float.squareRoot()
// (IEEE 754 square root), lane by lane.
static inline __attribute__((always_inline)) herd_float8 herd_sqrt8(herd_float8 x) {
  return __builtin_elementwise_sqrt(x);
}

// dst[i * ldd + j] = src[j * lds + i] for an 8 x 8 block: eight row loads, three
// rounds of eight two-source shuffles (unpack, 64-bit pairs, 128-bit halves) and
// eight row stores, on ymm registers with AVX2 and AVX-512 alike. Moves bits only.
static inline __attribute__((always_inline)) void herd_transpose8x8(
    const float *src, long lds, float *dst, long ldd) {
  herd_float8 r0, r1, r2, r3, r4, r5, r6, r7;
  __builtin_memcpy(&r0, src, sizeof r0);
  __builtin_memcpy(&r1, src + lds, sizeof r1);
  __builtin_memcpy(&r2, src + 2 * lds, sizeof r2);
  __builtin_memcpy(&r3, src + 3 * lds, sizeof r3);
  __builtin_memcpy(&r4, src + 4 * lds, sizeof r4);
  __builtin_memcpy(&r5, src + 5 * lds, sizeof r5);
  __builtin_memcpy(&r6, src + 6 * lds, sizeof r6);
  __builtin_memcpy(&r7, src + 7 * lds, sizeof r7);
  // Pairs of rows interleaved: t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5].
  herd_float8 t0 = __builtin_shufflevector(r0, r1, 0, 8, 1, 9, 4, 12, 5, 13);
  herd_float8 t1 = __builtin_shufflevector(r0, r1, 2, 10, 3, 11, 6, 14, 7, 15);
  herd_float8 t2 = __builtin_shufflevector(r2, r3, 0, 8, 1, 9, 4, 12, 5, 13);
  herd_float8 t3 = __builtin_shufflevector(r2, r3, 2, 10, 3, 11, 6, 14, 7, 15);
  herd_float8 t4 = __builtin_shufflevector(r4, r5, 0, 8, 1, 9, 4, 12, 5, 13);
  herd_float8 t5 = __builtin_shufflevector(r4, r5, 2, 10, 3, 11, 6, 14, 7, 15);
  herd_float8 t6 = __builtin_shufflevector(r6, r7, 0, 8, 1, 9, 4, 12, 5, 13);
  herd_float8 t7 = __builtin_shufflevector(r6, r7, 2, 10, 3, 11, 6, 14, 7, 15);
  // Quads: u0 = r0..r3 of columns 0 and 4, u1 of 1 and 5, u2 of 2 and 6, u3 of 3 and 7.
  herd_float8 u0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
  herd_float8 u1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
  herd_float8 u2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
  herd_float8 u3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
  herd_float8 u4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
  herd_float8 u5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
  herd_float8 u6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
  herd_float8 u7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
  // Halves: column c is the low (c < 4) or high half of u[c % 4] and u[4 + c % 4].
  herd_float8 c0 = __builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11);
  herd_float8 c1 = __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11);
  herd_float8 c2 = __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11);
  herd_float8 c3 = __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11);
  herd_float8 c4 = __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15);
  herd_float8 c5 = __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15);
  herd_float8 c6 = __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15);
  herd_float8 c7 = __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15);
  __builtin_memcpy(dst, &c0, sizeof c0);
  __builtin_memcpy(dst + ldd, &c1, sizeof c1);
  __builtin_memcpy(dst + 2 * ldd, &c2, sizeof c2);
  __builtin_memcpy(dst + 3 * ldd, &c3, sizeof c3);
  __builtin_memcpy(dst + 4 * ldd, &c4, sizeof c4);
  __builtin_memcpy(dst + 5 * ldd, &c5, sizeof c5);
  __builtin_memcpy(dst + 6 * ldd, &c6, sizeof c6);
  __builtin_memcpy(dst + 7 * ldd, &c7, sizeof c7);
}

typedef float herd_float16 __attribute__((ext_vector_type(16)));
typedef unsigned char herd_uchar16 __attribute__((ext_vector_type(16)));

// dst[i] = (float)src[i] * scale for 16 bytes: one widening load (vpmovzxbd), one
// conversion and one multiply on AVX-512 (two of each on AVX2). Swift's
// SIMD16<Float>(SIMD16<UInt8>) is a call to a generic conversion on Linux, and a
// scalar loop over 16 elements takes the vectoriser's 4-wide remainder path.
// Same bits as Float(src[i]) * scale (the conversion is exact; one rounding).
static inline __attribute__((always_inline)) void herd_scale_bytes16(
    const unsigned char *src, float scale, float *dst) {
  herd_uchar16 v;
  __builtin_memcpy(&v, src, sizeof v);
  herd_float16 f = __builtin_convertvector(v, herd_float16) * scale;
  __builtin_memcpy(dst, &f, sizeof f);
}

// 1 where this header is compiled for a target with FMA, 0 elsewhere (a portable
// x86-64 build): Swift has no condition on target features, and the packed kernels
// choose their multiply-add by it.
#if defined(__FMA__)
#define HERD_TARGET_HAS_FMA 1
#else
#define HERD_TARGET_HAS_FMA 0
#endif

// a * b + c per lane: one fused multiply-add (one rounding) where the target has
// FMA, a product and a sum elsewhere. Swift does not contract a * b + c, and its
// addingProduct must round once on any target, which without FMA means a call to
// fmaf per lane. This header is compiled for the same target as the Swift code
// that inlines it.
static inline __attribute__((always_inline)) herd_float16 herd_fma16(
    herd_float16 a, herd_float16 b, herd_float16 c) {
#if defined(__FMA__)
  return __builtin_elementwise_fma(a, b, c);
#else
  herd_float16 p = a * b;
  return p + c;
#endif
}

#endif
