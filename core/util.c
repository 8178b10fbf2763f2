/* util.c - the small things every core module uses.
 *
 * What this is: status strings and error messages, logging, plugin kind
 * names, string helpers, the did-you-mean matcher, a monotonic clock, and
 * the line-tracking INI reader that descriptors and training configs are
 * both read with.  (dtypes, shapes and tensors: tensor.c)
 * What this is not: anything that knows what a section or key means; the
 * INI reader only splits text into headers and key/value pairs.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "internal.h"


/* ---- status codes and error messages ------------------------------------ */

const char *mltk_status_str(int status)
{
    switch (status) {
    case MLTK_OK:              return "success";
    case MLTK_ERR_NOMEM:       return "out of memory";
    case MLTK_ERR_IO:          return "input/output error";
    case MLTK_ERR_CONFIG:      return "invalid configuration";
    case MLTK_ERR_PLUGIN:      return "plugin error";
    case MLTK_ERR_ABI:         return "plugin ABI mismatch";
    case MLTK_ERR_SHAPE:       return "shape mismatch";
    case MLTK_ERR_DATA:        return "malformed data";
    case MLTK_ERR_BACKEND:     return "backend failure";
    case MLTK_ERR_INVALID:     return "invalid argument";
    case MLTK_ERR_NUMERIC:     return "non-finite value";
    case MLTK_ERR_UNSUPPORTED: return "unsupported operation";
    case MLTK_ERR_INTERRUPTED: return "interrupted";
    default:                   return "unknown status";
    }
}

static char *vfmt(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

int mltk_errf(char **err, int status, const char *fmt, ...)
{
    if (err && !*err) {
        va_list ap;
        va_start(ap, fmt);
        *err = vfmt(fmt, ap);
        va_end(ap);
    }
    return status;
}

void mltk_err_prefix(char **err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *prefix = vfmt(fmt, ap);
    va_end(ap);
    if (!prefix)
        return;
    if (!*err) {
        *err = prefix;
        return;
    }
    char *s = mltk_strfmt("%s: %s", prefix, *err);
    free(prefix);
    if (s) {
        free(*err);
        *err = s;
    }
}

const char *mltk_version(void)
{
    return VERSION;
}

/* ---- logging ------------------------------------------------------------ */

static mltk_log_level log_level = MLTK_LOG_INFO;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static void log_init(void)
{
    const char *env = getenv("MLTK_LOG_LEVEL");
    if (!env || !*env)
        return;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(env, level_names[i]) == 0) {
            log_level = (mltk_log_level)i;
            return;
        }
    }
    fprintf(stderr, "mltk: warn: MLTK_LOG_LEVEL='%s' is not one of "
            "error, warn, info, debug; using info\n", env);
}

void mltk_log_set_level(mltk_log_level level)
{
    pthread_once(&log_once, log_init);
    int l = (int)level;
    if (l < (int)MLTK_LOG_ERROR)
        l = MLTK_LOG_ERROR;
    if (l > (int)MLTK_LOG_DEBUG)
        l = MLTK_LOG_DEBUG;
    log_level = (mltk_log_level)l;
}

mltk_log_level mltk_log_get_level(void)
{
    pthread_once(&log_once, log_init);
    return log_level;
}

void mltk_log(mltk_log_level level, const char *fmt, ...)
{
    pthread_once(&log_once, log_init);
    if ((int)level > (int)log_level || (int)level < (int)MLTK_LOG_ERROR)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vfmt(fmt, ap);
    va_end(ap);
    /* one fprintf per message, so lines from threads do not interleave */
    fprintf(stderr, "mltk: %s: %s\n", level_names[(int)level],
            msg ? msg : "(out of memory formatting a log message)");
    free(msg);
}

/* ---- plugin kinds ------------------------------------------------------- */

static const char *const kind_names[] = {
    NULL, "backend", "layer", "loss", "optimizer", "dataset", "schedule", "transform"
};

const char *mltk_kind_name(int kind)
{
    if (kind >= MLTK_KIND_BACKEND && kind <= MLTK_KIND_TRANSFORM)
        return kind_names[kind];
    return "?";
}

int mltk_kind_parse(const char *name)
{
    if (!name)
        return 0;
    for (int k = MLTK_KIND_BACKEND; k <= MLTK_KIND_TRANSFORM; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return 0;
}

/* ---- strings -------------------------------------------------------------- */

char *mltk_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

char *mltk_strfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vfmt(fmt, ap);
    va_end(ap);
    return s;
}

