/* tbevents.h - TensorBoard event files, as the core's modules (and the
 * test suite) see them.  Not installed.
 *
 * An event file is a sequence of TFRecords, each an Event protobuf:
 *
 *   uint64 length (little-endian)
 *   uint32 masked CRC-32C of the 8 length bytes
 *   byte   data[length]            (one serialized tensorflow.Event)
 *   uint32 masked CRC-32C of data
 *
 * The first Event carries file_version "brain.Event:2"; every later one
 * carries a Summary with one Value: a scalar, a histogram or a text.
 * TensorBoard finds the file by its name, which contains "tfevents".
 */
#ifndef MLTK_TBEVENTS_H
#define MLTK_TBEVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- CRC-32C ---------------------------------------------------------- */

/* mltk_crc32c (CRC-32C of n bytes) is declared in internal.h (util.c). */
/* The TFRecord mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8. */
MLTK_HIDDEN uint32_t mltk_crc32c_mask(uint32_t crc);

/* ---- the writer --------------------------------------------------------- */

/* Number of equal-width histogram buckets between min and max. */
#define MLTK_TB_HISTO_BUCKETS 30

typedef struct mltk_tb_writer mltk_tb_writer;

/* Create directory `dir` if missing (with its parents, like mkdir -p) and
 * a new event file in it named
 *   events.out.tfevents.<unix seconds>.<host>.<pid>.mltk
 * (".<n>" is appended when that name exists already; an existing file is
 * never overwritten).  `hostname` NULL means gethostname(); '/' and other
 * characters unfit for a file name become '_'.  Writes the file_version
 * event.  On success *w is owned by the caller: mltk_tb_close() it.  On
 * failure *w is NULL and *err names the path and what failed. */
MLTK_HIDDEN int mltk_tb_open(mltk_tb_writer **w, const char *dir,
                             const char *hostname, char **err);

/* One scalar: Summary.Value{tag, simple_value} (a float, so `value` is
 * rounded to single precision) at `step`. */
MLTK_HIDDEN int mltk_tb_scalar(mltk_tb_writer *w, const char *tag, int64_t step,
                               double value, char **err);

/* A histogram of v[0..n): HistogramProto with min, max, num, sum and
 * sum_squares (accumulated in double) and MLTK_TB_HISTO_BUCKETS buckets
 * of equal width between min and max.  bucket_limit[i] is the right edge
 * of bucket i; bucket i holds the values in [limit[i-1], limit[i]) (the
 * first from min, the last up to and including max).  When min == max
 * there is one bucket, limit max.  NaN and infinite values are left out
 * of every statistic and every bucket: num counts finite values only.
 * With no finite value the histogram is empty (num 0, one bucket of limit
 * 0 and count 0).  v is only read during the call. */
MLTK_HIDDEN int mltk_tb_histogram(mltk_tb_writer *w, const char *tag, int64_t step,
                                  const float *v, int64_t n, char **err);

/* A text for TensorBoard's text plugin (rendered as Markdown): a Value
 * with metadata.plugin_data.plugin_name "text" and a scalar TensorProto
 * of dtype DT_STRING holding `text`. */
MLTK_HIDDEN int mltk_tb_text(mltk_tb_writer *w, const char *tag, int64_t step,
                             const char *text, char **err);

/* Events are buffered (stdio); flush pushes them to the file, so that a
 * running TensorBoard sees them.  The trainer flushes once per epoch.
 * A write error (from any call) names the file and the system's reason;
 * since the file may then end in part of a record, every later call on
 * w fails with MLTK_ERR_IO too. */
MLTK_HIDDEN int mltk_tb_flush(mltk_tb_writer *w, char **err);

/* Flush and close the file and free w (NULL is a no-op).  A failure here
 * goes unreported: call mltk_tb_flush() first to learn of it. */
MLTK_HIDDEN void mltk_tb_close(mltk_tb_writer *w);

/* The event file's path; borrowed, valid until mltk_tb_close(w). */
MLTK_HIDDEN const char *mltk_tb_path(const mltk_tb_writer *w);

#endif /* MLTK_TBEVENTS_H */
