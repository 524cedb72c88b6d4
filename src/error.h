/* Status codes and the last-error message.
 * The core never exits or aborts on anything a caller can cause: a failing
 * function returns a status (or NULL) and leaves a message naming the op, the
 * argument, what was expected and what it got. The message is per thread. */
#ifndef BN_ERROR_H
#define BN_ERROR_H

typedef enum bn_status {
    BN_OK = 0,
    BN_EARG,    /* a bad argument value (negative size, unknown option, ...) */
    BN_ESHAPE,  /* shapes that do not fit together */
    BN_ENOMEM,  /* an allocation failed or would pass the memory limit */
    BN_EIO,     /* a file could not be read or written */
    BN_EFORMAT, /* a file's contents are not what its format promises */
    BN_ESTATE   /* an operation not allowed now (second backward, grad of a non-scalar, ...) */
} bn_status;

/* Records a failure and returns its status, so a caller can write
 * `return bn_fail(BN_ESHAPE, "conv2d: ...", ...)`. */
bn_status bn_fail(bn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same, for functions that return a pointer: records and returns NULL. */
void *bn_fail_null(bn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with context ("in stage1.block2: ..."). */
void bn_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

bn_status bn_last_status(void);
const char *bn_last_error(void);
void bn_clear_error(void);
const char *bn_status_name(bn_status s);

#endif
