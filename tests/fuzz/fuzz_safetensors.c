/* libFuzzer target: the safetensors reader (src/data/safetensors.c): load,
 * then every tensor by index and by name. */
#include "data/safetensors.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_write(data, size);
    bn_safetensors *st = NULL;
    if (bn_safetensors_load(path, &st) != BN_OK) {
        if (st) abort();
        fuzz_check_error("safetensors");
        return 0;
    }
    int n = bn_safetensors_count(st);
    if (n < 0) abort();
    for (int i = 0; i < n; i++) {
        const char *name = bn_safetensors_name(st, i);
        const char *dtype = bn_safetensors_dtype(st, i);
        if (!name || !dtype) abort();
        if (bn_safetensors_index(st, name) != i) abort(); /* names are unique */
        bn_tensor *t = bn_safetensors_tensor(st, i);
        if (!t) abort();
        fuzz_check_tensor(t);
        bn_tensor *u = bn_safetensors_find(st, name);
        if (!u || !bn_shape_equal(t, u)) abort();
        bn_tensor_release(u);
        bn_tensor_release(t);
    }
    if (bn_safetensors_name(st, n) || bn_safetensors_name(st, -1)) abort();
    if (bn_safetensors_tensor(st, n)) abort();
    if (bn_safetensors_find(st, "no such tensor \x01")) abort();
    bn_safetensors_free(st);
    return 0;
}
