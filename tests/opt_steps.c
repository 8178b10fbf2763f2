/* opt_steps.c - runs an optimizer plugin for a few steps on given inputs.
 *
 * What this is: mltk's side of tests/test_lamb_interop.sh.
 *   tests/opt_steps IN.safetensors OUT.safetensors
 * IN holds
 *   p0       F32 (n)            the parameters before the first step
 *   g        F32 (steps, n)     the gradient of each step
 *   lr       F32 (steps)        the rate of each step (as a schedule gives it)
 *   seg_off  I64 (n_seg + 1)    where each parameter tensor lies in the
 *                               flat buffer: 0, ..., n
 * and the metadata "optimizer" (a plugin name, e.g. lamb) and "keys"
 * (its configuration, "key = value" lines, as in an [optimizer] section).
 * The plugin runs on the cpu backend with 2 threads, steps t = 1 .. steps,
 * and OUT receives
 *   p        F32 (steps, n)     the parameters after each step
 *   state.K  F32 (steps, n)     state slot K after each step (lamb and
 *                               adam: 0 = first moment, 1 = second)
 * What this is not: a test by itself; a malformed input file or a refused
 * step is one line on stderr naming the file or the step, and exit 1.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "session.h"

#define MAX_SLOTS 4
#define MAX_KEYS 16

/* the tensor NAME of f with dtype DT and NDIM dimensions, or NULL with
 * *err set */
static const mltk_st_tensor *input(const mltk_st_file *f, const char *path, const char *name,
                                   mltk_st_dtype dt, int ndim, char **err)
{
    const mltk_st_tensor *t = mltk_st_find(f, name);
    if (!t)
        mltk_errf(err, MLTK_ERR_DATA, "%s: no tensor '%s'", path, name);
    else if (t->dtype != dt || t->ndim != ndim)
        mltk_errf(err, MLTK_ERR_DATA, "%s: '%s' is %s with %d dimensions, not %s with %d",
                  path, name, mltk_st_dtype_name(t->dtype), t->ndim,
                  mltk_st_dtype_name(dt), ndim);
    else
        return t;
    return NULL;
}

/* split "key = value" lines of text (modified in place) into keys[] and
 * vals[]; returns the count, or -1 when a line has no '=' or there are
 * more than MAX_KEYS */
static int split_keys(char *text, const char **keys, const char **vals)
{
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (!eq || n == MAX_KEYS)
            return -1;
        char *k = line, *v = eq + 1, *e = eq;
        while (*k == ' ')
            k++;
        while (e > k && e[-1] == ' ')
            e--;
        *e = '\0';
        while (*v == ' ')
            v++;
        keys[n] = k;
        vals[n++] = v;
    }
    return n;
}

