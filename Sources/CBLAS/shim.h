/* OpenBLAS's cblas.h (found through pkg-config "openblas"; Debian: libopenblas-dev).
   Also declares openblas_set_num_threads, openblas_get_num_threads, openblas_get_config,
   openblas_get_corename. */
#include <cblas.h>
