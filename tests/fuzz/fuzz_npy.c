/* libFuzzer target: the .npy reader (src/data/npy.c). */
#include "data/npy.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_write(data, size);
    bn_tensor *t = bn_npy_load(path);
    if (t) {
        fuzz_check_tensor(t);
        /* Nothing is allocated beyond what the file justifies: every element
         * took at least one byte of the file (bool/int8) -- except 0-size
         * tensors, which have none. */
        if (bn_tensor_numel(t) > (int64_t)size) {
            fprintf(stderr, "fuzz: %lld elements from a %zu-byte file\n", (long long)bn_tensor_numel(t), size);
            abort();
        }
        bn_tensor_release(t);
    } else {
        fuzz_check_error("npy");
    }
    return 0;
}
