/* session.h - the model graph, the data pipeline and the training session,
 * as the core's modules (and the test suite) see them.  Not installed. */
#ifndef MLTK_SESSION_H
#define MLTK_SESSION_H

#include "internal.h"

/* ---- a backend instance (session.c) ------------------------------------ */

/* Load backend plugin `name` through the registry, probe it, create it.
 * On a failed probe returns MLTK_ERR_BACKEND with the reason in *err. */
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

#endif /* MLTK_SESSION_H */

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
MLTK_HIDDEN void mltk_model_print(const mltk_model *m, FILE *out);

/* ---- data (data.c) ----------------------------------------------------------- */

/* One split of a data set, resident in backend memory. */
typedef struct mltk_split {
    mltk_dataset_info info;
    int64_t  n;           /* samples used (after a limit) */
    int64_t  x_numel;     /* floats per sample */
    size_t   y_bytes;     /* bytes per target */
    void    *x;           /* (n, x_shape) float32, backend memory */
    void    *y;           /* (n) int32 or (n, y_shape) float32 */
    int32_t *perm_host;   /* training order of this epoch (host) */
    int32_t *perm;        /* same, backend memory */
} mltk_split;

/* Open split `name` ("train"/"test") with the dataset plugin of the
 * [data] section, read the first `limit` samples (0 = all) and upload
 * them.  Errors are MLTK_ERR_DATA / MLTK_ERR_IO naming the file. */
MLTK_HIDDEN int mltk_split_load(mltk_split *sp, const mltk_section *data,
                                mltk_registry_t *reg, const struct mltk_backend *be,
                                const char *name, int64_t limit, char **err);
MLTK_HIDDEN void mltk_split_free(mltk_split *sp, const struct mltk_backend *be);
/* Draw the order of `epoch` (Fisher-Yates on a Philox stream of seed) and
 * upload it; identity order when shuffle is 0. */
MLTK_HIDDEN int mltk_split_shuffle(mltk_split *sp, const struct mltk_backend *be,
                                   uint64_t seed, int64_t epoch, int shuffle);

/* ---- the session (session.c, train.c) ---------------------------------------- */

struct mltk_session {
    mltk_config_t     *cfg;
    mltk_registry_t   *reg;
    mltk_session_opts  opts;
    struct mltk_backend be;
    int                have_be;
    mltk_split         train, test;
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
    float             *scalars;   /* [0] loss, [1] loss sum, [2] correct, [3] correct sum */
    int64_t            batch_size;
    int                epochs;
    int                shuffle;
    uint64_t           seed;
    double             lr;
    uint64_t           step;
    FILE              *jsonl;
    const char        *jsonl_path;
};
