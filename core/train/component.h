/* component.h - the training step's hooks and the components around it.
 *
 * What this is: the one small interface every part of training that is
 * not the step itself implements (checkpointing, early stopping, logs,
 * alerts, the NaN policy, progress, loss scaling), the table that lists
 * them (components.c), the state they keep in checkpoints by name, and
 * the step (step.c): gather, forward, loss, backward, the hook after
 * backward, clipping and the optimizer update.
 *
 * A component reads its own config section when the session is built
 * (open: no files are touched), keeps its state in a struct of its own
 * that no other module sees, and is called at the points of the loop:
 * train_begin (files and directories), step_end (a step whose numbers have
 * been read back), epoch_end, train_end.  Its state goes into checkpoint
 * metadata under names it chooses (save_state/load_state), and the same
 * two functions keep it across a window of steps that is run again.
 * Adding a component is one file and one line in the table.
 *
 * What this is not: the loop (train.c), the checkpoint file format
 * (checkpoint.c) or the plugin ABI; components are the core's own and
 * not loaded from plugins.  Not installed.
 */
#ifndef MLTK_TRAIN_COMPONENT_H
#define MLTK_TRAIN_COMPONENT_H

#include "../session.h"

/* ---- named state: checkpoint metadata and window copies --------------------- */

/* A list of key/value strings (owned).  `path` names the checkpoint it was
 * read from, NULL for the in-memory copy taken at a window's start. */
typedef struct mltk_kv {
    char      **kv;      /* key, value, key, value ... */
    int         n, cap;
    const char *path;    /* borrowed */
} mltk_kv;

MLTK_HIDDEN int  mltk_kv_put(mltk_kv *kv, const char *key, const char *fmt, ...)
    MLTK_PRINTF(3, 4);
MLTK_HIDDEN void mltk_kv_free(mltk_kv *kv);
/* the value of `key` (borrowed), or NULL */
MLTK_HIDDEN const char *mltk_kv_get(const mltk_kv *kv, const char *key);
/* A value that must be there: errors read "PATH: not an mltk checkpoint:
 * no 'KEY' in its metadata" or "...: metadata 'KEY' is not a whole number
 * from 0 to MAX".  Whole numbers are plain decimal digits, 0..max. */
MLTK_HIDDEN int mltk_kv_i64(const mltk_kv *kv, const char *key, int64_t max, int64_t *out,
                            char **err);
/* doubles travel as C99 hexadecimal floats ("%a"), exact; inf too, never NaN */
MLTK_HIDDEN int mltk_kv_f64(const mltk_kv *kv, const char *key, double *out, char **err);

/* ---- what the hooks receive --------------------------------------------------- */

/* A step whose loss has been read back (at once, or with its window). */
typedef struct mltk_step_result {
    uint64_t step;           /* the step, 0-based; s->step is step + 1 meanwhile */
    int      epoch;          /* 1-based */
    double   loss;
    double   lr;             /* the rate it used */
    double   samples_per_s;  /* the epoch's throughput after it */
    int64_t  done, total;    /* samples of the epoch done after it, of total */
    double   t_epoch;        /* when the epoch would have started at this rate */
    int      last;           /* the epoch's last step */
    int      stop;           /* a signal or --max-steps ends the run after it */
    int      current;        /* it is the newest step taken (s->batch_done is
                              * right after it): a checkpoint may be written */
} mltk_step_result;

/* A step read back before its update (a checked step). */
typedef struct mltk_step_check {
    float    loss, grad_sq;  /* of this run of the step */
    int      nonfinite;      /* the loss or a gradient is NaN or Inf */
    int      replayed;       /* a window found this step bad: it counts as
                              * such even when it came out finite now */
    float    was[3];         /* replayed: its record as the window read it */
    int      epoch;
    int64_t  batch, rows;
} mltk_step_check;

/* What a before_update hook decides for a checked step. */
enum {
    MLTK_STEP_UPDATE = 0,    /* take the update */
    MLTK_STEP_SKIP = 1,      /* no update; the loss still counts (overflow) */
    MLTK_STEP_DROP = 2,      /* no update, and the loss does not count */
    MLTK_STEP_ROLLED_BACK = 3/* the position moved: the epoch starts again */
};

/* After an epoch. */
typedef struct mltk_epoch_end {
    const mltk_epoch_stats *e;
    int interrupt;           /* a signal or --max-steps ends the run here */
    int stop;                /* set by a component: training ends here */
} mltk_epoch_end;

