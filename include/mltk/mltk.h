/* mltk.h - the public API of libmltk.
 *
 * What this is: status codes, error strings, logging, tensors and shapes,
 * plugin parameters, and the top-level entry points the `mltk` command uses
 * (load a config, build a session, train, evaluate).
 * What this is not: the plugin ABI (see plugin.h) or the compute contract
 * (see backend.h).  Handles here are opaque; their layout may change.
 *
 * Ownership: every function that fills a `char **err` allocates the message
 * with malloc(); the caller frees it.  A NULL err is allowed everywhere and
 * means "do not tell me why".  Strings returned as `const char *` are
 * borrowed from the object they came from and live as long as it does.
 */
#ifndef MLTK_MLTK_H
#define MLTK_MLTK_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MLTK_API __attribute__((visibility("default")))
#define MLTK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MLTK_API
#define MLTK_PRINTF(a, b)
#endif

/* ---- status codes ------------------------------------------------------ */

typedef enum mltk_status {
    MLTK_OK            = 0,
    MLTK_ERR_NOMEM     = -1,  /* host or device allocation failed */
    MLTK_ERR_IO        = -2,  /* a file could not be opened, read or written */
    MLTK_ERR_CONFIG    = -3,  /* the user's configuration is invalid */
    MLTK_ERR_PLUGIN    = -4,  /* a plugin is missing, malformed or refused */
    MLTK_ERR_ABI       = -5,  /* a plugin was built for another ABI */
    MLTK_ERR_SHAPE     = -6,  /* tensor shapes do not fit together */
    MLTK_ERR_DATA      = -7,  /* a data file is malformed or truncated */
    MLTK_ERR_BACKEND   = -8,  /* the compute backend failed */
    MLTK_ERR_INVALID   = -9,  /* an API was called with invalid arguments */
    MLTK_ERR_NUMERIC   = -10, /* NaN or Inf where a finite value is needed */
    MLTK_ERR_UNSUPPORTED = -11, /* a backend lacks an op a plugin needs */
    MLTK_ERR_INTERRUPTED = -12  /* stopped by a signal or --max-steps */
} mltk_status;

/* A static string naming a status ("out of memory", ...).  Never NULL. */
MLTK_API const char *mltk_status_str(int status);

/* Set *err (if err != NULL and *err == NULL) to a formatted, malloc()ed
 * message and return `status`.  Plugins use this too:
 *     return mltk_errf(err, MLTK_ERR_SHAPE, "dense: expected 1-d input");   */
MLTK_API int mltk_errf(char **err, int status, const char *fmt, ...) MLTK_PRINTF(3, 4);

/* Prefix an existing message: *err becomes "<prefix>: <old>". */
MLTK_API void mltk_err_prefix(char **err, const char *fmt, ...) MLTK_PRINTF(2, 3);

/* Library version, "MAJOR.MINOR.PATCH". */
MLTK_API const char *mltk_version(void);

/* ---- logging ------------------------------------------------------------ */

typedef enum mltk_log_level {
    MLTK_LOG_ERROR = 0,
    MLTK_LOG_WARN  = 1,
    MLTK_LOG_INFO  = 2,
    MLTK_LOG_DEBUG = 3
} mltk_log_level;

/* Messages at or below the level are written to stderr as
 * "mltk: <level>: <message>\n".  Default MLTK_LOG_INFO; the environment
 * variable MLTK_LOG_LEVEL (error|warn|info|debug) overrides it at start. */
MLTK_API void mltk_log_set_level(mltk_log_level level);
MLTK_API mltk_log_level mltk_log_get_level(void);
MLTK_API void mltk_log(mltk_log_level level, const char *fmt, ...) MLTK_PRINTF(2, 3);

/* ---- shapes, dtypes, tensors ------------------------------------------- */

#define MLTK_MAX_DIMS 6

/* Element types.  Stable numbers, only ever appended. */
typedef enum mltk_dtype {
    MLTK_F32  = 0,
    MLTK_I32  = 1,
    MLTK_F16  = 2,   /* IEEE binary16 */
    MLTK_BF16 = 3,   /* bfloat16: the upper half of an f32 */
    MLTK_U8   = 4,
    MLTK_I8   = 5,
    MLTK_I64  = 6,
    MLTK_DTYPE_COUNT  /* not a dtype */
} mltk_dtype;

