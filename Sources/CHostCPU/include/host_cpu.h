// Which CPU features a build's code uses, which ones this CPU has, and a clear
// error instead of SIGILL when a binary built for one CPU runs on an older one.
//
// This file (and host_cpu.c) is compiled without `-target-cpu`: SwiftPM passes
// `-Xswiftc` flags to Swift only. Its inline function, though, is compiled where it
// is used: imported into a Swift module, Clang sees that module's target CPU, so
// `herd_build_cpu_features()` says what the Swift code around it may execute.
#ifndef HERD_HOST_CPU_H
#define HERD_HOST_CPU_H

#include <stddef.h>

// Feature bits, named as /proc/cpuinfo names them.
#define HERD_CPU_AVX2 1u
#define HERD_CPU_FMA 2u
#define HERD_CPU_AVX512F 4u
#define HERD_CPU_AVX512BW 8u
#define HERD_CPU_AVX512DQ 16u
#define HERD_CPU_AVX512VL 32u
#define HERD_CPU_ALL 63u

/// The features the including code is compiled for (`make`: AVX2 and FMA for
/// `-target-cpu haswell`, those and the four AVX-512 ones for `skylake-avx512`,
/// none for `HERD_PORTABLE=1`).
static inline unsigned herd_build_cpu_features(void) {
  unsigned features = 0;
#ifdef __AVX2__
  features |= HERD_CPU_AVX2;
#endif
#ifdef __FMA__
  features |= HERD_CPU_FMA;
#endif
#ifdef __AVX512F__
  features |= HERD_CPU_AVX512F;
#endif
#ifdef __AVX512BW__
  features |= HERD_CPU_AVX512BW;
#endif
#ifdef __AVX512DQ__
  features |= HERD_CPU_AVX512DQ;
#endif
#ifdef __AVX512VL__
  features |= HERD_CPU_AVX512VL;
#endif
  return features;
}

/// The features this CPU has and the kernel lets programs use (CPUID and XGETBV,
/// through the compiler's `__builtin_cpu_supports`).
unsigned herd_host_cpu_features(void);

/// Writes the names of `features` ("avx2 fma ...") into `buffer` (at most `size`
/// bytes with the NUL); returns the length it needed.
size_t herd_cpu_feature_names(unsigned features, char *buffer, size_t size);

/// Writes the error for a binary built for `needed` on a CPU that lacks `missing`
/// (`program` names the binary) into `buffer`; returns the length it needed.
size_t herd_cpu_message(const char *program, unsigned needed, unsigned missing, char *buffer, size_t size);

/// Returns when this CPU has every feature in `needed`; otherwise writes the error
/// to stderr and exits with status 1, before any code built for those features runs.
/// Call it first in `main`, with `herd_build_cpu_features()`.
void herd_exit_unless_cpu_has(unsigned needed);

#endif
