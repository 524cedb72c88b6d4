/* Shared by the libFuzzer targets (tests/fuzz/fuzz_<reader>.c): the readers
 * take paths, so each input is written to an in-memory file (memfd_create;
 * a /dev/shm file when that is unavailable) and the reader is given
 * /proc/self/fd/N. The file is reused across inputs: truncated, rewritten.
 *
 * Build (see tests/fuzz/Makefile.inc):
 *   clang -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_npy.c libbnlab.a ...
 * Run with -rss_limit_mb=512 -malloc_limit_mb=256 so that a giant allocation
 * (a size taken from a lying header) counts as a finding. */
#ifndef BN_FUZZ_FILE_H
#define BN_FUZZ_FILE_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "tensor.h"

/* Writes data to the fuzz file and returns its path (the same each call). */
__attribute__((unused)) static const char *fuzz_file_write(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[96];
    if (fd < 0) {
        fd = memfd_create("bnlab-fuzz", 0);
        if (fd >= 0) {
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        } else {
            snprintf(path, sizeof path, "/dev/shm/bnlab-fuzz.%d", (int)getpid());
            fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
            if (fd < 0) {
                perror("fuzz: cannot create the input file");
                abort();
            }
        }
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) abort();
        done += (size_t)w;
    }
    return path;
}

/* A reader that failed must say why, naming itself: "<op>: <path>: ...". */
__attribute__((unused)) static void fuzz_check_error(const char *op)
{
    const char *msg = bn_last_error();
    if (!msg || strncmp(msg, op, strlen(op)) != 0 || msg[strlen(op)] != ':') {
        fprintf(stderr, "fuzz: %s failed with a message not starting \"%s:\": %s\n", op, op, msg ? msg : "(null)");
        abort();
    }
}

/* A tensor a reader returned must be consistent: dense, sizes >= 0, and
 * every element readable (ASan checks the reads). */
__attribute__((unused)) static void fuzz_check_tensor(const bn_tensor *t)
{
    if (!t) abort();
    if (t->ndim < 0 || t->ndim > BN_MAX_DIMS) abort();
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0) abort();
        n *= t->shape[d];
    }
    if (n != bn_tensor_numel(t)) abort();
    if (!bn_tensor_is_contiguous(t)) abort();
    volatile float sink = 0;
    const float *p = bn_tensor_data((bn_tensor *)t);
    for (int64_t i = 0; i < n; i++) sink += p[i];
    (void)sink;
}

#endif
