/* Atomic file replacement (see atomic_file.h). */
#include "data/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct bn_atomic_file {
    FILE *f;
    char *op, *path, *tmp;
    int err;          /* errno of the first failed write, 0 while all went well */
    bool write_failed;
};

/* Distinguishes temporaries of threads saving to the same path at once. */
static atomic_uint tmp_counter;

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void free_af(bn_atomic_file *af)
{
    free(af->op);
    free(af->path);
    free(af->tmp);
    free(af);
}

bn_atomic_file *bn_atomic_file_open(const char *op, const char *path)
{
    if (!op) op = "save";
    if (!path || !*path) return bn_fail_null(BN_EARG, "%s: path expected", op);
    bn_atomic_file *af = calloc(1, sizeof *af);
    size_t tlen = strlen(path) + 48;
    if (!af || !(af->op = dup_str(op)) || !(af->path = dup_str(path)) || !(af->tmp = malloc(tlen))) {
        if (af) free_af(af);
        return bn_fail_null(BN_ENOMEM, "%s: %s: out of memory", op, path);
    }
    /* O_EXCL: never write into a file someone else created; retry on a
     * stale temporary left by a killed process that had the same pid. */
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(af->tmp, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&tmp_counter, 1));
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        bn_fail(BN_EIO, "%s: %s: cannot create %s: %s", op, path, af->tmp, strerror(errno));
        free_af(af);
        return NULL;
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        bn_fail(BN_EIO, "%s: %s: cannot open %s: %s", op, path, af->tmp, strerror(e));
        free_af(af);
        return NULL;
    }
    return af;
}

bool bn_atomic_file_write(bn_atomic_file *af, const void *buf, size_t n)
{
    if (af->write_failed) return false;
    errno = 0; /* fwrite need not set errno; a stale value would mislead */
    if (n && fwrite(buf, 1, n, af->f) != n) {
        af->write_failed = true;
        af->err = errno ? errno : EIO;
    }
    return !af->write_failed;
}

FILE *bn_atomic_file_stream(bn_atomic_file *af) { return af->f; }

const char *bn_atomic_file_temp_path(const bn_atomic_file *af) { return af->tmp; }

/* fsync of the directory makes the rename itself survive a power loss.
 * Some file systems cannot fsync a directory (EINVAL); the rename has
 * happened, so that is not worth failing the save for. */
static int sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = dup_str(".");
    else if (slash == path)
        dir = dup_str("/");
    else {
        size_t n = (size_t)(slash - path);
        dir = malloc(n + 1);
        if (dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (!dir) return ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc == EINVAL || rc == EOPNOTSUPP ? 0 : rc;
}

bn_status bn_atomic_file_commit(bn_atomic_file *af)
{
    if (!af) return bn_fail(BN_EARG, "atomic file: commit of NULL");
    const char *step = "write";
    int err = af->err;
    if (af->write_failed) goto fail;
    /* Someone wrote through the stream directly and it failed. */
    if (ferror(af->f)) {
        err = EIO;
        goto fail;
    }
    step = "flush";
    if (fflush(af->f) != 0) {
        err = errno;
        goto fail;
    }
    step = "fsync";
    if (fsync(fileno(af->f)) != 0) {
        err = errno;
        goto fail;
    }
    step = "close";
    int rc = fclose(af->f);
    af->f = NULL;
    if (rc != 0) {
        err = errno;
        goto fail;
    }
    step = "rename";
    if (rename(af->tmp, af->path) != 0) {
        err = errno;
        goto fail;
    }
    /* The new file is in place; only its durability is in doubt now. */
    err = sync_dir(af->path);
    if (err) {
        bn_fail(BN_EIO, "%s: %s: fsync of the directory after renaming %s failed: %s", af->op, af->path,
                af->tmp, strerror(err));
        free_af(af);
        return BN_EIO;
    }
    free_af(af);
    return BN_OK;

fail:
    if (af->f) fclose(af->f);
    af->f = NULL;
    unlink(af->tmp);
    bn_fail(BN_EIO, "%s: %s: %s of %s failed: %s", af->op, af->path, step, af->tmp, strerror(err ? err : EIO));
    free_af(af);
    return BN_EIO;
}

void bn_atomic_file_abort(bn_atomic_file *af)
{
    if (!af) return;
    if (af->f) fclose(af->f);
    unlink(af->tmp);
    free_af(af);
}
