/* safetensors files: the checkpoint format (model parameters, optimizer
 * state, and metadata such as the epoch and the RNG state), readable by
 * Hugging Face's safetensors library (safetensors.numpy / .torch load_file).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"epoch": "12", ...},
 *    "layer1.weight": {"dtype": "F32", "shape": [16, 3, 3, 3], "data_offsets": [0, 1728]}, ...}
 * then the byte buffer: each tensor little-endian, C order, at data_offsets
 * relative to the buffer's start.
 *
 * Writing produces F32 tensors and string metadata, byte for byte what the
 * reference writer produces for the same order of entries (compact JSON,
 * "__metadata__" first, header padded with spaces to a multiple of 8), and
 * replaces the file atomically (see atomic_file.h).
 *
 * Reading accepts F16 BF16 F32 F64 I8 I16 I32 I64 U8 U16 U32 U64 BOOL, all
 * converted to float32 (integers beyond 2^24 lose precision: keep exact
 * counters in metadata). It is as strict as the reference reader: the
 * header is valid UTF-8 JSON of at most 100 MB holding only what the format
 * defines; names are unique; each tensor's bytes match its dtype and shape;
 * the tensors tile the buffer exactly, with no overlaps, gaps or trailing
 * bytes. Anything else fails with BN_EFORMAT (BN_EIO when the file cannot
 * be read) and a message "safetensors: <path>: [tensor '<name>': ]<what>".
 * Nothing is allocated beyond what the file's size justifies. */
#ifndef BN_DATA_SAFETENSORS_H
#define BN_DATA_SAFETENSORS_H

#include "tensor.h"

/* The reference implementation's limit on the JSON header. */
#define BN_SAFETENSORS_MAX_HEADER 100000000

/* Saves n tensors (any layout; written in logical row-major order as F32)
 * under unique non-empty names, and n_meta string pairs as "__metadata__"
 * (unique keys). Strings must be valid UTF-8. The order of entries is kept. */
bn_status bn_safetensors_save(const char *path, int n, const char *const *names, bn_tensor *const *tensors, int n_meta,
                              const char *const *meta_keys, const char *const *meta_values);

/* ---- reading ------------------------------------------------------------ */

typedef struct bn_safetensors bn_safetensors;

/* Reads the whole file: every tensor is loaded and converted. *out is NULL
 * on failure. */
bn_status bn_safetensors_load(const char *path, bn_safetensors **out);
void bn_safetensors_free(bn_safetensors *st); /* NULL is fine */

/* Tensors, in the order of their data in the file (for files we write: the
 * order they were saved in). */
int bn_safetensors_count(const bn_safetensors *st);
const char *bn_safetensors_name(const bn_safetensors *st, int i);  /* NULL if i is out of range */
const char *bn_safetensors_dtype(const bn_safetensors *st, int i); /* the file's dtype: "F32", "I64", ... */
bn_tensor *bn_safetensors_tensor(bn_safetensors *st, int i);       /* +1, or NULL (BN_EARG) */
/* Index of `name`, or -1 (no error is recorded: for probing). */
int bn_safetensors_index(const bn_safetensors *st, const char *name);
/* The tensor called `name` (+1), or NULL with BN_EFORMAT "... has no tensor 'name'". */
bn_tensor *bn_safetensors_find(bn_safetensors *st, const char *name);

/* Metadata, in file order. */
int bn_safetensors_meta_count(const bn_safetensors *st);
const char *bn_safetensors_meta_key(const bn_safetensors *st, int i);   /* NULL if out of range */
const char *bn_safetensors_meta_value(const bn_safetensors *st, int i); /* NULL if out of range */
/* The value of `key`, or NULL when absent (no error recorded). */
const char *bn_safetensors_meta(const bn_safetensors *st, const char *key);
/* Typed reads for checkpoint fields. A missing key or a value that is not
 * entirely a number in range fails with BN_EFORMAT naming the key and the
 * value; *out is untouched then. Write integers with "%lld"/"%llu" and
 * doubles with "%.17g" so they read back exactly. */
bn_status bn_safetensors_meta_int(const bn_safetensors *st, const char *key, int64_t *out);
bn_status bn_safetensors_meta_uint(const bn_safetensors *st, const char *key, uint64_t *out);
bn_status bn_safetensors_meta_double(const bn_safetensors *st, const char *key, double *out);

#endif
