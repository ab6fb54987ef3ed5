/* cblas_sgemm alone on the LSTM layer's product shapes (N = 32, T = 20, H = 256,
   F inputs), one thread, 3 rounds of 0.5 s per product, GFLOP/s: a BLAS library
   beside `herd bench gemm` (Herd's kernels and OpenBLAS on the same shapes).
   Built against BLIS, it says which sub-configuration BLIS chose for this CPU.

     apt-get install -y libblis-serial-dev
     B=/usr/lib/x86_64-linux-gnu/blis-serial
     gcc -O2 -DUSE_BLIS -I/usr/include/x86_64-linux-gnu/blis-serial benchmarks/cblas_gemm.c \
         -o /tmp/gemm_blis -L$B -lblis -Wl,-rpath,$B && /tmp/gemm_blis 67
     gcc -O2 -I/usr/include/x86_64-linux-gnu/openblas-pthread benchmarks/cblas_gemm.c \
         -o /tmp/gemm_openblas -lopenblas && /tmp/gemm_openblas 67
*/
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef USE_BLIS
#include <blis.h>
#else
extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int);
#endif

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
  const char *name;
  int transA, transB, m, n, k;
} Shape;

int main(int argc, char **argv) {
  int F = argc > 1 ? atoi(argv[1]) : 67;
  if (F < 1) {
    fprintf(stderr, "cblas_gemm: inputs %s: give a positive count (default 67)\n", argv[1]);
    return 2;
  }
  const int H = 256, N = 32, P = 32 * 20;
  Shape shapes[] = {
      {"input projection x W_ih^T", 0, 1, P, 4 * H, F}, {"recurrent step h W_hh^T", 0, 1, N, 4 * H, H},
      {"backward carry dG W_hh", 0, 0, N, H, 4 * H},    {"weight gradient dG^T x", 1, 0, 4 * H, F, P},
      {"weight gradient dG^T h", 1, 0, 4 * H, H, P},    {"input gradient dG W_ih", 0, 0, P, F, 4 * H},
  };
#ifdef USE_BLIS
  printf("BLIS %s, sub-configuration %s\n", bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()));
#else
  openblas_set_num_threads(1);
  printf("OpenBLAS, kernel %s\n", openblas_get_corename());
#endif
  int big = 4 * H * (P > F ? P : F) + 4 * H * H;
  float *a = aligned_alloc(64, sizeof(float) * big), *b = aligned_alloc(64, sizeof(float) * big),
        *c = aligned_alloc(64, sizeof(float) * big);
  for (int i = 0; i < big; i++) {
    a[i] = (float)(i * 7 % 13) / 13.0f - 0.5f;
    b[i] = (float)(i * 5 % 11) / 11.0f - 0.5f;
    c[i] = 0;
  }
  printf("| product | m x n x k | GFLOP/s, rounds 1-3 |\n|---|---|---|\n");
  for (int j = 0; j < 6; j++) {
    Shape s = shapes[j];
    printf("| %s | %d x %d x %d |", s.name, s.m, s.n, s.k);
    for (int round = 0; round < 3; round++) {
      int lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n;
      long reps = 0;
      double start = now();
      do {
        cblas_sgemm(CblasRowMajor, s.transA ? CblasTrans : CblasNoTrans, s.transB ? CblasTrans : CblasNoTrans, s.m,
                    s.n, s.k, 1.0f, a, lda, b, ldb, 0.0f, c, s.n);
        reps++;
      } while (now() - start < 0.5);
      printf(" %.1f", 2.0 * s.m * s.n * s.k * reps / (now() - start) * 1e-9);
    }
    printf(" |\n");
    fflush(stdout);
  }
  return 0;
}
