/* op.h - the core's side of the op table (op.c) and typed tensors
 * (tensor.c), as the core's modules and the test suite see them.  Not
 * installed: plugins use the mltk_op_* API of <mltk/backend.h>.
 */
#ifndef MLTK_OP_H
#define MLTK_OP_H

#include <stdarg.h>
#include <mltk/backend.h>
#include "internal.h"

/* The core's per-backend-instance state behind struct mltk_backend.state:
 * the last error message and the host-synchronisation counter.
 * mltk_backend_open() (session.c) attaches one; mltk_backend_close()
 * detaches and frees it.  A backend without a state (a test that built a
 * struct mltk_backend by hand) still runs ops; its errors go to the log. */
MLTK_HIDDEN struct mltk_backend_state *mltk_backend_state_new(void);
MLTK_HIDDEN void mltk_backend_state_free(struct mltk_backend_state *st);
/* Replace the backend's last error message. */
MLTK_HIDDEN void mltk_backend_set_error(const struct mltk_backend *be, const char *fmt, ...)
    MLTK_PRINTF(2, 3);
MLTK_HIDDEN void mltk_backend_clear_error(const struct mltk_backend *be);

/* The op table: for each op its name, tensor count, which tensors are
 * outputs and which are optional, and the size of its params struct.
 * For tests (the conformance table walks it) and `mltk plugins show`. */
typedef struct mltk_op_info {
    mltk_op     op;
    const char *name;          /* "gemm" */
    int         n_t;           /* tensors in a call */
    int         n_out;         /* the first n_out are outputs */
    unsigned    optional;      /* bit i: tensor i may be absent */
    size_t      params_size;   /* sizeof its params struct, 0 if none */
    const char *tensor_names;  /* "C,A,B,bias" */
} mltk_op_info;
/* NULL for an id that is not an op. */
MLTK_HIDDEN const mltk_op_info *mltk_op_info_get(mltk_op op);

#endif /* MLTK_OP_H */