/* Levenshtein distance in which swapping two adjacent characters counts
 * as one edit (the "optimal string alignment" variant), so that the
 * commonest typos - "dnese", "trian" - are one edit from their word. */
int mltk_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), w = lb + 1;
    int *d = malloc((la + 1) * w * sizeof *d);
    if (!d)
        return INT_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i * w] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = d[(i - 1) * w + j - 1] + cost;
            if (d[(i - 1) * w + j] + 1 < best)
                best = d[(i - 1) * w + j] + 1;
            if (d[i * w + j - 1] + 1 < best)
                best = d[i * w + j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]
                && d[(i - 2) * w + j - 2] + 1 < best)
                best = d[(i - 2) * w + j - 2] + 1;
            d[i * w + j] = best;
        }
    }
    int r = d[la * w + lb];
    free(d);
    return r;
}

const char *mltk_did_you_mean(const char *word, const char *const *cands, int n)
{
    if (!word || !cands)
        return NULL;
    int limit = (int)strlen(word) / 3;
    if (limit < 1)
        limit = 1;
    const char *best = NULL;
    int best_d = limit + 1;
    for (int i = 0; i < n; i++) {
        if (!cands[i])
            continue;
        int d = mltk_edit_distance(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best;
}

/* Read a whole text file into a malloc()ed, NUL-terminated string.
 * MLTK_ERR_IO when it cannot be read, MLTK_ERR_CONFIG when it holds a NUL
 * byte (not a text file). */
int mltk_read_file(const char *path, char **text, char **err)
{
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mltk_errf(err, MLTK_ERR_IO, "%s: cannot open file: %s", path,
                         strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = MLTK_OK;
    while (buf) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    if (!buf) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory reading the file", path);
    } else if (ferror(f)) {
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot read file: %s", path,
                       strerror(errno));
    } else {
        buf[len] = '\0';
        size_t nul = strlen(buf);
        if (nul != len)
            rc = mltk_errf(err, MLTK_ERR_CONFIG,
                           "%s: byte offset %zu: NUL byte; this is not a text file",
                           path, nul);
    }
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    *text = buf;
    return MLTK_OK;
}

double mltk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}


/* ---- CRC-32C ---------------------------------------------------------------------- */

/* Castagnoli, reflected polynomial 0x82F63B78, initial value and final xor
 * 0xFFFFFFFF: TFRecord framing (tbevents.c) and the checksums of
 * checkpoint tensors (checkpoint.c).  On x86-64 with SSE4.2 the crc32
 * instruction does 8 bytes a step (gigabytes a second: a checkpoint's
 * checksums cost little next to writing it); elsewhere a half-byte table,
 * two lookups a byte. */
static const uint32_t crc32c_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1,
    0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
    0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9,
    0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

static uint32_t crc32c_table(uint32_t crc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
        crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
    }
    return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n; p++, n--)
        c32 = __builtin_ia32_crc32qi(c32, *p);
    return c32;
}
#endif

uint32_t mltk_crc32c(const void *data, size_t n)
{
    const uint8_t *p = data;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("sse4.2"))
        return crc32c_sse42(0xffffffffu, p, n) ^ 0xffffffffu;
#endif
    return crc32c_table(0xffffffffu, p, n) ^ 0xffffffffu;
}

/* ---- directories ------------------------------------------------------------------ */

int mltk_mkdir_p(const char *dir, char **err)
{
    char *p = mltk_strdup(dir);
    if (!p)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", dir);
    int rc = MLTK_OK;
    struct stat st;
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char keep = *c;
        *c = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            rc = mltk_errf(err, MLTK_ERR_IO, "cannot create directory %s: %s", p,
                           strerror(errno));
            break;
        }
        *c = keep;
        if (!keep)
            break;
    }
    if (!rc && stat(dir, &st) != 0)
        rc = mltk_errf(err, MLTK_ERR_IO, "cannot use %s as a directory: %s", dir,
                       strerror(errno));
    else if (!rc && !S_ISDIR(st.st_mode))
        rc = mltk_errf(err, MLTK_ERR_IO, "cannot use %s as a directory: it is not a directory",
                       dir);
    free(p);
    return rc;
}
