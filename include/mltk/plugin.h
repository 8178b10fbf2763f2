/* plugin.h - the plugin ABI: entry point, descriptor struct and vtables.
 *
 * What this is: everything a plugin .so includes to be loaded by mltk.
 * A plugin exports exactly one symbol, `mltk_plugin_<name>` (a function
 * returning `const struct mltk_plugin *`), and keeps everything else
 * static.  Its parameters are declared in a descriptor INI next to the .so
 * (see mltk-plugin(7)); the core validates a user's config against that
 * descriptor before any plugin code runs, so plugins read their parameters
 * with mltk_params_*() without further checks.
 *
 * Versioning: structs start with their own size and only ever grow at the
 * end; each member added after ABI 2.0 is commented with the minor that
 * added it.  ABI 2 broke ABI 1 once (typed tensors and the op table of
 * backend.h); a plugin built for ABI 1 is refused with a message saying
 * to rebuild it.  The core refuses a plugin whose major differs from
 * MLTK_ABI_MAJOR or whose minor is newer than MLTK_ABI_MINOR, and never
 * reads a vtable member past the size the plugin reported.
 *
 * What this is not: the compute contract (backend.h) or the public API
 * (mltk.h), both of which this header includes.
 */
#ifndef MLTK_PLUGIN_H
#define MLTK_PLUGIN_H

#include <mltk/mltk.h>
#include <mltk/backend.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MLTK_ABI_MAJOR 2
#define MLTK_ABI_MINOR 1

#define MLTK_PLUGIN_SYMBOL_PREFIX "mltk_plugin_"

/* What the entry symbol returns.  Static storage; never freed. */
struct mltk_plugin {
    uint16_t    abi_major;  /* MLTK_ABI_MAJOR the plugin was built with */
    uint16_t    abi_minor;  /* MLTK_ABI_MINOR the plugin was built with */
    uint32_t    size;       /* sizeof(struct mltk_plugin) as built */
    const char *name;       /* must equal the descriptor's name */
    int         kind;       /* mltk_plugin_kind, must equal the descriptor's */
    const void *iface;      /* struct mltk_<kind>_i * */
};

typedef const struct mltk_plugin *(*mltk_plugin_entry_fn)(void);

/* Define the entry point:  MLTK_PLUGIN(dense, MLTK_KIND_LAYER, &dense_iface) */
#define MLTK_PLUGIN(NAME, KIND, IFACE)                                        \
    __attribute__((visibility("default")))                                    \
    const struct mltk_plugin *mltk_plugin_##NAME(void);                       \
    const struct mltk_plugin *mltk_plugin_##NAME(void)                        \
    {                                                                         \
        static const struct mltk_plugin p = {                                 \
            .abi_major = MLTK_ABI_MAJOR, .abi_minor = MLTK_ABI_MINOR,         \
            .size = sizeof(struct mltk_plugin), .name = #NAME,                \
            .kind = (KIND), .iface = (IFACE) };                               \
        return &p;                                                            \
    }

/* ---- layers --------------------------------------------------------------- */

typedef enum mltk_mode {
    MLTK_EVAL  = 0,
    MLTK_TRAIN = 1
} mltk_mode;

/* Parameter initialisation a layer asks for; the core runs it with the
 * backend's counter-based RNG so that every backend starts from the same
 * weights. */
typedef enum mltk_init_kind {
    MLTK_INIT_ZEROS   = 0,
    MLTK_INIT_CONST   = 1,  /* all = a */
    MLTK_INIT_UNIFORM = 2,  /* U(a, b) */
    MLTK_INIT_NORMAL  = 3   /* N(mean a, std b) */
} mltk_init_kind;

typedef struct mltk_init {
    mltk_init_kind kind;
    double a, b;
} mltk_init;

