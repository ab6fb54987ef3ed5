#define _GNU_SOURCE
#include "host_cpu.h"

#include <errno.h>  // program_invocation_short_name (_GNU_SOURCE)
#include <stdio.h>
#include <unistd.h>

static const struct {
  unsigned bit;
  const char *name;
} features[] = {
  {HERD_CPU_AVX2, "avx2"},         {HERD_CPU_FMA, "fma"},           {HERD_CPU_AVX512F, "avx512f"},
  {HERD_CPU_AVX512BW, "avx512bw"}, {HERD_CPU_AVX512DQ, "avx512dq"}, {HERD_CPU_AVX512VL, "avx512vl"},
};

unsigned herd_host_cpu_features(void) {
  unsigned host = 0;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) host |= HERD_CPU_AVX2;
  if (__builtin_cpu_supports("fma")) host |= HERD_CPU_FMA;
  if (__builtin_cpu_supports("avx512f")) host |= HERD_CPU_AVX512F;
  if (__builtin_cpu_supports("avx512bw")) host |= HERD_CPU_AVX512BW;
  if (__builtin_cpu_supports("avx512dq")) host |= HERD_CPU_AVX512DQ;
  if (__builtin_cpu_supports("avx512vl")) host |= HERD_CPU_AVX512VL;
#endif
  return host;
}

size_t herd_cpu_feature_names(unsigned wanted, char *buffer, size_t size) {
  size_t length = 0;
  if (size > 0) buffer[0] = 0;
  for (size_t i = 0; i < sizeof features / sizeof features[0]; i++) {
    if (!(wanted & features[i].bit)) continue;
    int n = snprintf(length < size ? buffer + length : NULL, length < size ? size - length : 0, "%s%s",
                     length > 0 ? " " : "", features[i].name);
    if (n > 0) length += (size_t)n;
  }
  return length;
}

size_t herd_cpu_message(const char *program, unsigned needed, unsigned missing, char *buffer, size_t size) {
  char built[128], lacks[128];
  herd_cpu_feature_names(needed, built, sizeof built);
  herd_cpu_feature_names(missing, lacks, sizeof lacks);
  int n = snprintf(buffer, size,
                   "%s: this binary was built for CPUs with %s, and this CPU lacks %s (it would stop with "
                   "SIGILL at the first such instruction). Build it on this machine (make build), or for any "
                   "x86-64 CPU with HERD_PORTABLE=1 make build (about half the speed).\n",
                   program, built, lacks);
  return n > 0 ? (size_t)n : 0;
}

void herd_exit_unless_cpu_has(unsigned needed) {
  unsigned missing = needed & ~herd_host_cpu_features();
  if (missing == 0) return;
  char message[1024];
  size_t n = herd_cpu_message(program_invocation_short_name, needed, missing, message, sizeof message);
  if (n >= sizeof message) n = sizeof message - 1;
  ssize_t written = write(STDERR_FILENO, message, n);
  (void)written;
  _exit(1);
}
