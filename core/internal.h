/* internal.h - what the core's modules share with each other.
 *
 * Not installed.  Plugins never see this; they see mltk.h, plugin.h and
 * backend.h only.
 */
#ifndef MLTK_INTERNAL_H
#define MLTK_INTERNAL_H

#include <stdio.h>
#include <mltk/mltk.h>
#include <mltk/plugin.h>

#define MLTK_HIDDEN __attribute__((visibility("hidden")))

/* ---- small utilities (util.c) ------------------------------------------ */

MLTK_HIDDEN char *mltk_strdup(const char *s);          /* NULL on OOM */
MLTK_HIDDEN char *mltk_strfmt(const char *fmt, ...) MLTK_PRINTF(1, 2);
/* Edit distance (Levenshtein, with a swap of two neighbouring letters
 * counting as one edit), for did-you-mean hints */
MLTK_HIDDEN int   mltk_edit_distance(const char *a, const char *b);
/* Best candidate within distance max(1, strlen(word)/3), or NULL. */
MLTK_HIDDEN const char *mltk_did_you_mean(const char *word,
                                          const char *const *cands, int n);
MLTK_HIDDEN double mltk_now(void);  /* monotonic seconds */
/* Read a whole file into a NUL-terminated malloc()ed string; a NUL byte in
 * the file is an error naming its offset. */
MLTK_HIDDEN int mltk_read_file(const char *path, char **text, char **err);
/* mkdir -p: `dir` and every missing parent; an error names the component. */
MLTK_HIDDEN int mltk_mkdir_p(const char *dir, char **err);
/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and
 * final xor 0xFFFFFFFF) of n bytes; crc32c("123456789") == 0xE3069283. */
MLTK_HIDDEN uint32_t mltk_crc32c(const void *data, size_t n);

/* ---- INI text (ini.c, on the system libinih) ---------------------------- */

/* Called for each [header] (key == value == NULL) and each key = value
 * pair (section NULL before the first header), with the 1-based line;
 * a non-zero return stops the parse and is returned. */
typedef int (*mltk_ini_fn)(void *user, int line, const char *section,
                           const char *key, const char *value, char **err);
/* Parse INI text; `origin` names it in messages ("file:line: ..."). */
MLTK_HIDDEN int mltk_ini_parse(const char *text, const char *origin,
                               mltk_ini_fn fn, void *user, char **err);

/* ---- parameter descriptors (descriptor.c) ------------------------------ */

typedef enum mltk_ptype {
    MLTK_P_INT = 1,
    MLTK_P_FLOAT,
    MLTK_P_BOOL,
    MLTK_P_STRING,
    MLTK_P_ENUM,    /* one of `choices` */
    MLTK_P_INTS,    /* comma-separated integers */
    MLTK_P_FLOATS,  /* comma-separated numbers */
    MLTK_P_LIST     /* comma-separated names */
} mltk_ptype;

typedef struct mltk_param_def {
    char      *name;
    mltk_ptype type;
    char      *def;        /* default as text, NULL if none */
    int        has_min, has_max;
    double     min, max;
    int        required;
    char     **choices;    /* enum values, NULL-terminated, or NULL */
    char      *doc;
    int        line;       /* line in the descriptor */
} mltk_param_def;

/* A parsed descriptor: a plugin's, or one of the core's own sections. */
typedef struct mltk_desc {
    char *name;
    int   kind;            /* mltk_plugin_kind, 0 for core sections */
    int   abi;             /* major */
    int   abi_minor;       /* minor as written ("abi = 2.0"), -1 when not */
    char *library;         /* resolved path of the .so (plugins) */
    char *symbol;          /* entry symbol, default mltk_plugin_<name> */
    char *summary;
    char *version;
    char *path;            /* descriptor file */
    mltk_param_def *params;
    int   n_params;
} mltk_desc;

/* Parse a descriptor from a file; errors are "path:line: ...". */
MLTK_HIDDEN int  mltk_desc_load(mltk_desc **d, const char *path, char **err);
/* The same from the text of the file `path` (already read). */
MLTK_HIDDEN int  mltk_desc_load_text(mltk_desc **d, const char *text,
                                     const char *path, char **err);
/* Is `text` a plugin descriptor?  1 when it has a [plugin] section (valid
 * or not), 0 for another INI file.  *name: the [plugin] name when it is
 * written as an identifier, else NULL (malloc()ed).  Never fails. */