/* Build an initialiser from its name, with fan-in and fan-out as PyTorch
 * defines them (dense (out,in): fan_in = in, fan_out = out; conv
 * (K, C/g, R, S): fan_in = C/g*R*S, fan_out = K*R*S):
 *   he_normal      N(0, sqrt(2 / fan_in))
 *   he_uniform     U(-b, b), b = sqrt(6 / fan_in)
 *   xavier_normal  N(0, sqrt(2 / (fan_in + fan_out)))
 *   xavier_uniform U(-b, b), b = sqrt(6 / (fan_in + fan_out))
 *   normal         N(0, std)
 *   zeros          0
 *   default        U(-b, b), b = 1 / sqrt(fan_in) (PyTorch's default for
 *                  nn.Linear and nn.Conv2d weights and biases)
 * Returns MLTK_ERR_CONFIG for another name. */
MLTK_API int mltk_init_named(const char *name, double fan_in, double fan_out,
                             double std, mltk_init *out, char **err);

/* The setup context: what a layer may ask the core for while it infers its
 * output shape.  Opaque; valid only during the setup call. */
typedef struct mltk_layer_setup mltk_layer_setup_t;

/* Declare a trainable parameter of per-layer shape `shape`; returns its
 * index (0, 1, ...) in mltk_layer_run.params/grads, or a negative status.
 * The core places it in the model's flat parameter buffer. */
MLTK_API int mltk_layer_add_param(mltk_layer_setup_t *s, const char *name,
                                  const mltk_shape *shape, mltk_init init);
/* Declare a scratch/saved buffer of `bytes` bytes (sized for the largest
 * batch) kept from forward to backward; returns its index in
 * mltk_layer_run.buffers, or a negative status. */
MLTK_API int mltk_layer_add_buffer(mltk_layer_setup_t *s, const char *name,
                                   size_t bytes);
/* Declare a persistent, non-trainable float tensor of per-layer shape
 * `shape` (running statistics, PyTorch's registered buffers): the core
 * allocates it, sets every element to `init` before the first step, saves
 * it in checkpoints and weight files under "layer.name" and restores it on
 * resume; the layer updates it in place.  Returns its index in
 * mltk_layer_run.buffers (a float tensor of `shape`), or a negative
 * status. */
MLTK_API int mltk_layer_add_state(mltk_layer_setup_t *s, const char *name,
                                  const mltk_shape *shape, float init);
/* The largest batch the layer will see. */
MLTK_API int64_t mltk_layer_max_batch(const mltk_layer_setup_t *s);
/* The backend the layer will run on. */
MLTK_API const struct mltk_backend *mltk_layer_backend(const mltk_layer_setup_t *s);
/* Declare that the layer runs `op` in dtype `dt`: MLTK_OK, or
 * MLTK_ERR_UNSUPPORTED with *err naming the op, the dtype, the layer and
 * the backend when the backend does not run it.  Called from setup, so
 * that a session a backend cannot run is refused before training. */
MLTK_API int mltk_layer_need_op(mltk_layer_setup_t *s, mltk_op op, mltk_dtype dt,
                                char **err);
/* The dtype of the run's matrix products ([run] precision): MLTK_F32, or
 * MLTK_BF16 (MLTK_F16) when the layer should compute its products in that
 * dtype with f32 accumulation, from the low-precision copies of its
 * parameters (mltk_layer_run.params_lp), and keep its outputs in f32.  A
 * layer that does not compute in it simply ignores it. */
MLTK_API mltk_dtype mltk_layer_precision(const mltk_layer_setup_t *s);

