/* concat.c - join several inputs along one per-sample axis.
 *
 * What this is: y = [x0, x1, ...] along `axis` (0 = the first per-sample
 * dimension, i.e. channels of a (C, H, W) sample; negative counts from
 * the last).  Seen from the axis, each sample is `outer` rows (the product
 * of the dimensions before the axis) of a contiguous block per input
 * (its axis length times the product of the dimensions after it), so both
 * passes are one strided 2-d copy per input (the copy_2d op):
 * forward scatters the inputs' blocks into the output's rows, backward
 * gathers each input's columns of dy back.
 *
 * What this is not: stack (a new axis) or split; every input must have
 * the same number of dimensions and agree on all of them but the axis.
 */
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct concat {
    int64_t  axis_param;  /* as configured, may be negative */
    int      n_in;
    int64_t  outer;       /* product of the dims before the axis */
    int64_t  total;       /* output block per outer row */
    int64_t *block;       /* [n_in] each input's block per outer row */
    int64_t *offset;      /* [n_in] its first column in the output block */
} concat;

/* ---- lifetime ------------------------------------------------------------- */

static int concat_create(void **self, const mltk_params_t *params, char **err)
{
    concat *c = calloc(1, sizeof(*c));

    if (!c)
        return mltk_errf(err, MLTK_ERR_NOMEM, "concat: out of memory");
    c->axis_param = mltk_params_int(params, "axis");
    *self = c;
    return MLTK_OK;
}

static void concat_destroy(void *self)
{
    concat *c = self;

    if (!c)
        return;
    free(c->block);
    free(c->offset);
    free(c);
}

/* ---- shapes --------------------------------------------------------------- */

static int concat_setup(void *self, mltk_layer_setup_t *s, int n_in,
                        const mltk_shape *in, mltk_shape *out, char **err)
{
    concat *c = self;
    char b0[96], b1[96];
    int nd, axis, rc;

    if (n_in < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected at least 1 input, got %d", n_in);
    rc = mltk_layer_need_op(s, MLTK_OP_COPY_2D, MLTK_F32, err);
    if (rc)
        return rc;
    nd = in[0].ndim;
    if (nd < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "input 1 is a scalar per sample; "
                         "there is no axis to join along");
    if (c->axis_param < -nd || c->axis_param >= nd)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "axis = %lld is out of range for %d-d inputs %s "
                         "(expected %d to %d; 0 is the first per-sample dimension)",
                         (long long)c->axis_param, nd, mltk_shape_str(&in[0], b0, sizeof(b0)),
                         -nd, nd - 1);
    axis = (int)(c->axis_param < 0 ? c->axis_param + nd : c->axis_param);
    for (int i = 1; i < n_in; i++) {
        int ok = in[i].ndim == nd;
        for (int k = 0; ok && k < nd; k++)
            ok = k == axis || in[i].dim[k] == in[0].dim[k];
        if (!ok)
            return mltk_errf(err, MLTK_ERR_SHAPE,
                             "input %d has shape %s but input 1 has %s; joining "
                             "along axis %d needs every other dimension to match",
                             i + 1, mltk_shape_str(&in[i], b1, sizeof(b1)),
                             mltk_shape_str(&in[0], b0, sizeof(b0)), axis);
    }

    free(c->block);
    free(c->offset);
    c->block = calloc((size_t)n_in, sizeof(int64_t));
    c->offset = calloc((size_t)n_in, sizeof(int64_t));
    if (!c->block || !c->offset)
        return mltk_errf(err, MLTK_ERR_NOMEM, "concat: out of memory");
    c->n_in = n_in;
    c->outer = 1;
    rc = MLTK_OK;
    for (int k = 0; !rc && k < axis; k++)
        rc = mltk_size_mul(&c->outer, c->outer, in[0].dim[k]);
    *out = in[0];
    out->dim[axis] = 0;
    c->total = 0;
    for (int i = 0; !rc && i < n_in; i++) {
        int64_t inner = 1;
        for (int k = axis; !rc && k < nd; k++)
            rc = mltk_size_mul(&inner, inner, in[i].dim[k]);
        c->block[i] = inner;
        c->offset[i] = c->total;
        if (!rc)
            rc = mltk_size_add(&c->total, c->total, inner);
        if (!rc)
            rc = mltk_size_add(&out->dim[axis], out->dim[axis], in[i].dim[axis]);
    }
    if (rc)
        return mltk_errf(err, MLTK_ERR_SHAPE, "the joined shape of %d inputs overflows", n_in);
    return MLTK_OK;
}

/* ---- forward and backward ------------------------------------------------- */

/* input i's columns of the output's rows: (rows, block_i) with the
 * output's row stride `total` */
static mltk_tensor concat_slot(const concat *c, void *out, int i, int64_t rows)
{
    mltk_tensor t = mltk_tensor_2d((float *)out + c->offset[i], MLTK_F32, rows,
                                   c->block[i]);
    t.stride[0] = c->total;
    t.stride[1] = 1;
    return t;
}

/* x_i (B, outer, block_i) -> y (B, outer, total)[:, :, offset_i + ...] */
static int concat_forward(void *self, const mltk_layer_run *r)
{
    concat *c = self;
    const int64_t rows = r->batch * c->outer;
    int rc = MLTK_OK;

    if (r->n_in != c->n_in)
        return MLTK_ERR_INVALID;
    if (rows == 0)
        return MLTK_OK;
    for (int i = 0; rc == MLTK_OK && i < c->n_in; i++) {
        const mltk_tensor dst = concat_slot(c, r->y->data, i, rows);
        const mltk_tensor src = mltk_tensor_2d(r->x[i].data, MLTK_F32, rows, c->block[i]);
        rc = mltk_op_copy_2d(r->be, &dst, &src, 0);
    }
    return rc;
}

/* dy (B, outer, total) -> dx_i (B, outer, block_i) for inputs that want one */
static int concat_backward(void *self, const mltk_layer_run *r)
{
    concat *c = self;
    const int64_t rows = r->batch * c->outer;
    int rc = MLTK_OK;

    if (r->n_in != c->n_in)
        return MLTK_ERR_INVALID;
    if (rows == 0 || !r->dx)
        return MLTK_OK;
    for (int i = 0; rc == MLTK_OK && i < c->n_in; i++) {
        if (!r->dx[i].data)
            continue;
        const mltk_tensor dst = mltk_tensor_2d(r->dx[i].data, MLTK_F32, rows, c->block[i]);
        const mltk_tensor src = concat_slot(c, r->dy->data, i, rows);
        rc = mltk_op_copy_2d(r->be, &dst, &src, 0);
    }
    return rc;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i concat_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = concat_create,
    .destroy = concat_destroy,
    .setup = concat_setup,
    .forward = concat_forward,
    .backward = concat_backward,
    .inplace = NULL,
};

MLTK_PLUGIN(concat, MLTK_KIND_LAYER, &concat_iface)
