/* session.h - the model graph, the data pipeline and the training session,
 * as the core's modules (and the test suite) see them.  Not installed. */
#ifndef MLTK_SESSION_H
#define MLTK_SESSION_H

#include <pthread.h>

#include "internal.h"

/* ---- a backend instance (session.c) ------------------------------------ */

/* Load backend plugin `name` through the registry, check that its vtable
 * has the ABI 2 members (through `run`), probe it with `opts`, create it
 * and attach the core's backend state (last error, host-sync counter).
 * On a failed probe returns MLTK_ERR_BACKEND with the reason in *err.
 * mltk_backend_close() destroys the backend and frees that state. */
MLTK_HIDDEN int mltk_backend_open(struct mltk_backend *be, mltk_registry_t *reg,
                                  const char *name, const mltk_backend_opts *opts,
                                  char **err);
MLTK_HIDDEN void mltk_backend_close(struct mltk_backend *be);

/* ---- parameters built outside a config file (params.c) ----------------- */

/* Validate n key/value pairs against descriptors descs[0..n_desc) (a key
 * may be declared by any of them; required keys of all of them must be
 * present) and build the params.  `file` and `lines` (may be NULL) name
 * where each pair came from; `what` names the section for messages, e.g.
 * "layer 'fc1' (dense)".  Errors read
 *   "train.ini:14: layer 'fc1' (dense): unknown key 'unit'; did you mean 'units'?" */
MLTK_HIDDEN int mltk_params_build(mltk_params_t **out, const mltk_desc *const *descs,
                                  int n_desc, int n, const char *const *keys,
                                  const char *const *values, const int *lines,
                                  const char *file, int section_line,
                                  const char *what, char **err);

/* ---- one layer outside a model (model.c), for tests and tools ---------- */

typedef struct mltk_single_layer {
    mltk_shape   out;        /* per-sample output shape from setup */
    int          n_params;
    mltk_tensor *params;     /* per-layer shapes (no batch dim), initialised */
    mltk_tensor *grads;      /* same shapes */
    int          n_buffers;
    mltk_tensor *buffers;    /* byte buffers (dtype U8, 1-d) */
    /* private */
    void        *priv;
} mltk_single_layer;

/* Run iface->setup for per-sample input shapes in[0..n_in), then allocate
 * and initialise (with `seed`) its parameters, gradients and buffers on
 * `be`.  `self` is what iface->create returned. */
MLTK_HIDDEN int mltk_single_layer_create(mltk_single_layer **sl,
                                         const struct mltk_layer_i *iface,
                                         void *self, const struct mltk_backend *be,
                                         int n_in, const mltk_shape *in,
                                         int64_t max_batch, uint64_t seed,
                                         char **err);
MLTK_HIDDEN void mltk_single_layer_destroy(mltk_single_layer *sl,
                                           const struct mltk_backend *be);


/* ---- the model graph (model.c) ----------------------------------------- */

typedef struct mltk_model mltk_model;

/* Build the layer graph from the config's [layer.*] sections: load each
 * plugin, create it, resolve named inputs, infer shapes (errors name the
 * layer and its config line), lay out the flat parameter and gradient
 * buffers and all activation memory, and initialise the parameters with
 * `seed`.  `in` is the per-sample data shape. */
MLTK_HIDDEN int mltk_model_create(mltk_model **m, const mltk_config_t *cfg,
                                  mltk_registry_t *reg,
                                  const struct mltk_backend *be,
                                  const mltk_shape *in, int64_t max_batch,
                                  uint64_t seed, char **err);
MLTK_HIDDEN void mltk_model_destroy(mltk_model *m);
/* x: batch of inputs (batch, in...) in backend memory. */
MLTK_HIDDEN int mltk_model_forward(mltk_model *m, const void *x, int64_t batch,
                                   mltk_mode mode, uint64_t step, char **err);
/* After forward in TRAIN mode and with the output gradient written into
 * mltk_model_output(m)->dy: fill the flat gradient buffer. */
MLTK_HIDDEN int mltk_model_backward(mltk_model *m, int64_t batch, uint64_t step,
                                    char **err);
