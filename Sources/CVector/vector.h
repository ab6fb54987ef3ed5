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
#endif
