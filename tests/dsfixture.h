/* dsfixture.h - the fixture the dataset plugin suites share.
 *
 * What this is: per test, a plugin registry, the dataset plugin of a given
 * name found (its descriptor, for building params) and loaded (its
 * interface), and a fresh temporary directory ($TMPDIR, else /tmp) that is
 * removed with everything in it at the end; path_of() names a file in
 * that directory and write_bytes() writes one.  A suite wraps
 * dsfix_open / dsfix_close in its own fixture_open / fixture_close for
 * tcase_add_checked_fixture.  A suite that loads its plugins itself
 * defines DSFIX_NO_PLUGIN before the include: then ds and desc are not
 * defined and dsfix_open takes NULL for the plugin.
 * What this is not: the suites' file makers, openers and expectations,
 * which differ per format and stay in each suite; nor testutil.h.
 * Include it after config.h.  Everything here is static (inline where a
 * suite may not use it), one copy per suite.
 */
#ifndef MLTK_TESTS_DSFIXTURE_H
#define MLTK_TESTS_DSFIXTURE_H

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "session.h"

static mltk_registry_t *reg;
#ifndef DSFIX_NO_PLUGIN
static const struct mltk_dataset_i *ds;   /* the plugin's interface */
static const mltk_desc *desc;             /* its descriptor */
#endif
static char dir[4096];                    /* the temporary directory */

/* Create the registry, find and load the dataset plugin `plugin` and make
 * the directory $TMPDIR/<tag>.XXXXXX. */
static inline void dsfix_open(const char *plugin, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    char *err = NULL;
    int rc = mltk_registry_create(&reg, NULL, 1, &err);

    ck_assert_msg(rc == MLTK_OK, "registry: %s", err ? err : "?");
#ifndef DSFIX_NO_PLUGIN
    rc = mltk_registry_find(reg, plugin, MLTK_KIND_DATASET, &desc, &err);
    ck_assert_msg(rc == MLTK_OK, "find %s: %s", plugin, err ? err : "?");
    rc = mltk_registry_load(reg, plugin, MLTK_KIND_DATASET, (const void **)&ds, &err);
    ck_assert_msg(rc == MLTK_OK, "load %s: %s", plugin, err ? err : "?");
#else
    ck_assert_ptr_null(plugin);
#endif
    snprintf(dir, sizeof(dir), "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
}

static inline int dsfix_rm_entry(const char *path, const struct stat *st, int flag,
                                 struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove the directory and everything in it; destroy the registry. */
static inline void dsfix_close(void)
{
    nftw(dir, dsfix_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    mltk_registry_destroy(reg);
    reg = NULL;
}

/* dir/name, in one of 8 rotating buffers (so a few may be live at once). */
static inline char *path_of(const char *name)
{
    static char p[8][4400];
    static int k;

    k = (k + 1) % 8;
    snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
    return p[k];
}

/* Write the n bytes at data to dir/name (its folder must exist). */
static inline void write_bytes(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(path_of(name), "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

#endif