/* Bytes per element (0 for an unknown dtype); "f32", "bf16", ... or "?". */
MLTK_API size_t mltk_dtype_size(mltk_dtype dt);
MLTK_API const char *mltk_dtype_name(mltk_dtype dt);
/* 1 for f32, f16 and bf16. */
MLTK_API int mltk_dtype_is_float(mltk_dtype dt);
/* The dtype called `name` ("f32", "bf16", ...), or -1. */
MLTK_API int mltk_dtype_parse(const char *name);

typedef struct mltk_shape {
    int     ndim;
    int64_t dim[MLTK_MAX_DIMS];
} mltk_shape;

/* Number of elements (1 for ndim == 0). */
MLTK_API int64_t mltk_shape_numel(const mltk_shape *s);
/* "(1, 28, 28)" into buf; returns buf. */
MLTK_API char *mltk_shape_str(const mltk_shape *s, char *buf, size_t len);
MLTK_API int mltk_shape_equal(const mltk_shape *a, const mltk_shape *b);
/* Build a shape from n dims. */
MLTK_API mltk_shape mltk_shape_make(int ndim, const int64_t *dims);

/* ---- checked size arithmetic ------------------------------------------- */

/* Sizes (element counts, dimensions, bytes) are never negative.  Each
 * helper stores its result in *out and returns 0, or returns 1, leaving
 * *out alone, when an operand is negative or the result does not fit.
 * Shapes, parameter counts and buffer sizes computed from a user's config
 * go through these, so that an absurd value becomes an error message
 * instead of a wrapped-around size:
 *
 *     int64_t n;
 *     if (mltk_size_mul(&n, units, in))
 *         return mltk_errf(err, MLTK_ERR_CONFIG, "key 'units' ...");  */

/* The most bytes one model may need, parameters, gradients, buffers and
 * activations together (16 TiB, more than any one device holds): the core
 * refuses a larger model when it is built, naming the layer that goes
 * past it, before anything is allocated.  A layer may check its own sizes
 * against it, so as to name the key at fault. */
#define MLTK_MAX_MODEL_BYTES ((int64_t)1 << 44)

/* *out = a * b, within [0, INT64_MAX] */
static inline int mltk_size_mul(int64_t *out, int64_t a, int64_t b)
{
    if (a < 0 || b < 0 || (a > 0 && b > INT64_MAX / a))
        return 1;
    *out = a * b;
    return 0;
}

/* *out = a + b, within [0, INT64_MAX] */
static inline int mltk_size_add(int64_t *out, int64_t a, int64_t b)
{
    if (a < 0 || b < 0 || a > INT64_MAX - b)
        return 1;
    *out = a + b;
    return 0;
}

/* *out = the number of elements of s (1 for ndim 0); 1 for a negative
 * dimension, an ndim outside [0, MLTK_MAX_DIMS] or a product beyond
 * INT64_MAX */
static inline int mltk_size_numel(int64_t *out, const mltk_shape *s)
{
    int64_t n = 1;
    if (!s || s->ndim < 0 || s->ndim > MLTK_MAX_DIMS)
        return 1;
    for (int i = 0; i < s->ndim; i++)
        if (mltk_size_mul(&n, n, s->dim[i]))
            return 1;
    *out = n;
    return 0;
}

/* *out = n elements of `elem` bytes each, as a size_t that also fits in
 * an int64_t (a byte count is a size, and sizes are int64_t) */
static inline int mltk_size_bytes(size_t *out, int64_t n, size_t elem)
{
    int64_t b;
    if (elem > (size_t)INT64_MAX || mltk_size_mul(&b, n, (int64_t)elem))
        return 1;
#if SIZE_MAX < INT64_MAX
    if (b > (int64_t)SIZE_MAX)
        return 1;
#endif
    *out = (size_t)b;
    return 0;
}

/* A tensor is a typed view: `data` points at backend memory (host memory
 * on the cpu backend, device memory on cuda).  It never owns what it
 * points at.  `stride` counts elements; all 0 means contiguous row-major,
 * so a designated initialiser `{ .data = p, .shape = s, .dtype = MLTK_F32 }`
 * or mltk_tensor_make() describes a dense tensor.  At run time
 * shape.dim[0] is the batch dimension. */
