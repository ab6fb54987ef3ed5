#include <cblas.h>

/* OpenBLAS's buffer pool (driver/others/memory.c): exported by libopenblas, not
   declared in cblas.h. Every level-3 call takes a buffer (a region OpenBLAS maps
   once and keeps) to pack its operands in and gives it back. Herd takes one only
   to learn where it lives (OpenBLASPages). */
void *blas_memory_alloc(int procpos);
void blas_memory_free(void *buffer);

/* 1 the first time the calling thread asks, 0 after. Called from one Swift module
   (HerdMath) only: each module importing this header gets its own copy. */
static inline int herd_first_openblas_call_on_thread(void) {
  static _Thread_local int seen = 0;
  if (seen) return 0;
  seen = 1;
  return 1;
}
