/* libFuzzer target: the CIFAR binary reader (src/data/cifar.c), with 1 and
 * 2 label bytes (CIFAR-10 and CIFAR-100), and two files loaded as one set. */
#include "data/cifar.h"
#include "fuzz_file.h"

static void check_labels(const int64_t *labels, int64_t n, int64_t max)
{
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] > max) {
            fprintf(stderr, "fuzz: label %lld out of range\n", (long long)labels[i]);
            abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_write(data, size);
    for (int lb = 1; lb <= 2; lb++) {
        bn_tensor *x = NULL;
        int64_t *y = NULL, n = 0;
        if (bn_cifar_load(path, lb, &x, &y, &n) == BN_OK) {
            fuzz_check_tensor(x);
            if (x->ndim != 4 || x->shape[0] != n) abort();
            check_labels(y, n, lb == 1 ? 9 : 99);
            bn_tensor_release(x);
            free(y);
        } else {
            if (x || y || n) abort();
            fuzz_check_error("cifar");
        }
    }
    const char *paths[2] = {path, path};
    bn_tensor *x = NULL;
    int64_t *y = NULL, *coarse = NULL, n = 0;
    int lb = size > 0 && (data[0] & 1) ? 2 : 1;
    if (bn_cifar_load_files(2, paths, lb, &x, &y, &coarse, &n) == BN_OK) {
        fuzz_check_tensor(x);
        check_labels(y, n, lb == 1 ? 9 : 99);
        if (coarse) check_labels(coarse, n, 19);
        bn_tensor_release(x);
        free(y);
        free(coarse);
    } else {
        if (x || y || coarse || n) abort();
        fuzz_check_error("cifar");
    }
    return 0;
}