MLTK_HIDDEN int  mltk_desc_sniff(const char *text, char **name);
/* Parse from text (used for the core's built-in section schemas). */
MLTK_HIDDEN int  mltk_desc_parse(mltk_desc **d, const char *text,
                                 const char *origin, char **err);
MLTK_HIDDEN void mltk_desc_free(mltk_desc *d);
MLTK_HIDDEN const mltk_param_def *mltk_desc_param(const mltk_desc *d,
                                                  const char *name);
/* params.c: check one value against its definition; *why says what is
 * wrong ("must be an integer, got 'abc'"). */
MLTK_HIDDEN int mltk_param_check(const mltk_param_def *def, const char *value,
                                 char **why);
MLTK_HIDDEN const char *mltk_ptype_name(mltk_ptype t);
/* The whole of s is one finite number: 0; -1 if not a number, -2 if not
 * finite or out of range. */
MLTK_HIDDEN int mltk_parse_float(const char *s, double *out);
/* true/yes/on/1 or false/no/off/0, any case: 0; else -1 */
MLTK_HIDDEN int mltk_parse_bool(const char *s, int *out);
MLTK_HIDDEN int mltk_ptype_parse(const char *name);

/* ---- validated parameters (params.c) ----------------------------------- */

struct mltk_params {
    int                    n;
    const mltk_param_def **defs;   /* borrowed from descriptors */
    char                 **values; /* effective value text, NULL if unset */
    int                   *lines;  /* config line of each value, 0 = default */
    int                   *set;    /* 1 if the user set it */
    char                  *where;  /* "train.ini:14: layer 'fc1' (dense)" */
};

MLTK_HIDDEN void mltk_params_free(mltk_params_t *p);
/* 1 if the user wrote the key (a default does not count) */
MLTK_HIDDEN int mltk_params_set(const mltk_params_t *p, const char *key);
/* 1 if the descriptors declare `key` */
MLTK_HIDDEN int mltk_params_declares(const mltk_params_t *p, const char *key);
/* Replace the value of a declared key by the core (as set by the user,
 * at no line): [data] balance = weights giving the loss its weights.
 * The value is not checked again. */
MLTK_HIDDEN int mltk_params_override(mltk_params_t *p, const char *key, const char *value);

/* ---- the registry (registry.c) ----------------------------------------- */

/* Find a plugin descriptor by name and kind; on failure a message listing
 * the known plugins of that kind and a did-you-mean. */
MLTK_HIDDEN int mltk_registry_find(const mltk_registry_t *reg, const char *name,
                                   int kind, const mltk_desc **d, char **err);
/* dlopen the plugin (once), resolve its entry symbol, check ABI major and
 * minor, size, name and kind, and return its vtable (struct mltk_<kind>_i).
 * Errors name the library path and what was wrong. */
MLTK_HIDDEN int mltk_registry_load(mltk_registry_t *reg, const char *name,
                                   int kind, const void **iface, char **err);
/* 1 when plugin `index` (as mltk_registry_info) has been loaded */
MLTK_HIDDEN int mltk_registry_loaded(const mltk_registry_t *reg, int index);
/* 1 when the descriptor found for `name` is broken (malformed, or
 * writable by others): mltk_registry_find() then fails with its error,
 * MLTK_ERR_PLUGIN, which is a plugin problem and not an unknown name. */
MLTK_HIDDEN int mltk_registry_broken(const mltk_registry_t *reg, const char *name);

/* ---- the user's configuration (config.c) ------------------------------- */

typedef struct mltk_section {
    char          *name;   /* "run", "layer.fc1" ... */
    char          *label;  /* "fc1" for layer.fc1, else same as name */
    int            line;   /* line of the [header] */
    const mltk_desc *plugin; /* the plugin named by `type`, or NULL */
    mltk_params_t *params; /* validated: core keys + plugin keys */
} mltk_section;

struct mltk_config {
    char         *path;
    char         *text;      /* the whole file, for run records */
    mltk_section *sec;       /* in file order */
    int           n_sec;
};

/* The section named `name`, or NULL. */
MLTK_HIDDEN const mltk_section *mltk_config_section(const mltk_config_t *c,
                                                    const char *name);

#endif /* MLTK_INTERNAL_H */