typedef struct mltk_tensor {
    void      *data;
    mltk_shape shape;
    mltk_dtype dtype;
    int64_t    stride[MLTK_MAX_DIMS];
} mltk_tensor;

MLTK_API int64_t mltk_tensor_numel(const mltk_tensor *t);
/* A contiguous view of `data` with the given dims. */
MLTK_API mltk_tensor mltk_tensor_make(void *data, mltk_dtype dt, int ndim,
                                      const int64_t *dims);
MLTK_API mltk_tensor mltk_tensor_1d(void *data, mltk_dtype dt, int64_t n);
MLTK_API mltk_tensor mltk_tensor_2d(void *data, mltk_dtype dt, int64_t rows, int64_t cols);
/* The same memory seen as (rows, numel / rows); `t` must be contiguous. */
MLTK_API mltk_tensor mltk_tensor_rows(const mltk_tensor *t, int64_t rows);
/* The stride of dimension d in elements, derived when all are 0. */
MLTK_API int64_t mltk_tensor_stride(const mltk_tensor *t, int d);
/* 1 if the tensor is contiguous row-major (strides all 0 or dense). */
MLTK_API int mltk_tensor_is_contiguous(const mltk_tensor *t);
/* "f32 (128, 784)" into buf; returns buf. */
MLTK_API char *mltk_tensor_str(const mltk_tensor *t, char *buf, size_t len);

/* ---- plugin parameters -------------------------------------------------- */

/* A plugin's validated parameters: every key the plugin's descriptor
 * declares is present, with its type checked and its default filled in.
 * Reading a key the descriptor does not declare is a programming error
 * (logged, returns 0 / NULL).  Borrowed; lives as long as the plugin
 * instance it was given to. */
typedef struct mltk_params mltk_params_t;

MLTK_API int64_t     mltk_params_int(const mltk_params_t *p, const char *key);
MLTK_API double      mltk_params_float(const mltk_params_t *p, const char *key);
MLTK_API int         mltk_params_bool(const mltk_params_t *p, const char *key);
/* string and enum parameters; "" when optional and unset */
MLTK_API const char *mltk_params_str(const mltk_params_t *p, const char *key);
/* 1 if the user set the key explicitly (or it has a default), 0 if unset */
MLTK_API int         mltk_params_has(const mltk_params_t *p, const char *key);
/* type = ints: comma-separated integers; returns the count (<= max) */
MLTK_API int         mltk_params_ints(const mltk_params_t *p, const char *key,
                                      int64_t *out, int max);
/* type = floats: comma-separated numbers; returns the count (<= max) */
MLTK_API int         mltk_params_floats(const mltk_params_t *p, const char *key,
                                        double *out, int max);
/* Where the parameters came from, for messages: "train.ini:14" of the
 * section header, "layer 'fc1' (dense)". */
MLTK_API const char *mltk_params_where(const mltk_params_t *p);

/* ---- the plugin registry ------------------------------------------------ */

typedef struct mltk_registry mltk_registry_t;

typedef enum mltk_plugin_kind {
    MLTK_KIND_BACKEND   = 1,
    MLTK_KIND_LAYER     = 2,
    MLTK_KIND_LOSS      = 3,
    MLTK_KIND_OPTIMIZER = 4,
    MLTK_KIND_DATASET   = 5,
    MLTK_KIND_SCHEDULE  = 6,  /* ABI 1.1 */
    MLTK_KIND_TRANSFORM = 7   /* ABI 2.1 */
} mltk_plugin_kind;

MLTK_API const char *mltk_kind_name(int kind);  /* "layer", ... or "?" */
MLTK_API int mltk_kind_parse(const char *name); /* 0 if unknown */

/* Create a registry and scan the plugin path: each dir in `dirs`
 * (NULL-terminated, may be NULL), then $MLTK_PLUGIN_PATH (colon-separated),
 * then the build tree when the running program is in it, then the
 * installed plugin directory.  The first descriptor seen for a name wins;
 * later ones are recorded as shadowed.  A malformed (or loosely
 * permitted) descriptor does not fail creation: it is recorded as broken,
 * with a warning, and finding or loading it returns its "file:line: ..."
 * error.  An unusable directory the caller named is an error. */
MLTK_API int mltk_registry_create(mltk_registry_t **reg, const char *const *dirs,
                                  int use_default_path, char **err);
