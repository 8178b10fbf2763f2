/* tensor.c - dtypes, shapes and typed tensor views.
 *
 * What this is: the element types (size, name, parse), shape arithmetic
 * and printing, and the helpers that build and describe mltk_tensor views:
 * contiguous views of a buffer, the (rows, cols) view of a tensor, derived
 * strides and the contiguity test the op checks (op.c) are written with.
 * What this is not: memory.  A tensor never owns what it points at;
 * nothing here allocates, and nothing reads or writes tensor data.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- dtypes ---------------------------------------------------------------- */

static const char *const dtype_names[MLTK_DTYPE_COUNT] = {
    [MLTK_F32] = "f32", [MLTK_I32] = "i32", [MLTK_F16] = "f16", [MLTK_BF16] = "bf16",
    [MLTK_U8] = "u8",   [MLTK_I8] = "i8",   [MLTK_I64] = "i64"
};

size_t mltk_dtype_size(mltk_dtype dt)
{
    switch (dt) {
    case MLTK_F32:  return 4;
    case MLTK_I32:  return 4;
    case MLTK_F16:  return 2;
    case MLTK_BF16: return 2;
    case MLTK_U8:   return 1;
    case MLTK_I8:   return 1;
    case MLTK_I64:  return 8;
    case MLTK_DTYPE_COUNT: break;
    }
    return 0;
}

const char *mltk_dtype_name(mltk_dtype dt)
{
    if ((int)dt < 0 || (int)dt >= (int)MLTK_DTYPE_COUNT)
        return "?";
    return dtype_names[dt];
}

int mltk_dtype_is_float(mltk_dtype dt)
{
    return dt == MLTK_F32 || dt == MLTK_F16 || dt == MLTK_BF16;
}

int mltk_dtype_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < (int)MLTK_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_names[i]) == 0)
            return i;
    return -1;
}

/* ---- shapes ------------------------------------------------------------------ */

int64_t mltk_shape_numel(const mltk_shape *s)
{
    if (!s)
        return 0;
    int64_t n = 1;
    for (int i = 0; i < s->ndim && i < MLTK_MAX_DIMS; i++)
        n *= s->dim[i];
    return n;
}

char *mltk_shape_str(const mltk_shape *s, char *buf, size_t len)
{
    if (!buf || len == 0)
        return buf;
    size_t off = 0;
    int n = snprintf(buf, len, "(");
    off = n > 0 ? (size_t)n : 0;
    int ndim = s ? s->ndim : 0;
    if (ndim > MLTK_MAX_DIMS)
        ndim = MLTK_MAX_DIMS;
    for (int i = 0; i < ndim && off < len; i++) {
        n = snprintf(buf + off, len - off, "%s%lld", i ? ", " : "",
                     (long long)s->dim[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    if (off < len)
        snprintf(buf + off, len - off, ")");
    return buf;
}

int mltk_shape_equal(const mltk_shape *a, const mltk_shape *b)
{
    if (!a || !b || a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim && i < MLTK_MAX_DIMS; i++)
        if (a->dim[i] != b->dim[i])
            return 0;
    return 1;
}

mltk_shape mltk_shape_make(int ndim, const int64_t *dims)
{
    mltk_shape s;
    memset(&s, 0, sizeof s);
    if (ndim < 0)
        ndim = 0;
    if (ndim > MLTK_MAX_DIMS)
        ndim = MLTK_MAX_DIMS;
    s.ndim = ndim;
    for (int i = 0; i < ndim && dims; i++)
        s.dim[i] = dims[i];
    return s;
}

/* ---- tensor views ------------------------------------------------------------- */

int64_t mltk_tensor_numel(const mltk_tensor *t)
{
    return t ? mltk_shape_numel(&t->shape) : 0;
}

mltk_tensor mltk_tensor_make(void *data, mltk_dtype dt, int ndim, const int64_t *dims)
{
    mltk_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dt;
    t.shape = mltk_shape_make(ndim, dims);
    return t;
}

mltk_tensor mltk_tensor_1d(void *data, mltk_dtype dt, int64_t n)
{
    return mltk_tensor_make(data, dt, 1, &n);
}

mltk_tensor mltk_tensor_2d(void *data, mltk_dtype dt, int64_t rows, int64_t cols)
{
    int64_t dims[2] = { rows, cols };
    return mltk_tensor_make(data, dt, 2, dims);
}

/* t (...) seen as (rows, numel / rows); rows <= 0 gives (0, 0) */
mltk_tensor mltk_tensor_rows(const mltk_tensor *t, int64_t rows)
{
    if (!t)
        return mltk_tensor_2d(NULL, MLTK_F32, 0, 0);
    if (rows <= 0)
        return mltk_tensor_2d(t->data, t->dtype, 0, 0);
    return mltk_tensor_2d(t->data, t->dtype, rows, mltk_tensor_numel(t) / rows);
}

static int has_strides(const mltk_tensor *t)
{
    for (int d = 0; d < t->shape.ndim && d < MLTK_MAX_DIMS; d++)
        if (t->stride[d] != 0)
            return 1;
    return 0;
}

int64_t mltk_tensor_stride(const mltk_tensor *t, int d)
{
    if (!t || d < 0 || d >= t->shape.ndim || d >= MLTK_MAX_DIMS)
        return 0;
    if (has_strides(t))
        return t->stride[d];
    int64_t s = 1;
    for (int i = d + 1; i < t->shape.ndim && i < MLTK_MAX_DIMS; i++)
        s *= t->shape.dim[i];
    return s;
}

/* Dense row-major: every dimension of more than one element has the
 * stride of the dimensions after it (a size-1 dimension's stride is never
 * used, so it does not matter, as in PyTorch); an empty tensor is. */
int mltk_tensor_is_contiguous(const mltk_tensor *t)
{
    if (!t || !has_strides(t))
        return 1;
    int nd = t->shape.ndim < MLTK_MAX_DIMS ? t->shape.ndim : MLTK_MAX_DIMS;
    for (int d = 0; d < nd; d++)
        if (t->shape.dim[d] == 0)
            return 1;
    int64_t want = 1;
    for (int d = nd - 1; d >= 0; d--) {
        if (t->shape.dim[d] != 1 && t->stride[d] != want)
            return 0;
        want *= t->shape.dim[d];
    }
    return 1;
}

/* "f32 (128, 784)", or "f32 (128, 784) strides (1024, 1)" for a view
 * that is not contiguous */
char *mltk_tensor_str(const mltk_tensor *t, char *buf, size_t len)
{
    if (!buf || len == 0)
        return buf;
    if (!t) {
        snprintf(buf, len, "(none)");
        return buf;
    }
    char sh[160];
    mltk_shape_str(&t->shape, sh, sizeof sh);
    int n = snprintf(buf, len, "%s %s", mltk_dtype_name(t->dtype), sh);
    if (n < 0 || (size_t)n >= len || mltk_tensor_is_contiguous(t))
        return buf;
    mltk_shape st = t->shape;
    for (int d = 0; d < st.ndim && d < MLTK_MAX_DIMS; d++)
        st.dim[d] = t->stride[d];
    mltk_shape_str(&st, sh, sizeof sh);
    snprintf(buf + n, len - (size_t)n, " strides %s", sh);
    return buf;
}
