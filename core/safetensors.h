/* safetensors.h - reading and writing safetensors files.  Not installed.
 *
 * What this is: the safetensors format of Hugging Face
 * (https://github.com/huggingface/safetensors), as the core and the test
 * suite use it for weights and checkpoints:
 *
 *     u64 N (little-endian) | N bytes of UTF-8 JSON header | tensor data
 *
 * The header maps each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets relative to the start of the data), plus an
 * optional "__metadata__" object of string values.  The writer replaces a
 * file atomically (temporary file, fsync, rename, fsync of the directory);
 * the reader checks everything a hostile file could get wrong before it
 * hands out a pointer.
 * What this is not: a converter.  Tensor bytes are stored and returned as
 * they are, and the format is little-endian, so this module assumes a
 * little-endian host (as does the rest of mltk).  Nothing here knows what
 * a model or a checkpoint is.
 */
#ifndef MLTK_SAFETENSORS_H
#define MLTK_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* The dtypes of the format, in the reference implementation's order. */
typedef enum mltk_st_dtype {
    MLTK_ST_BOOL = 0,
    MLTK_ST_U8,
    MLTK_ST_I8,
    MLTK_ST_F8_E5M2,
    MLTK_ST_F8_E4M3,
    MLTK_ST_I16,
    MLTK_ST_U16,
    MLTK_ST_F16,
    MLTK_ST_BF16,
    MLTK_ST_I32,
    MLTK_ST_U32,
    MLTK_ST_F32,
    MLTK_ST_F64,
    MLTK_ST_I64,
    MLTK_ST_U64,
    MLTK_ST_N_DTYPES
} mltk_st_dtype;

#define MLTK_ST_MAX_DIMS 8
/* The reference implementation's limit on the JSON header. */
#define MLTK_ST_MAX_HEADER 100000000u

/* One tensor.  As the writer's input (mltk_st_entry) every pointer is the
 * caller's and is only read during the call; as the reader's output every
 * pointer is borrowed from the mltk_st_file and lives until
 * mltk_st_close().  `data` is aligned to the dtype's size when the file
 * lays its tensors out so (this writer does only if the caller orders
 * them so); copy with memcpy when in doubt. */
typedef struct mltk_st_tensor {
    const char   *name;     /* UTF-8, not "__metadata__" */
    mltk_st_dtype dtype;
    int           ndim;     /* 0 (a scalar) .. MLTK_ST_MAX_DIMS */
    int64_t       shape[MLTK_ST_MAX_DIMS];
    const void   *data;     /* nbytes bytes, little-endian elements */
    size_t        nbytes;   /* numel(shape) * dtype size */
} mltk_st_tensor;

typedef mltk_st_tensor mltk_st_entry;

typedef struct mltk_st_file mltk_st_file;

/* ---- dtypes ------------------------------------------------------------- */

/* "F32", "BF16", ...; "?" for a value outside the enum. */
MLTK_HIDDEN const char *mltk_st_dtype_name(mltk_st_dtype dt);
/* Bytes per element; 0 for a value outside the enum. */
MLTK_HIDDEN size_t mltk_st_dtype_size(mltk_st_dtype dt);
/* The dtype named exactly `name`, or -1. */
MLTK_HIDDEN int mltk_st_dtype_parse(const char *name);

/* ---- writing ------------------------------------------------------------ */

/* Write tensors t[0..n) and metadata pairs meta_kv[0..2*n_meta) (key,
 * value, key, value, ...) to `path`.  The data follow the caller's order
 * and the header lists the tensors in the same order, after
 * "__metadata__" (omitted when n_meta is 0); the header is padded with
 * spaces to a multiple of 8 bytes.  Names and metadata must be valid
 * UTF-8 and unique; each tensor's nbytes must match its shape and dtype.
 *
 * Crash safety: the file is written to "<path>.tmp.<pid>" in the same
 * directory, flushed with fsync, renamed over `path` and the directory
 * synced.  On failure the temporary file is removed and a previous file
 * at `path` is left as it was; a process killed mid-write leaves the
 * previous file intact (and may leave its temporary file behind; a later
 * write by a process with the same pid replaces it).
 * Returns MLTK_OK, MLTK_ERR_INVALID (bad arguments, message names the
 * tensor or key), MLTK_ERR_IO (message names the file and strerror) or
 * MLTK_ERR_NOMEM. */
MLTK_HIDDEN int mltk_st_write(const char *path, const mltk_st_entry *t, int n,
                              const char *const *meta_kv, int n_meta, char **err);

/* ---- reading ------------------------------------------------------------ */

/* Read and validate the whole file.  On success *f owns a copy of the
 * file; free it with mltk_st_close().  On failure *f is NULL and the
 * message reads "PATH: offset N: what" (N a byte offset in the file; in
 * the JSON header, where jansson stopped reading, with jansson's words),
 * "PATH: header: tensor 'x': what" or "PATH: header: __metadata__: what".  Returns MLTK_ERR_IO when the file
 * cannot be read, MLTK_ERR_DATA when it is malformed or truncated,
 * MLTK_ERR_NOMEM. */
MLTK_HIDDEN int mltk_st_open(mltk_st_file **f, const char *path, char **err);
MLTK_HIDDEN void mltk_st_close(mltk_st_file *f);

/* Tensors in header order (the order the file lists them). */
MLTK_HIDDEN int mltk_st_count(const mltk_st_file *f);
/* Tensor i (0 <= i < count), or NULL. */
MLTK_HIDDEN const mltk_st_tensor *mltk_st_get(const mltk_st_file *f, int i);
/* The tensor named `name`, or NULL. */
MLTK_HIDDEN const mltk_st_tensor *mltk_st_find(const mltk_st_file *f,
                                               const char *name);

/* Metadata, in header order; strings borrowed from f. */
MLTK_HIDDEN int mltk_st_meta_count(const mltk_st_file *f);
MLTK_HIDDEN const char *mltk_st_meta_key(const mltk_st_file *f, int i);
MLTK_HIDDEN const char *mltk_st_meta_value(const mltk_st_file *f, int i);
/* The value of `key`, or NULL. */
MLTK_HIDDEN const char *mltk_st_meta(const mltk_st_file *f, const char *key);

#endif /* MLTK_SAFETENSORS_H */