/* The last layer's output and output-gradient buffers (max_batch rows). */
MLTK_HIDDEN float *mltk_model_output(mltk_model *m);
MLTK_HIDDEN float *mltk_model_output_grad(mltk_model *m);
MLTK_HIDDEN const mltk_shape *mltk_model_output_shape(const mltk_model *m);
MLTK_HIDDEN float *mltk_model_params(mltk_model *m, int64_t *n);
MLTK_HIDDEN float *mltk_model_grads(mltk_model *m, int64_t *n);
/* Tell the model its parameters changed (an optimizer step, a restored
 * checkpoint, loaded weights, a rollback): it refreshes what it derives
 * from them, e.g. the low-precision copies layers read under [run]
 * precision = bf16.  Cheap when there is nothing to refresh; runs ops
 * only, never a host synchronisation. */
MLTK_HIDDEN int mltk_model_params_changed(mltk_model *m, char **err);
MLTK_HIDDEN void mltk_model_print(const mltk_model *m, FILE *out);
/* The parameter tensors as segments of the flat buffers, in layout order:
 * returns (n_seg + 1) element offsets (host memory, owned by the model),
 * the last being the buffers' length.  Padding after a tensor belongs to
 * its segment. */
MLTK_HIDDEN const int64_t *mltk_model_segments(const mltk_model *m, int *n_seg);
/* "layer.param" of segment `seg` (borrowed), or NULL */
MLTK_HIDDEN const char *mltk_model_segment_name(const mltk_model *m, int seg);
/* 1 when the segment's layer has freeze = true */
MLTK_HIDDEN int mltk_model_segment_frozen(const mltk_model *m, int seg);
/* The factor on the learning rate of segment `seg`: its layer's lr_mult,
 * 0 when the layer is frozen. */
MLTK_HIDDEN double mltk_model_segment_lr_mult(const mltk_model *m, int seg);

/* The model's named tensors, what checkpoints and weight files hold: the
 * parameters in layout order, then the layers' persistent state (running
 * statistics, mltk_layer_add_state).  Names are "layer.name" (borrowed from
 * the model); data is backend memory of shape's size. */
typedef struct mltk_model_named {
    const char *name;
    mltk_shape  shape;
    float      *data;
    int         state;   /* 1: persistent state, 0: trainable parameter */
    int         node;    /* the layer that declared it */
    int         frozen;  /* its layer has freeze = true */
} mltk_model_named;
MLTK_HIDDEN int mltk_model_n_tensors(const mltk_model *m);
MLTK_HIDDEN int mltk_model_tensor(const mltk_model *m, int i, mltk_model_named *t);
/* index of the tensor called `name` (filled into *t), or -1 */
MLTK_HIDDEN int mltk_model_find_tensor(const mltk_model *m, const char *name,
                                       mltk_model_named *t);
MLTK_HIDDEN const char *mltk_model_layer_name(const mltk_model *m, int node);
/* After a step that produced a non-finite loss or gradient: describe in
 * `where` the first layer output (in forward order) that is not finite,
 * else (after_backward) the first output gradient or parameter gradient in
 * backward order; returns 1 when one was found. */
MLTK_HIDDEN int mltk_model_find_nonfinite(const mltk_model *m, int64_t batch,
                                          int after_backward, char *where, size_t cap);

/* ---- data (data.c) ----------------------------------------------------------- */

/* One split of a data set, resident in backend memory. */
/* One data set file set: the [data] plugin opened for "train" or "test". */
typedef struct mltk_source {
    const struct mltk_dataset_i *ds;
    void              *self;
    const char        *split;       /* "train" or "test" */
    mltk_dataset_info  info;        /* as the plugin gives it */
    size_t             x_bytes;     /* one native sample */
    int                has_get;     /* else read() of one float32 sample */
    int32_t           *labels;      /* class targets: every sample's label (host) */
} mltk_source;

/* One [transform.NAME] section, opened. */
typedef struct mltk_xform {
    const struct mltk_transform_i *i;
    void              *self;
    const mltk_section *sec;
    int                random, batch;
    int                train_only;  /* applies to the training split only */
    int                eval_only;   /* to the validation and test splits only */
    mltk_sample_spec   in, out;
    size_t             in_bytes, out_bytes;
} mltk_xform;

/* A split the run uses: train, validation (taken from the training data
 * set) or test.  Its samples are src's samples idx[0..n); `train` says
 * whether the random and batch transforms apply.  Resident, it sits in
 * backend memory as float32 rows in idx order (x, y) and a batch is a
 * gather; streamed, the loader's workers prepare each batch on the host. */
