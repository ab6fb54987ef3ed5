// Vector operations Swift does not compile to one instruction on Linux.
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
#endif