static int run(const char *in, const char *out, char **err)
{
    mltk_st_file *f = NULL;
    mltk_registry_t *reg = NULL;
    struct mltk_backend be;
    int be_open = 0;
    const mltk_desc *d = NULL;
    const struct mltk_optimizer_i *iface = NULL;
    mltk_params_t *params = NULL;
    void *self = NULL;
    char *keytext = NULL;
    float *dev[3 + MAX_SLOTS] = { 0 };  /* p, g, scratch, state slots */
    float *res = NULL;                  /* (1 + slots, steps, n) */
    int64_t *seg = NULL;                /* seg_off (n_seg + 1) */
    float *lrs = NULL;                  /* lr (steps) */
    int slots = 0, rc;

    rc = mltk_st_open(&f, in, err);
    if (rc)
        goto out;
    const mltk_st_tensor *p0 = input(f, in, "p0", MLTK_ST_F32, 1, err);
    const mltk_st_tensor *g = p0 ? input(f, in, "g", MLTK_ST_F32, 2, err) : NULL;
    const mltk_st_tensor *lr = g ? input(f, in, "lr", MLTK_ST_F32, 1, err) : NULL;
    const mltk_st_tensor *so = lr ? input(f, in, "seg_off", MLTK_ST_I64, 1, err) : NULL;
    const char *name = mltk_st_meta(f, "optimizer"), *keys_meta = mltk_st_meta(f, "keys");
    if (!so) {
        rc = MLTK_ERR_DATA;
        goto out;
    }
    const int64_t n = p0->shape[0], steps = g->shape[0];
    const int n_seg = (int)so->shape[0] - 1;
    /* copies: the file's data need not be aligned for int64 and float */
    seg = malloc(so->nbytes + sizeof(*seg));
    lrs = malloc(lr->nbytes + sizeof(*lrs));
    if (!seg || !lrs) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(seg, so->data, so->nbytes);
    memcpy(lrs, lr->data, lr->nbytes);
    if (g->shape[1] != n || lr->shape[0] != steps || n < 1 || steps < 1 || n_seg < 1
        || seg[0] != 0 || seg[n_seg] != n || !name || !keys_meta) {
        rc = mltk_errf(err, MLTK_ERR_DATA,
                       "%s: want p0 (n), g (steps, n), lr (steps), seg_off from 0 to n "
                       "and the metadata 'optimizer' and 'keys'", in);
        goto out;
    }
    const char *keys[MAX_KEYS], *vals[MAX_KEYS];
    keytext = strdup(keys_meta);
    int n_keys = keytext ? split_keys(keytext, keys, vals) : -1;
    if (n_keys < 0) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: metadata 'keys' is not \"key = value\" lines",
                       in);
        goto out;
    }

    mltk_backend_opts o = { .size = sizeof(o), .threads = 2, .device = 0, .seed = 1 };
    rc = mltk_registry_create(&reg, NULL, 1, err);
    if (!rc)
        rc = mltk_backend_open(&be, reg, "cpu", &o, err);
    if (rc)
        goto out;
    be_open = 1;
    rc = mltk_registry_find(reg, name, MLTK_KIND_OPTIMIZER, &d, err);
    if (!rc)
        rc = mltk_params_build(&params, &d, 1, n_keys, keys, vals, NULL, NULL, 0, name, err);
    if (!rc)
        rc = mltk_registry_load(reg, name, MLTK_KIND_OPTIMIZER, (const void **)&iface, err);
    if (!rc)
        rc = iface->create(&self, params, err);
    if (rc)
        goto out;
    slots = iface->state_slots(self);
    if (slots < 0 || slots > MAX_SLOTS) {
        rc = mltk_errf(err, MLTK_ERR_PLUGIN, "%s: %d state slots", name, slots);
        goto out;
    }

    /* p, g (n), scratch (2 n_seg), slots (n each, zeroed) */
    const size_t nb = (size_t)n * sizeof(float);
    for (int k = 0; k < 3 + slots && !rc; k++)
        rc = mltk_be_alloc(&be, k == 2 ? 2 * (size_t)n_seg * sizeof(float) : nb,
                           (void **)&dev[k]);
    if (!rc)
        rc = mltk_be_upload(&be, dev[0], p0->data, nb);
    for (int k = 0; k < slots && !rc; k++) {
        mltk_tensor t = mltk_tensor_1d(dev[3 + k], MLTK_F32, n);
        rc = mltk_op_fill(&be, &t, 0.0f);
    }
    res = malloc((size_t)(1 + slots) * (size_t)steps * nb);
    if (!rc && !res)
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    if (rc) {
        if (!*err)
            mltk_errf(err, rc, "cpu backend: %s", mltk_backend_error(&be));
        goto out;
    }

    mltk_tensor pt = mltk_tensor_1d(dev[0], MLTK_F32, n), gt = mltk_tensor_1d(dev[1], MLTK_F32, n);
    mltk_tensor sc = mltk_tensor_1d(dev[2], MLTK_F32, 2 * (int64_t)n_seg), st_t[MAX_SLOTS];
    for (int k = 0; k < slots; k++)
        st_t[k] = mltk_tensor_1d(dev[3 + k], MLTK_F32, n);
    for (int64_t t = 1; t <= steps; t++) {
        rc = mltk_be_upload(&be, dev[1], (const float *)g->data + (t - 1) * n, nb);
        struct mltk_opt_step st = {
            .size = sizeof(st), .p = &pt, .g = &gt, .state = st_t, .n = n, .lr = lrs[t - 1],
            .t = t, .lr_scale = NULL, .n_seg = n_seg, .seg_off = seg, .scratch = &sc,
        };
        if (!rc)
            rc = iface->step(self, &be, &st);
        if (!rc)
            rc = mltk_be_sync(&be);
        for (int k = 0; k <= slots && !rc; k++)
            rc = mltk_be_download(&be, res + ((size_t)k * (size_t)steps + (size_t)(t - 1)) * (size_t)n,
                                  k ? dev[3 + k - 1] : dev[0], nb);
        if (rc) {
            mltk_errf(err, rc, "%s: step %lld: %s", in, (long long)t, mltk_backend_error(&be));
            goto out;
        }
    }

    mltk_st_entry e[1 + MAX_SLOTS];
    static const char *const names[1 + MAX_SLOTS] = { "p", "state.0", "state.1", "state.2",
                                                      "state.3" };
    for (int k = 0; k <= slots; k++)
        e[k] = (mltk_st_entry){ .name = names[k], .dtype = MLTK_ST_F32, .ndim = 2,
                                .shape = { steps, n },
                                .data = res + (size_t)k * (size_t)steps * (size_t)n,
                                .nbytes = (size_t)steps * nb };
    const char *meta[2] = { "optimizer", name };
    rc = mltk_st_write(out, e, 1 + slots, meta, 1, err);

out:
    for (int k = 0; k < 3 + MAX_SLOTS; k++)
        if (dev[k])
            mltk_be_free(&be, dev[k]);
    free(res);
    free(seg);
    free(lrs);
    if (self)
        iface->destroy(self);
    mltk_params_free(params);
    free(keytext);
    if (be_open)
        mltk_backend_close(&be);
    mltk_registry_destroy(reg);
    mltk_st_close(f);
    return rc;
}

int main(int argc, char **argv)
{
    char *err = NULL;
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.safetensors OUT.safetensors\n", argv[0]);
        return 2;
    }
    int rc = run(argv[1], argv[2], &err);
    if (rc)
        fprintf(stderr, "%s\n", err ? err : mltk_status_str(rc));
    free(err);
    return rc ? 1 : 0;
}
