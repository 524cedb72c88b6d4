/* libFuzzer target: bnlab checkpoints, i.e. safetensors files whose
 * "__metadata__" carries the training state (epoch, RNG state, the
 * serialized Lua state): bn_safetensors_load and every metadata accessor,
 * including the typed reads a resume does. The corpus is metadata-heavy. */
#include <math.h>

#include "data/safetensors.h"
#include "fuzz_file.h"

static void typed_reads(const bn_safetensors *st, const char *key)
{
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    const char *v = bn_safetensors_meta(st, key);
    bn_status a = bn_safetensors_meta_int(st, key, &i);
    bn_status b = bn_safetensors_meta_uint(st, key, &u);
    bn_status c = bn_safetensors_meta_double(st, key, &d);
    if (!v && (a == BN_OK || b == BN_OK || c == BN_OK)) abort(); /* a missing key never reads */
    if (a != BN_OK || b != BN_OK || c != BN_OK) {
        const char *msg = bn_last_error();
        if (!msg || !*msg) abort();
    }
    if (a == BN_OK && b == BN_OK && i >= 0 && (uint64_t)i != u) abort();
    (void)d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_write(data, size);
    bn_safetensors *st = NULL;
    if (bn_safetensors_load(path, &st) != BN_OK) {
        if (st) abort();
        fuzz_check_error("safetensors");
        return 0;
    }
    int m = bn_safetensors_meta_count(st);
    if (m < 0) abort();
    for (int i = 0; i < m; i++) {
        const char *k = bn_safetensors_meta_key(st, i);
        const char *v = bn_safetensors_meta_value(st, i);
        if (!k || !v) abort();
        const char *w = bn_safetensors_meta(st, k);
        if (!w || strcmp(v, w) != 0) abort(); /* keys are unique */
        volatile size_t sink = strlen(k) + strlen(v);
        (void)sink;
        typed_reads(st, k);
    }
    if (bn_safetensors_meta_key(st, m) || bn_safetensors_meta_value(st, -1)) abort();
    static const char *const fields[] = {"epoch", "step", "rng_seed", "rng_offset", "lr", "format",
                                         "bnlab_state", "", "no such key"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) typed_reads(st, fields[i]);
    int n = bn_safetensors_count(st);
    for (int i = 0; i < n; i++) {
        bn_tensor *t = bn_safetensors_tensor(st, i);
        if (!t) abort();
        bn_tensor_release(t);
    }
    bn_safetensors_free(st);
    return 0;
}