/* Everything a forward or backward call sees.  Borrowed for the call. */
typedef struct mltk_layer_run {
    const struct mltk_backend *be;
    mltk_mode    mode;
    int64_t      batch;    /* rows in this call, <= max batch */
    int          n_in;
    const mltk_tensor *x;  /* [n_in] inputs, dim[0] = batch */
    mltk_tensor *dx;       /* [n_in] input gradients to OVERWRITE in
                            * backward; dx[i].data == NULL when input i
                            * needs no gradient (e.g. the data) */
    const mltk_tensor *y;  /* output, dim[0] = batch */
    const mltk_tensor *dy; /* output gradient (backward only) */
    mltk_tensor *params;   /* [n_params] parameter views */
    mltk_tensor *grads;    /* [n_params] gradient views to OVERWRITE */
    mltk_tensor *buffers;  /* [n_buffers] scratch views */
    uint64_t     seed;     /* run seed, for layers that draw random numbers */
    uint64_t     step;     /* global step, 0-based */
    int          frozen;   /* the layer's `freeze = true`: its parameters do
                            * not move, and layers with running statistics
                            * (batchnorm) must not update them */
    mltk_tensor *params_lp;/* [n_params] the parameters in the run's
                            * precision (bf16 copies refreshed after every
                            * update), or NULL when it is f32 */
} mltk_layer_run;

struct mltk_layer_i {
    uint32_t size;  /* sizeof(struct mltk_layer_i) as built */
    /* Read parameters, allocate private state.  *self may stay NULL.  A
     * message about one key starts with "key 'NAME' " (or with the key's
     * name and a space): the core then puts the config line that set the
     * key in front of it, instead of the section's.  The same holds for
     * setup's messages. */
    int  (*create)(void **self, const mltk_params_t *params, char **err);
    void (*destroy)(void *self);
    /* Infer the per-sample output shape from per-sample input shapes (the
     * batch dimension excluded), declaring parameters and buffers.  A shape
     * that does not fit is MLTK_ERR_SHAPE with a message saying what was
     * expected.  Sizes derived from keys and input shapes are computed
     * with the checked helpers of mltk.h (mltk_size_mul, ...); a
     * declaration beyond MLTK_MAX_MODEL_BYTES fails, and the core reports
     * it in its own words. */
    int  (*setup)(void *self, mltk_layer_setup_t *s, int n_in,
                  const mltk_shape *in, mltk_shape *out, char **err);
    int  (*forward)(void *self, const mltk_layer_run *r);
    int  (*backward)(void *self, const mltk_layer_run *r);
    /* optional: 1 if the output may alias input 0 (in-place activation).
     * NULL means no. */
    int  (*inplace)(void *self);
};

/* ---- losses --------------------------------------------------------------- */

/* What a data set's targets are. */
typedef enum mltk_target_kind {
    MLTK_TARGET_CLASS = 1,  /* int32 class index per sample */
    MLTK_TARGET_VALUE = 2   /* float32 tensor per sample */
} mltk_target_kind;

struct mltk_loss_i {
    uint32_t size;
    int  (*create)(void **self, const mltk_params_t *params, char **err);
    void (*destroy)(void *self);
    /* pred: per-sample prediction shape; target: its kind and per-sample
     * shape (ndim 0 for class indices); n_classes from the data set (0 if
     * not a classification set). */
    int  (*setup)(void *self, const mltk_shape *pred, mltk_target_kind target,
                  const mltk_shape *target_shape, int64_t n_classes, char **err);
    /* loss (a 1-element f32 tensor, backend memory) = mean loss over the
     * batch; if dpred->data != NULL, dpred = grad_scale * d loss / d pred
     * (overwritten).  grad_scale is 1 unless the core scales the loss
     * (mixed precision). */
    int  (*forward)(void *self, const struct mltk_backend *be,
                    const mltk_tensor *pred, const mltk_tensor *target,
                    const mltk_tensor *loss, const mltk_tensor *dpred,
                    float grad_scale);
};

/* ---- optimizers ----------------------------------------------------------- */