typedef struct mltk_split {
    mltk_dataset_info info;  /* x_shape: the model's input, after the transforms */
    const char *name;        /* "train", "validation", "test" */
    mltk_source *src;
    int64_t  n;              /* samples in the split */
    int64_t *idx;            /* [n] the data set's index of each */
    int      train;
    int      resident;
    int64_t  x_numel;        /* floats per sample */
    size_t   y_bytes;        /* bytes per target as the data set gives it */
    mltk_shape  yb_shape;    /* per-sample shape of the targets of a batch: */
    mltk_dtype  yb_dtype;    /* y_shape / class i32, or (C) f32 after mixup */
    size_t   yb_bytes;
    void    *x;              /* resident: (n, x_shape) float32, backend memory */
    void    *y;              /* resident: (n) int32 or (n, y_shape) float32 */
    int32_t  label_max;      /* class targets: the largest label, checked */
    int64_t  label_max_at;   /* the first sample that has it */
    int64_t *class_count;    /* [n_classes] samples per class, or NULL */
    /* balance = oversample (training split): positions grouped by class,
     * class c's at pos_by_class[class_start[c] .. class_start[c + 1]),
     * and the n_present classes that have samples */
    int64_t *class_start, *pos_by_class;
    int32_t *present;
    int64_t  n_present;
    int64_t  n_epoch;        /* samples an epoch draws (n) */
    int32_t *perm_host;      /* this epoch's order: positions in [0, n) */
    int32_t *perm;           /* same, backend memory (resident) */
} mltk_split;

struct mltk_loader;

/* The [data] section at run time (data.c, loader.c). */
typedef struct mltk_data {
    mltk_source  train_src, test_src;
    mltk_xform  *xf;
    int          n_xf;
    size_t       scratch_bytes;     /* the largest sample along the chain */
    int          balance;           /* 0 none, 1 oversample, 2 weights */
    int          standardize;
    float       *mean, *std;        /* [x_numel] when standardize */
    int          workers, prefetch, drop_last;
    int          rank, world;       /* the shard this process trains on (0, 1) */
    struct mltk_loader *ld;
    double       wait_s;            /* seconds the step waited for batches */
    double       wait_mark;         /* wait_s at the start of the epoch */
    double       wait_frac;         /* the last epoch's share of time waited */
    pthread_mutex_t read_mu;        /* serialises an ABI 2.0 plugin's read() */
    int          opened;
} mltk_data;

/* Open the [data] plugin and the [transform.*] sections, build the
 * splits (the validation split stratified by class from the seed), count
 * the classes, compute the standardisation, upload the resident splits
 * and start the workers.  Errors name the file and line, the split and
 * the sample. */
MLTK_HIDDEN int mltk_data_open(mltk_session_t *s, const mltk_section *data, char **err);
MLTK_HIDDEN void mltk_data_close(mltk_session_t *s);
/* The order of `epoch` (from 1) of split sp: the training split shuffled
 * (or oversampled) from the seed and the epoch, any other in order; the
 * batches from `first_batch` on are then prepared ahead by the workers. */
MLTK_HIDDEN int mltk_data_epoch(mltk_session_t *s, mltk_split *sp, int64_t epoch,
                                int64_t first_batch, char **err);
/* The samples of an epoch of sp this process takes (its shard of the
 * training split), and the rows of batch b of them. */
MLTK_HIDDEN int64_t mltk_data_epoch_samples(const mltk_session_t *s, const mltk_split *sp);
MLTK_HIDDEN int64_t mltk_data_rows(const mltk_session_t *s, const mltk_split *sp, int64_t b);
/* Batches of an epoch of sp (drop_last for the training split). */
MLTK_HIDDEN int64_t mltk_data_batches(const mltk_session_t *s, const mltk_split *sp);
/* Batch b of the epoch begun by mltk_data_epoch: its inputs and targets
 * in backend memory (s->xb / s->yb, or the resident split's own rows when
 * no gather is needed), `rows` samples. */
MLTK_HIDDEN int mltk_data_batch(mltk_session_t *s, mltk_split *sp, int64_t b,
                                int64_t *rows, void **x, void **y, char **err);
