// cblas.h is under /usr/include/x86_64-linux-gnu/openblas-pthread/, found through pkg-config openblas.
#include <cblas.h>
// Declared by OpenBLAS (openblas_config.h / cblas.h); repeated here in case a cblas.h omits them.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
