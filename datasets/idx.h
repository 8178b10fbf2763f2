/* idx.h - the IDX file parser of the idx dataset plugin (idx.c), exposed
 * for the fuzz harness (tests/fuzz/fuzz_idx.c).
 *
 * What this is: the functions that read and check a whole IDX file of
 * unsigned bytes, from a file (gzipped or not) or from a plain file's
 * bytes in memory, as the plugin reads each file of a split.
 * What this is not: part of the plugin ABI or of libmltk.  The plugin
 * exports only its entry symbol, so nothing outside the tree can call this.
 */
#ifndef MLTK_IDX_H
#define MLTK_IDX_H

#include <stdint.h>

#define IDX_MAX_NDIM 4

/* One IDX file as read: its dimensions and its data. */
typedef struct idx_file {
    int      ndim;
    int64_t  dim[IDX_MAX_NDIM];
    int64_t  header;     /* bytes before the data: 4 + 4 * ndim */
    int64_t  bytes;      /* data bytes: the product of the dims */
    uint8_t *data;       /* `bytes` long: malloc()ed, or inside the
                          * buffer given to idx_parse when borrowed */
    int      borrowed;   /* data points into the caller's buffer */
} idx_file;

/* Read the IDX file at path (gzipped or not) with min_ndim <= ndim <=
 * max_ndim (1 <= min_ndim <= max_ndim <= IDX_MAX_NDIM); `what` names its
 * contents in messages ("images").  On success *out holds the file, whose
 * data the caller frees; on error *out holds no data and *err a message
 * naming the file (and the byte offset where there is one): MLTK_ERR_IO
 * when it cannot be opened or read, MLTK_ERR_DATA when it is not a valid
 * file, MLTK_ERR_NOMEM. */
int idx_load_file(idx_file *out, const char *path, int min_ndim, int max_ndim,
                  const char *what, char **err);

/* The same checks, with the same messages, on the size bytes of a plain
 * (not gzipped) IDX file at buf, named path in messages: on success
 * out->data points into buf (out->borrowed is 1; nothing to free); on
 * error *err as above (MLTK_ERR_DATA).  buf may be NULL when size is 0. */
int idx_parse(idx_file *out, const uint8_t *buf, int64_t size, const char *path,
              int min_ndim, int max_ndim, const char *what, char **err);

#endif