/* ---- a component -------------------------------------------------------------- */

/* Every member but name may be NULL.  `self` is what open returned. */
typedef struct mltk_component_i {
    const char *name;        /* "checkpoint", also its state's prefix */
    const char *section;     /* the config section it reads, or NULL */
    const char *schema;      /* that section's descriptor (schema.c): its
                              * defaults when the section is absent */
    /* Read `p` (the section's values, or its defaults when the config has
     * no such section: then `sec` is NULL) and register step hooks. */
    int  (*open)(void **self, mltk_session_t *s, const mltk_section *sec,
                 const mltk_params_t *p, char **err);
    void (*close)(void *self);
    int  (*train_begin)(void *self, mltk_session_t *s, char **err);
    /* with [train] check_every > 1: 1 when the window must be read back
     * after step `step` (0-based), e.g. a checkpoint is due */
    int  (*sync_due)(void *self, mltk_session_t *s, uint64_t step);
    int  (*step_end)(void *self, mltk_session_t *s, const mltk_step_result *r, char **err);
    int  (*epoch_end)(void *self, mltk_session_t *s, mltk_epoch_end *ee, char **err);
    /* status: "finished", "stopped_early", "interrupted" or "failed" */
    int  (*train_end)(void *self, mltk_session_t *s, const char *status, char **err);
    int  (*save_state)(void *self, mltk_kv *out);
    int  (*load_state)(void *self, mltk_session_t *s, const mltk_kv *in, char **err);
} mltk_component_i;

/* the components, in the order their hooks run (components.c) */
extern const mltk_component_i mltk_component_run_record, mltk_component_logs,
    mltk_component_progress, mltk_component_alerts, mltk_component_nan_policy,
    mltk_component_loss_scale, mltk_component_early_stop, mltk_component_checkpointing;

/* The self of component `name` in this session, or NULL (for the few
 * functions a component offers the others, below). */
MLTK_HIDDEN void *mltk_component_self(const mltk_session_t *s, const mltk_component_i *c);

/* ---- the set, as the loop and checkpoint.c call it (components.c) ----------- */

MLTK_HIDDEN int  mltk_components_open(mltk_session_t *s, char **err);
MLTK_HIDDEN void mltk_components_close(mltk_session_t *s);
MLTK_HIDDEN int  mltk_components_train_begin(mltk_session_t *s, char **err);
MLTK_HIDDEN int  mltk_components_sync_due(mltk_session_t *s, uint64_t step);
MLTK_HIDDEN int  mltk_components_step_end(mltk_session_t *s, const mltk_step_result *r,
                                          char **err);
MLTK_HIDDEN int  mltk_components_epoch_end(mltk_session_t *s, mltk_epoch_end *ee, char **err);
/* every component's train_end, even after one fails; the first error */
MLTK_HIDDEN int  mltk_components_train_end(mltk_session_t *s, const char *status, char **err);
MLTK_HIDDEN int  mltk_components_save_state(mltk_session_t *s, mltk_kv *out);
MLTK_HIDDEN int  mltk_components_load_state(mltk_session_t *s, const mltk_kv *in, char **err);

/* ---- the step and its hooks (step.c) ------------------------------------------ */

/* A hook of the step, registered by a component's open; called in the
 * order registered.
 *   after_backward  ops only (no host sync): on the flat gradients g (n),
 *                   before the step's checks and clipping (unscale,
 *                   all-reduce)
 *   before_update   a checked step, read back: may set *verdict (it starts
 *                   at MLTK_STEP_UPDATE; a hook sees what earlier ones set)
 *   after_update    every step, with its verdict (MLTK_STEP_UPDATE for a
 *                   step in a window, which is run again if it was not) */
typedef struct mltk_step_hook {
    void *self;
    int (*after_backward)(void *self, mltk_session_t *s, float *g, int64_t n, char **err);
    int (*before_update)(void *self, mltk_session_t *s, const mltk_step_check *c,
                         int *verdict, char **err);
    int (*after_update)(void *self, mltk_session_t *s, int verdict, char **err);
} mltk_step_hook;

#define MLTK_STEP_MAX_HOOKS 8

struct mltk_step {
    mltk_step_hook hooks[MLTK_STEP_MAX_HOOKS];
    int            n_hooks;
    float          grad_scale;  /* the loss's gradient is multiplied by this (1) */
    mltk_kv        win_state;   /* the components' state at the window's start */
};