/* The split evaluated after each epoch: validation when there is one. */
MLTK_HIDDEN mltk_split *mltk_data_eval_split(mltk_session_t *s);

/* loader.c: the worker threads that prepare streamed batches */
typedef struct mltk_loader mltk_loader;
MLTK_HIDDEN int mltk_loader_create(mltk_loader **out, mltk_session_t *s, char **err);
MLTK_HIDDEN void mltk_loader_destroy(mltk_loader *ld);
/* Start preparing batches [first, end) of sp's current order (epoch
 * `epoch`), dropping whatever was being prepared. */
MLTK_HIDDEN void mltk_loader_begin(mltk_loader *ld, mltk_split *sp, int64_t epoch,
                                   int64_t first, int64_t end);
/* Wait for batch b; x (rows, x_numel) float32 and y (rows, yb) host
 * memory valid until mltk_loader_release(b).  Adds the wait to wait_s. */
MLTK_HIDDEN int mltk_loader_get(mltk_loader *ld, int64_t b, int64_t *rows, float **x,
                                void **y, char **err);
MLTK_HIDDEN void mltk_loader_release(mltk_loader *ld, int64_t b);
/* One sample of sp through the transforms (dataset index j, epoch for
 * the random draws) into x (x_numel floats, standardised) and y; the
 * scratch holds two buffers of d->scratch_bytes. */
MLTK_HIDDEN int mltk_data_sample(mltk_session_t *s, const mltk_split *sp, int64_t j,
                                 int64_t epoch, float *x, void *y, void *scratch,
                                 int standardize, char **err);

/* ---- learning-rate schedules (session.c, train.c) --------------------------- */

/* The [schedule] section at run time: a schedule plugin (NULL: constant)
 * and the core's linear warm-up on top of it. */
typedef struct mltk_sched {
    const struct mltk_schedule_i *i;
    void             *self;
    mltk_sched_state  st;            /* base_lr, steps_per_epoch, total_steps */
    int64_t           warmup_steps;
    double            warmup_start;  /* factor at step 0 of the warm-up */
} mltk_sched;

/* Build the schedule of `cfg` for an optimizer rate `lr`: the linear
 * scaling rule (scale_lr = linear: lr * batch_size / 256), the warm-up
 * (warmup_epochs converted with steps_per_epoch) and the plugin.  Without
 * a [schedule] section the rate is constant.  Errors name file:line. */
MLTK_HIDDEN int mltk_sched_open(mltk_sched *sc, const mltk_config_t *cfg,
                                mltk_registry_t *reg, double lr, int64_t batch_size,
                                int64_t steps_per_epoch, int epochs, char **err);
MLTK_HIDDEN void mltk_sched_close(mltk_sched *sc);
/* The rate of the optimizer step `step` (0-based) taken in epoch `epoch`
 * (0-based): the plugin's rate for the epoch times the warm-up factor
 * start + (1 - start) * min(step, W) / W. */
MLTK_HIDDEN double mltk_sched_lr(mltk_sched *sc, int64_t step, int64_t epoch);
/* After `epochs_done` epochs: a metric ("train_loss", "val_loss",
 * "val_acc") for schedules that watch one. */
MLTK_HIDDEN void mltk_sched_observe(mltk_sched *sc, const char *metric, double value,
                                    int64_t epochs_done);

/* ---- the session (session.c, train.c) ---------------------------------------- */

/* The config line of `key` in p, 0 when it is a default. */
MLTK_HIDDEN int mltk_params_key_line(const mltk_params_t *p, const char *key);

/* A training step whose numbers are still on the device (train.c): what
 * is reported for it once they are read back. */
typedef struct mltk_step_rec {
    uint64_t step;           /* its global step, 0-based */
    double   lr;             /* the rate it used */
    double   samples_per_s;  /* the epoch's throughput after it */
    int64_t  done;           /* samples of the epoch done after it */
    double   t_epoch;        /* the epoch's start, as progress reckons it */
    int      last, stop;     /* the epoch's last step; the run stops after it */
} mltk_step_rec;

/* Floats before the per-step records in mltk_session.scalars; each
 * record is 3 floats: loss, sum of squared gradients, non-finite flag. */
#define MLTK_SCALARS_HEAD 8

