/* fuzz_ini.c - a libFuzzer harness for the INI reader (core/ini.c).
 *
 * What this is: each input, cut at its first NUL byte as mltk_read_file
 * would refuse it, is parsed with mltk_ini_parse(), and what the reader
 * promises its callers is checked: line numbers start at 1, never go
 * back and never pass the end of the text; section names are non-empty
 * and hold no ']' or line break; a key's section is the last header
 * reported (none before the first); keys are non-empty without white space
 * or line breaks; values hold no line break; a non-zero return from the
 * callback stops the parse and is what mltk_ini_parse returns (a key
 * named `stop` asks for that); every error is MLTK_ERR_CONFIG with a
 * message "ORIGIN:LINE: ...".  AddressSanitizer, UndefinedBehaviorSanitizer
 * and LeakSanitizer catch the rest.
 * What this is not: a check of the config or descriptor rules above the
 * reader (fuzz_config.c, fuzz_descriptor.c).
 */
#include "config.h"

#include "internal.h"
#include "fuzz.h"

#define NAME "fuzz_ini"
#define ORIGIN "fuzz.ini"

typedef struct seen {
    int lines;      /* lines in the text */
    int last;       /* line of the last callback */
    int calls;
    int stopped;    /* the callback asked to stop */
    char *section;  /* the last header's name, NULL before the first */
} seen;

static int on_item(void *user, int line, const char *section, const char *key,
                   const char *value, char **err)
{
    seen *s = user;
    fuzz_check(!s->stopped, NAME, "called again after asking to stop");
    fuzz_check(line >= 1 && line <= s->lines, NAME, "line out of range");
    fuzz_check(line >= s->last, NAME, "line numbers went back");
    s->last = line;
    s->calls++;
    if (!key) {
        fuzz_check(section && *section && !value, NAME, "a header without a name");
        fuzz_check(!strpbrk(section, "]\n"), NAME, "a section name holds ']' or a newline");
        free(s->section);
        s->section = strdup(section);
        return MLTK_OK;
    }
    fuzz_check(*key && !strpbrk(key, " \t\n"), NAME, "an empty key or one with white space");
    fuzz_check(value && !strchr(value, '\n'), NAME, "no value or a value with a newline");
    fuzz_check(section ? s->section && strcmp(section, s->section) == 0 : !s->section,
               NAME, "a key's section is not the last header reported");
    if (strcmp(key, "stop") == 0) {
        s->stopped = 1;
        return mltk_errf(err, MLTK_ERR_INVALID, "%s:%d: stop", ORIGIN, line);
    }
    return MLTK_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    seen s = { .lines = 1 };
    for (const char *p = text; *p; p++)
        s.lines += *p == '\n';
    char *err = NULL;
    int rc = mltk_ini_parse(text, ORIGIN, on_item, &s, &err);
    if (s.stopped) {
        fuzz_check(rc == MLTK_ERR_INVALID, NAME, "the callback's error was not returned");
    } else if (rc) {
        fuzz_check(rc == MLTK_ERR_CONFIG, NAME, "an error that is not MLTK_ERR_CONFIG");
        char *end = NULL;
        long line = fuzz_names(err, ORIGIN) ? strtol(err + strlen(ORIGIN) + 1, &end, 10) : 0;
        fuzz_check(line >= 1 && line <= s.lines && end && *end == ':', NAME,
                   "a message that does not start with ORIGIN:LINE:");
    } else {
        fuzz_check(!err, NAME, "a message without an error");
    }
    free(s.section);
    free(err);
    free(text);
    return 0;
}