MLTK_HIDDEN int mltk_step_add_hook(mltk_session_t *s, const mltk_step_hook *h, char **err);

/* Batch `bi` of the epoch's order (its rows into *rows), forward, loss
 * (times grad_scale), backward, the after_backward hooks, then on the
 * device the step's record at `rec` (3 floats): loss, sum of squared
 * gradients, non-finite flag. */
MLTK_HIDDEN int mltk_step_compute(mltk_session_t *s, int64_t bi, int64_t *rows, float *rec,
                                  char **err);
/* A checked step's verdict: the before_update hooks on its record (host). */
MLTK_HIDDEN int mltk_step_judge(mltk_session_t *s, const mltk_step_check *c, int *verdict,
                                char **err);
/* By verdict: loss_sum += rows * loss (UPDATE, SKIP), clip and update at
 * rate lr (UPDATE), mltk_model_params_changed; then the after_update hooks. */
MLTK_HIDDEN int mltk_step_update(mltk_session_t *s, int64_t rows, float *rec, double lr,
                                 int verdict, char **err);
/* The epoch's loss sum (s->loss_sum_now) read back unless known: one host
 * sync, for a checkpoint in the middle of an epoch. */
MLTK_HIDDEN int mltk_step_loss_sum(mltk_session_t *s);
/* s->scalars: the epoch's loss sum and the window's records */
#define MLTK_S_LOSS 0
#define MLTK_S_LOSS_SUM 1
#define MLTK_S_CORRECT 2
#define MLTK_S_CORRECT_SUM 3
#define MLTK_S_GRAD_SQ 4
MLTK_HIDDEN float *mltk_step_record(mltk_session_t *s, int64_t k);
MLTK_HIDDEN int    mltk_step_rec_finite(const float *rec);
/* window copies (backend memory, no host sync) of the parameters,
 * optimizer state, layer state and loss sum; restore == 1 copies back and
 * tells the model its parameters changed */
MLTK_HIDDEN int mltk_step_snapshot(mltk_session_t *s, int restore, char **err);
/* rc with the backend's reason: "what: <backend message>" */
MLTK_HIDDEN int mltk_step_failed(mltk_session_t *s, int rc, const char *what, char **err);

/* rows samples of per-sample shape at data: (rows, per_sample...) */
MLTK_HIDDEN mltk_tensor mltk_batch_tensor(void *data, const mltk_shape *per_sample,
                                          int64_t rows, mltk_dtype dt);
MLTK_HIDDEN mltk_dtype mltk_target_dtype(const mltk_split *sp);

/* ---- what components offer each other --------------------------------------- */

/* components.c: a monitored metric ("val_loss", "val_acc", "train_loss")
 * of an epoch; whether its mode ("auto", "min", "max") maximises; whether
 * v beats best by more than delta (never when v is not finite) */
MLTK_HIDDEN double mltk_metric_of(const mltk_epoch_stats *e, const char *name);
MLTK_HIDDEN int    mltk_monitor_maximize(const char *monitor, const char *mode);
MLTK_HIDDEN int    mltk_metric_better(double v, double best, int maximize, double delta);
/* ops.c: a path key of p, else `def` inside the run directory (NULL
 * without one); malloc()ed */
MLTK_HIDDEN char *mltk_out_path(const mltk_session_t *s, const mltk_params_t *p,
                                const char *key, const char *def);

/* alerts.c: run [alert] command for `event` when it is asked for */
MLTK_HIDDEN void mltk_alert(mltk_session_t *s, const char *event, const char *message);
/* checkpointing.c */
MLTK_HIDDEN const char *mltk_checkpointing_last(const mltk_session_t *s);  /* or NULL */
MLTK_HIDDEN const char *mltk_checkpointing_dir(const mltk_session_t *s);   /* or NULL */
/* the signal (SIGINT, SIGTERM) that asked the run to stop, 0 */
MLTK_HIDDEN int mltk_checkpointing_signal(void);
/* --resume: the checkpoint to restore (malloc()ed; NULL: start afresh) */
MLTK_HIDDEN int mltk_checkpointing_resume_path(mltk_session_t *s, char **path, char **err);
/* nan_policy.c: steps skipped or rolled back so far */
MLTK_HIDDEN int64_t mltk_nan_policy_skips(const mltk_session_t *s);
/* loss_scale.c: the scale the next step uses (1 without loss scaling) */
MLTK_HIDDEN double mltk_loss_scale_value(const mltk_session_t *s);

#endif /* MLTK_TRAIN_COMPONENT_H */