struct mltk_session {
    mltk_config_t     *cfg;
    mltk_registry_t   *reg;
    mltk_session_opts  opts;
    struct mltk_backend be;
    int                have_be;
    mltk_split         train, val, test;
    mltk_data          data;
    int                tested;       /* the final test evaluation ran (val split) */
    double             test_loss, test_acc;
    mltk_model        *model;
    const struct mltk_loss_i      *loss;
    void                          *loss_self;
    const struct mltk_optimizer_i *opt;
    void                          *opt_self;
    int                opt_slots;
    float             *opt_state[8];
    /* batch staging in backend memory */
    float             *xb;
    void              *yb;
    float             *scalars;   /* [0] loss, [1] loss sum, [2] correct, [3] correct
                                   * sum, [4] squared gradient norm (clipping),
                                   * [5..8) unused, then check_every records of
                                   * the steps not yet read back: loss, sum of
                                   * squared gradients, non-finite flag */
    int64_t            batch_size;
    int                epochs;
    int                shuffle;
    uint64_t           seed;
    double             lr;
    uint64_t           step;
    /* the step and its hooks, the components (train/component.h) */
    struct mltk_step       *stepper;
    struct mltk_components *components;
    /* schedules, clipping, per-layer rates */
    mltk_sched         sched;
    double             clip_norm;    /* [train] clip_norm, 0 = off */
    double             clip_value;   /* [train] clip_value, 0 = off */
    float             *lr_scale;     /* per-element rate factor (n), or NULL */
    float             *opt_scratch;  /* 2 * n_seg (+ 2) floats for the step */
    int                n_seg;
    const int64_t     *seg_off;      /* borrowed from the model */
    int                any_frozen;
    int64_t            steps_per_epoch;
    double             last_lr;      /* rate of the last step taken */
    /* the steps' numbers, read back once per window of steps (train.c) */
    int64_t            check_every;  /* [train] check_every: steps per window */
    int64_t            win_n;        /* steps of the window taken so far */
    mltk_step_rec     *win;          /* [check_every] those steps (host) */
    float             *win_host;     /* [MLTK_SCALARS_HEAD + 3 check_every]: the
                                      * read-back (host) */
    float             *snap;         /* backend memory, check_every > 1 only: the
                                      * parameters, optimizer state, layer state
                                      * and loss sum at the window's start */
    int64_t            snap_n;       /* floats in snap */
    struct {
        uint64_t step;
        int64_t  batch_done, rows_skipped;
        double   last_lr;
    } snap_at;                       /* the counters that go with snap */
    int64_t            replay_to;    /* re-running steps one at a time, checking
                                      * each, up to this step (-1: not) */
    float              replay_rec[3];/* that step's record as it was read back */
    int                sum_known;    /* loss_sum_now holds the device's sum */
    double             last_loss;    /* the newest loss read back */

    /* ---- where the run is (checkpoint.c saves and restores it, and the
     * components' state by name) ---- */
    int64_t            epoch_done;   /* epochs completed */
    int64_t            batch_done;   /* batches done in epoch epoch_done + 1 */
    int64_t            epoch_now;    /* the epoch being trained or last trained, from 1;
                                        0 before the first */
    float              loss_sum_now; /* that epoch's loss sum so far */
    int64_t            rows_skipped; /* that epoch's samples in skipped steps */
    double             lr_factor;    /* rate multiplier left by rollbacks (1) */
    mltk_epoch_stats   last_stats;   /* of the last epoch completed */

    /* ---- the run directory and evaluation metrics (ops.c) ---- */
    char              *run_dir;      /* [run] dir, or NULL */
    struct mltk_metrics *metrics;
    struct mltk_metrics_spec *mspec;
    char              *confusion_path;
    char             **class_names;
    int                n_class_names;
    float             *eval_host;    /* batch_size model outputs, host */
    int32_t           *eval_labels;
    double             t_start;      /* wall clock of mltk_session_train, moved back
                                      * by the time a resumed run had already run */
    int                stop_signal;  /* the signal that ended the run, 0 */
    char               started[32];  /* ISO time the run first started (a resumed
                                      * run keeps its checkpoint's) */
    char              *resumed;      /* ISO times it was resumed at, space-separated,
                                      * or NULL */
    struct {
        char   started[32];          /* "" where the checkpoint has none */
        char  *resumed;              /* or NULL */
        double elapsed_s;            /* training time before it was written */
    } restored;                      /* the run's times in the checkpoint restored
                                      * last (a resume takes them over) */
};