MLTK_API void mltk_registry_destroy(mltk_registry_t *reg);

/* Enumerate (for `mltk plugins`): index 0..count-1. */
MLTK_API int mltk_registry_count(const mltk_registry_t *reg);
typedef struct mltk_plugin_info {
    const char *name;
    int         kind;       /* 0: a broken descriptor ... */
    const char *summary;    /* ... whose summary is then its error */
    const char *descriptor; /* path of the .ini */
    const char *library;    /* path of the .so (may not exist) */
    int         abi;
    const char *version;
} mltk_plugin_info;
MLTK_API int mltk_registry_info(const mltk_registry_t *reg, int index,
                                mltk_plugin_info *info);
/* Print the descriptor's parameters as `mltk plugins show` does. */
MLTK_API int mltk_registry_describe(const mltk_registry_t *reg, const char *name,
                                    void *FILE_out, char **err);

/* ---- configuration and training ----------------------------------------- */

typedef struct mltk_config mltk_config_t;

/* Load and strictly validate a training config against the core's own
 * sections and the descriptors of the plugins it names.  Errors name
 * "file:line". */
MLTK_API int mltk_config_load(mltk_config_t **cfg, mltk_registry_t *reg,
                              const char *path, char **err);
MLTK_API void mltk_config_destroy(mltk_config_t *cfg);

typedef struct mltk_session mltk_session_t;

typedef struct mltk_session_opts {
    int   quiet;     /* no per-epoch lines on stdout */
    int   epochs;    /* > 0 overrides [train] epochs */
    void *epoch_out; /* FILE * for epoch lines, NULL = stdout */
    int   log_level; /* 1 + mltk_log_level chosen on the command line, which
                      * wins over [log] level; 0 = none */
    const char *resume;   /* checkpoint to continue from, "auto" for the
                           * newest in the checkpoint directory, or NULL */
    int64_t     max_steps; /* > 0: stop (with a checkpoint) once the run has
                            * taken this many optimizer steps in all */
} mltk_session_opts;

/* Build everything a config describes: pick the backend, open the data,
 * build and shape-check the model, allocate all memory.  Nothing is
 * allocated later. */
MLTK_API int mltk_session_create(mltk_session_t **s, mltk_config_t *cfg,
                                 mltk_registry_t *reg,
                                 const mltk_session_opts *opts, char **err);
MLTK_API void mltk_session_destroy(mltk_session_t *s);

typedef struct mltk_epoch_stats {
    int     epoch;          /* 1-based */
    double  train_loss;
    double  val_loss;
    double  val_acc;
    double  samples_per_s;  /* training throughput of the epoch */
    double  lr;
    double  wall_s;         /* seconds since training started */
} mltk_epoch_stats;

/* Print the backend, data sizes and a table of the model's layers (name,
 * type, inputs, output shape, parameters) to `FILE_out` (a FILE *). */
MLTK_API int mltk_session_print_summary(mltk_session_t *s, void *FILE_out);

/* Train for the configured number of epochs (continuing from opts.resume
 * when given).  `last` (may be NULL) receives the statistics of the final
 * epoch.  Returns MLTK_ERR_INTERRUPTED after SIGINT/SIGTERM or
 * opts.max_steps, once the checkpoint of [checkpoint] is written;
 * mltk_session_signal() then says which signal (0 for max_steps). */
MLTK_API int mltk_session_train(mltk_session_t *s, mltk_epoch_stats *last, char **err);
MLTK_API int mltk_session_signal(const mltk_session_t *s);
/* Run only the data pipeline: `epochs` epochs of the training split's
 * batches (the order, the transforms, the workers, the upload to the
 * backend) without training, and print one line to `FILE_out`:
 *   databench: N samples in S s: R samples/s (workers W, prefetch P, MODE)
 * (`mltk databench`). */
MLTK_API int mltk_session_databench(mltk_session_t *s, int epochs, void *FILE_out,
                                    char **err);

/* ---- files of a run --------------------------------------------------------- */

/* Print what a safetensors checkpoint or weights file holds: format, step,
 * epoch, metrics, every tensor (dtype, shape, min, max, mean) and the
 * config text, to `FILE_out` (a FILE *). */
MLTK_API int mltk_inspect(const char *path, void *FILE_out, char **err);

#ifdef __cplusplus
}
#endif
#endif /* MLTK_MLTK_H */
