/* mapfile.h - map a whole data set file read-only, with the messages the
 * dataset plugins give when they cannot.
 *
 * What this is: one header-only function that dataset plugins compile in
 * (each plugin is its own shared object, so it is static), so that a
 * missing file, a directory, a special file or a failed mmap read the
 * same from every plugin: "cannot open PATH: REASON" or "cannot map PATH:
 * REASON" (MLTK_ERR_IO).  An empty file maps to nothing (*map NULL, *len
 * 0); a plugin for which that is bad input says so itself.
 * What this is not: a reader of any format, or a cache of mappings; the
 * caller munmaps what it got.
 */
#ifndef MLTK_DATASETS_MAPFILE_H
#define MLTK_DATASETS_MAPFILE_H

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <mltk/plugin.h>

/* Map the whole file at path read-only: *map and *len (an empty file maps
 * to nothing: *map NULL, *len 0).  On failure *map is NULL and *len 0. */
static inline int mapfile(const char *path, void **map, size_t *len, char **err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *map = NULL;
    *len = 0;
    if (fd < 0)
        return mltk_errf(err, MLTK_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return mltk_errf(err, MLTK_ERR_IO, "cannot open %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mltk_errf(err, MLTK_ERR_IO, "cannot open %s: %s", path,
                         S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file");
    }
    if (st.st_size > 0) {
        *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (*map == MAP_FAILED) {
            int e = errno;
            *map = NULL;
            close(fd);
            return mltk_errf(err, MLTK_ERR_IO, "cannot map %s: %s", path, strerror(e));
        }
    }
    close(fd);
    *len = (size_t)st.st_size;
    return MLTK_OK;
}

#endif