/* One optimizer step over the flat f32 buffers.  Borrowed for the call. */
struct mltk_opt_step {
    uint32_t           size;      /* sizeof(struct mltk_opt_step) */
    const mltk_tensor *p;         /* parameters (n), f32 */
    const mltk_tensor *g;         /* gradients (n), f32 */
    const mltk_tensor *state;     /* [state_slots] buffers like p */
    int64_t            n;
    float              lr;        /* scheduled learning rate */
    int64_t            t;         /* 1-based step */
    const mltk_tensor *lr_scale;  /* per element (n), or NULL for all 1 */
    int                n_seg;     /* parameter tensors in the buffer */
    const int64_t     *seg_off;   /* (n_seg + 1) element offsets, host memory */
    const mltk_tensor *scratch;   /* 2 * n_seg floats of backend memory */
};

struct mltk_optimizer_i {
    uint32_t size;
    int  (*create)(void **self, const mltk_params_t *params, char **err);
    void (*destroy)(void *self);
    /* Number of state floats per parameter (sgd with momentum: 1, adam: 2).
     * The core allocates `slots` zeroed buffers of n floats each, laid out
     * like the parameter buffer, and checkpoints them. */
    int  (*state_slots)(void *self);
    /* One update of the flat buffers, written in the ops of backend.h. */
    int  (*step)(void *self, const struct mltk_backend *be,
                 const struct mltk_opt_step *st);
};

/* ---- learning-rate schedules ---------------------------------------------- */

typedef struct mltk_sched_state {
    double  base_lr;         /* the optimizer's lr (after linear scaling) */
    int64_t step;            /* optimizer steps taken so far, 0-based */
    int64_t epoch;           /* epochs completed so far, 0-based */
    int64_t steps_per_epoch;
    int64_t total_steps;     /* epochs * steps_per_epoch */
} mltk_sched_state;

struct mltk_schedule_i {
    uint32_t size;
    int    (*create)(void **self, const mltk_params_t *params, char **err);
    void   (*destroy)(void *self);
    /* The learning rate for the step about to be taken (warm-up is the
     * core's and is applied on top). */
    double (*lr)(void *self, const mltk_sched_state *st);
    /* optional: the monitored metric after each epoch (reduce_on_plateau) */
    void   (*observe)(void *self, const char *metric, double value,
                      const mltk_sched_state *st);
    /* optional (a schedule whose rate depends on more than
     * mltk_sched_state): its own state as one line of text, which a
     * checkpoint keeps.  save_state writes at most cap bytes including
     * the NUL and returns the length of the whole text (as snprintf);
     * load_state restores it, MLTK_ERR_DATA when the text is not its own. */
    int    (*save_state)(void *self, char *buf, size_t cap);
    int    (*load_state)(void *self, const char *text);
};

/* ---- data sets ------------------------------------------------------------ */

typedef struct mltk_dataset_info {
    int64_t          n;            /* number of samples */
    mltk_shape       x_shape;      /* per-sample input shape, e.g. (1,28,28) */
    mltk_target_kind target;
    mltk_shape       y_shape;      /* per-sample target shape; ndim 0 for class */
    int64_t          n_classes;    /* for MLTK_TARGET_CLASS */
    char             checksum[65]; /* hex digest of the files read, or "" */
    /* ABI 2.1 (the core zeroes the struct before info(), so a 2.0 plugin
     * leaves these 0: float32 samples, scale 0 meaning 1): */
    mltk_dtype       x_dtype;      /* dtype of x as get() returns it: MLTK_F32,
                                    * MLTK_U8 (images) or MLTK_I32 (token ids) */
    double           x_scale;      /* the core's conversion of a U8 / I32 sample
                                    * to float32 at the end of the transforms: */
    double           x_shift;      /* x = raw * x_scale + x_shift (scale 0: 1) */
    /* n_classes names of the classes (folder names, CSV labels), owned by
     * the data set until close; NULL when the classes are only numbers */
    const char *const *class_names;
} mltk_dataset_info;