/* ---- checkpoints and weight files (checkpoint.c) ------------------------------ */

/* Write the model's tensors (weights file) or a whole training checkpoint
 * to `path`, atomically. */
MLTK_HIDDEN int mltk_weights_save(mltk_session_t *s, const char *path, char **err);
MLTK_HIDDEN int mltk_ckpt_save(mltk_session_t *s, const char *path, char **err);
/* Restore a training checkpoint into a session built from a config;
 * refuses (MLTK_ERR_CONFIG, listing them) differences in the model, the
 * optimizer, the batch size or the training set. */
MLTK_HIDDEN int mltk_ckpt_restore(mltk_session_t *s, const char *path, char **err);
/* init_from: load tensors by name; strict refuses any mismatch.  Every
 * reader of these files (restore, init_from, inspect) verifies each
 * tensor's CRC-32C ("crc32c.<name>" in the metadata) and the metadata's
 * types and ranges first; a file that cannot be read, is damaged or
 * malformed is MLTK_ERR_DATA naming the file (and the tensor or key). */
MLTK_HIDDEN int mltk_weights_load(mltk_session_t *s, const char *path, int strict,
                                  char **err);
/* "<dir>/ckpt-<step, 12 digits>.safetensors", malloc()ed */
MLTK_HIDDEN char *mltk_ckpt_path(const char *dir, uint64_t step);
/* the newest checkpoint in dir (malloc()ed), NULL when there is none */
MLTK_HIDDEN int mltk_ckpt_latest(const char *dir, char **path, char **err);
/* delete all but the `keep` newest checkpoints of dir */
MLTK_HIDDEN int mltk_ckpt_rotate(const char *dir, int64_t keep, char **err);
/* the newest checkpoint of dir older than `path` (malloc()ed), NULL when
 * there is none: where --resume auto goes when `path` is damaged */
MLTK_HIDDEN int mltk_ckpt_before(const char *dir, const char *path, char **prev,
                                 char **err);
/* Remove the temporary files mltk leaves when killed while writing,
 * "BASE.tmp.PID" and "BASE.tmp.PID.N", of dir whose writer is gone
 * (kill(PID, 0) fails with ESRCH), each with a log line; a live process's
 * are kept.  BASE is one of `bases` (NULL-terminated; "ckpt-*" stands for
 * every checkpoint name) or ".mltk-write-test"; other files are never
 * touched.  Returns how many were removed. */
MLTK_HIDDEN int mltk_remove_stale_tmp(const char *dir, const char *const *bases);
/* make <dir>/best.safetensors the checkpoint at `path` */
MLTK_HIDDEN int mltk_ckpt_mark_best(const char *dir, const char *path, char **err);
/* `mltk inspect`: what a safetensors file holds */
MLTK_HIDDEN int mltk_ckpt_inspect(const char *path, FILE *out, char **err);

/* ---- GPU figures through NVML, loaded at run time (nvml.c) ---------------------- */

typedef struct mltk_gpu_figures {
    double util_percent;   /* NaN where unknown */
    double mem_used_mb;
    double power_w;
} mltk_gpu_figures;
/* 0 and the figures of GPU `dev`; -1 (figures NaN) without NVML. */
MLTK_HIDDEN int mltk_nvml_read(int dev, mltk_gpu_figures *g);

/* ---- the run directory and evaluation metrics (ops.c) ----------------------------- */

/* the run record is a component (train/component.h); this frees the
 * metrics and paths it and evaluation keep in the session */
MLTK_HIDDEN void mltk_ops_free(mltk_session_t *s);
/* the last evaluation's metrics beyond the loss (at most cap), for the logs */
struct mltk_metric_value;
MLTK_HIDDEN int  mltk_ops_metric_values(mltk_session_t *s, struct mltk_metric_value *mv,
                                        int cap, int *n, char **err);
MLTK_HIDDEN void mltk_ops_metrics_reset(mltk_session_t *s);
MLTK_HIDDEN int  mltk_ops_metrics_add(mltk_session_t *s, const float *out, const void *y,
                                      int64_t rows, char **err);
MLTK_HIDDEN void mltk_ops_metrics_print(mltk_session_t *s);

#endif /* MLTK_SESSION_H */
