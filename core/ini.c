/* ini.c - INI text to (line, section, key, value) callbacks, on libinih.
 *
 * The system libinih does the parsing.  What it does not do for us is
 * done here, around it, by feeding it one line at a time through
 * ini_parse_stream's reader:
 *   - line numbers: Debian builds inih without INI_HANDLER_LINENO, so the
 *     reader counts the lines it hands over and the handler reads the
 *     count (inih handles each line before reading the next);
 *   - section headers: inih only reports keys, so a [header] line is
 *     recognised by the reader and reported (empty sections and the line
 *     of each header are needed for "file:line" messages);
 *   - indentation is stripped before inih sees a line, so an indented key
 *     is a key, never a continuation of the previous value;
 *   - a line longer than inih's buffer is an error here, where inih would
 *     silently split it;
 *   - inline comments start at '#' or ';' after white space;
 *   - a byte order mark only at the very start of the file (inih would
 *     strip one from the first line wherever our trimming left it).
 * What this is not: a general INI library.  There is no escaping, no
 * quoting, and no multi-line value.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <ini.h>

#include "internal.h"

typedef struct ini_state {
    const char  *next;      /* the rest of the text */
    const char  *origin;
    int          line;      /* line last handed to inih */
    char         section[128];
    mltk_ini_fn  fn;
    void        *user;
    char       **err;
    int          rc;        /* first error, MLTK_OK while none */
} ini_state;

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\f' || *s == '\v')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'
                     || s[n - 1] == '\f' || s[n - 1] == '\v'))
        s[--n] = '\0';
    return s;
}

/* Cut an inline comment: '#' or ';' at the start or after white space. */
static void cut_comment(char *s)
{
    for (char *p = s; *p; p++) {
        if ((*p == '#' || *p == ';') && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
    }
}

static void fail(ini_state *st, int line, const char *what)
{
    if (st->rc == MLTK_OK)
        st->rc = mltk_errf(st->err, MLTK_ERR_CONFIG, "%s:%d: %s", st->origin, line, what);
}

/* ---- the reader: one cleaned line per call ------------------------------------ */

static char *reader(char *buf, int size, void *stream)
{
    ini_state *st = stream;
    if (!st->next || !*st->next || st->rc != MLTK_OK)
        return NULL;
    const char *nl = strchr(st->next, '\n');
    size_t len = nl ? (size_t)(nl - st->next) : strlen(st->next);
    st->line++;
    if (len + 2 > (size_t)size) {
        fail(st, st->line, "line too long");
        return NULL;
    }
    char tmp[len + 1];
    memcpy(tmp, st->next, len);
    tmp[len] = '\0';
    st->next = nl ? nl + 1 : st->next + len;
    if (st->line == 1 && (unsigned char)tmp[0] == 0xEF && (unsigned char)tmp[1] == 0xBB
        && (unsigned char)tmp[2] == 0xBF)
        memmove(tmp, tmp + 3, len - 2);
    char *s = trim(tmp);
    /* inih strips a byte order mark from the first line it is given, so one
     * left here (after white space, or a second one) would make it see a
     * header that was never reported */
    if (st->line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB
        && (unsigned char)s[2] == 0xBF) {
        fail(st, st->line, "a byte order mark (EF BB BF) may only start the file");
        return NULL;
    }
    if (*s != '#' && *s != ';')
        cut_comment(s);
    s = trim(s);
    if (*s == '[') {
        char *close = strchr(s, ']');
        char *name = close ? (*close = '\0', trim(s + 1)) : NULL;
        if (!close || *trim(close + 1) != '\0' || !*name || strchr(name, '[')
            || strlen(name) >= sizeof st->section) {
            fail(st, st->line, "malformed section header (expected '[name]')");
            return NULL;
        }
        snprintf(st->section, sizeof st->section, "%s", name);
        int rc = st->fn(st->user, st->line, name, NULL, NULL, st->err);
        if (rc) {
            st->rc = rc;
            return NULL;
        }
        snprintf(buf, (size_t)size, "[%s]\n", name);
        return buf;
    }
    snprintf(buf, (size_t)size, "%s\n", s);
    return buf;
}

/* ---- the handler: one key = value ------------------------------------------- */

static int handler(void *user, const char *section, const char *key, const char *value)
{
    ini_state *st = user;
    if (st->rc != MLTK_OK)
        return 0;
    if (!*key) {
        fail(st, st->line, "malformed line (expected 'key = value'; the key is empty)");
        return 0;
    }
    for (const char *k = key; *k; k++) {
        if (*k == ' ' || *k == '\t') {
            fail(st, st->line, "malformed line (expected 'key = value'; keys contain no spaces)");
            return 0;
        }
    }
    /* the section as reported by the reader (inih's copy of the name is
     * cut at its own length limit) */
    (void)section;
    int rc = st->fn(st->user, st->line, st->section[0] ? st->section : NULL, key, value,
                    st->err);
    if (rc) {
        st->rc = rc;
        return 0;
    }
    return 1;
}

int mltk_ini_parse(const char *text, const char *origin, mltk_ini_fn fn, void *user,
                   char **err)
{
    ini_state st = { .next = text ? text : "", .origin = origin, .fn = fn, .user = user,
                     .err = err, .rc = MLTK_OK };
    int bad = ini_parse_stream(reader, &st, handler, &st);
    if (st.rc != MLTK_OK)
        return st.rc;
    if (bad > 0) {
        /* inih counted the lines we fed it, so its line is ours */
        fail(&st, bad, "malformed line (expected 'key = value')");
        return st.rc;
    }
    if (bad < 0)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", origin);
    return MLTK_OK;
}