struct mltk_dataset_i {
    uint32_t size;
    /* Open split "train" or "test".  Files are checked (magic, sizes) here;
     * errors name the file and byte offset (or line). */
    int  (*open)(void **self, const mltk_params_t *params, const char *split,
                 char **err);
    void (*close)(void *self);
    int  (*info)(void *self, mltk_dataset_info *info);
    /* optional since ABI 2.1 (a plugin with get may leave it NULL):
     * samples [first, first+count) into host memory, x as float32
     * (count * numel(x_shape)), y as int32 class indices or float32 values. */
    int  (*read)(void *self, int64_t first, int64_t count, float *x, void *y,
                 char **err);
    /* ABI 2.1: sample i (0 <= i < n) in its native dtype: x gets
     * numel(x_shape) elements of x_dtype, y one int32 class index or
     * numel(y_shape) float32 values.  Called from several loader threads
     * at once (for different or equal i): it must not change self, and
     * whatever it needs per call lives on its stack or in what it
     * allocates.  A sample that cannot be read (a corrupt image) returns
     * MLTK_ERR_DATA with a message naming the file; a data set configured
     * to skip such samples leaves them out of n at open instead. */
    int  (*get)(void *self, int64_t i, void *x, void *y, char **err);
    /* ABI 2.1, optional: the class of sample i without reading x (for the
     * stratified validation split, class balance and the class counts);
     * when NULL the core calls get.  Thread rules as get. */
    int  (*label)(void *self, int64_t i, int32_t *y, char **err);
};

/* ---- transforms (ABI 2.1) ------------------------------------------------- */

/* One sample as a transform sees it: its dtype and shape (images are
 * (C, H, W), C = 1 or 3). */
typedef struct mltk_sample_spec {
    mltk_dtype dtype;
    mltk_shape shape;
} mltk_sample_spec;

/* The flags of a transform (struct mltk_transform_i.flags). */
enum {
    /* draws random numbers: applied to the training split only, and the
     * split is then streamed through the loader, never kept resident */
    MLTK_TRANSFORM_RANDOM = 1u << 0,
    /* works on whole batches (mixup, cutmix) through apply_batch, after
     * every per-sample transform and the conversion to float32; the
     * targets it gets are soft: (rows, n_classes) probabilities */
    MLTK_TRANSFORM_BATCH  = 1u << 1
};

/* The random numbers of a transform: mltk_rng_u01(key, k) (rng.h) for
 * k = 0, 1, 2, ...; the core derives key from (seed, epoch, the sample's
 * index in the data set or the batch's index in the epoch, the
 * transform's position), so the draws do not depend on the number of
 * workers or on which thread runs the transform. */
struct mltk_transform_i {
    uint32_t size;
    uint32_t flags;  /* MLTK_TRANSFORM_* */
    int  (*create)(void **self, const mltk_params_t *params, char **err);
    void (*destroy)(void *self);
    /* The spec of the output for an input spec (a crop's size, U8 ->
     * F32 for normalise); n_classes of the data set (0 for value
     * targets).  An input it cannot take is an error naming the shape or
     * dtype it wants.  Called once, before any apply. */
    int  (*setup)(void *self, const mltk_sample_spec *in, mltk_sample_spec *out,
                  int64_t n_classes, char **err);
    /* Per-sample transforms: dst (out spec) from src (in spec); dst and
     * src never overlap.  Called from several threads at once: self is
     * read-only after setup. */
    int  (*apply)(void *self, uint64_t key, const void *src, void *dst, char **err);
    /* Batch transforms (MLTK_TRANSFORM_BATCH): in place on x (rows, in
     * spec), float32, and y (rows, n_classes) float32 probabilities. */
    int  (*apply_batch)(void *self, uint64_t key, float *x, float *y, int64_t rows,
                        char **err);
};

/* ---- backends ------------------------------------------------------------- */
/* struct mltk_backend_i is in backend.h; a backend plugin's iface points at
 * one. */

#ifdef __cplusplus
}
#endif
#endif /* MLTK_PLUGIN_H */
