/* runtime/modelfile.c - see modelfile.h.
 *
 * External data locations come from the model, which is hostile: a path
 * is resolved with openat2(RESOLVE_BENEATH) from the model's directory, so
 * that neither "..", nor an absolute path, nor a symlink (at any
 * component) can lead outside it.  Kernels without openat2 get the same
 * answer from the opened file's real path. */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "runtime/modelfile.h"

static int	open_beneath(struct modelfile *, const char *, char *, size_t);
static int	map_file(int, const char *, const char *, uint64_t,
		    const uint8_t **, size_t *, char *, size_t);

/* Maps a regular file of 1..max bytes; what names it in messages. */
static int
map_file(int fd, const char *what, const char *path, uint64_t max,
    const uint8_t **data, size_t *len, char *err, size_t errlen)
{
	struct stat	 st;
	void		*p;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "cannot stat %s '%s': %s", what, path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s '%s' is not a regular file", what,
		    path);
		return -1;
	}
	if (st.st_size == 0) {
		snprintf(err, errlen, "%s '%s' is empty", what, path);
		return -1;
	}
	if ((uint64_t)st.st_size > max) {
		snprintf(err, errlen, "%s '%s' is too large (%lld bytes, "
		    "limit %llu)", what, path, (long long)st.st_size,
		    (unsigned long long)max);
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot map %s '%s': %s", what, path,
		    strerror(errno));
		return -1;
	}
	*data = p;
	*len = (size_t)st.st_size;
	return 0;
}

int
modelfile_open(struct modelfile *mf, const char *path, uint64_t max,
    char *err, size_t errlen)
{
	char	*dir, *slash;

	*mf = (struct modelfile){ .fd = -1, .dirfd = -1 };
	mf->path = xstrdup(path);
	if ((mf->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		snprintf(err, errlen, "cannot open model '%s': %s", path,
		    strerror(errno));
		goto fail;
	}
	if (map_file(mf->fd, "model", path, max, &mf->data, &mf->len, err,
	    errlen) == -1)
		goto fail;
	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) == NULL)
		memcpy(dir, ".", 2);	/* fits: path is not empty */
	else if (slash == dir)
		slash[1] = '\0';	/* "/model.onnx" */
	else
		*slash = '\0';
	mf->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (mf->dirfd == -1) {
		snprintf(err, errlen, "cannot open the directory of model "
		    "'%s': %s", path, strerror(errno));
		free(dir);
		goto fail;
	}
	free(dir);
	return 0;
 fail:
	modelfile_close(mf);
	return -1;
}

/* Opens location under the model's directory, never outside it. */
static int
open_beneath(struct modelfile *mf, const char *loc, char *err, size_t errlen)
{
	struct open_how	 how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	char		 proc[64], dir[PATH_MAX], real[PATH_MAX];
	ssize_t		 n;
	size_t		 dl;
	int		 fd;

	fd = (int)syscall(SYS_openat2, mf->dirfd, loc, &how, sizeof(how));
	if (fd == -1 && errno == EXDEV) {
		snprintf(err, errlen, "external data '%s' is outside the "
		    "model's directory", loc);
		return -1;
	}
	if (fd != -1 || (errno != ENOSYS && errno != EPERM)) {
		if (fd == -1)
			snprintf(err, errlen, "cannot open external data '%s': "
			    "%s", loc, strerror(errno));
		return fd;
	}
	/* No openat2 (ENOSYS, or EPERM from a filter that does not know
	 * it): open, then compare real paths. */
	if ((fd = openat(mf->dirfd, loc, O_RDONLY | O_CLOEXEC | O_NOCTTY)) ==
	    -1) {
		snprintf(err, errlen, "cannot open external data '%s': %s",
		    loc, strerror(errno));
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", mf->dirfd);
	if ((n = readlink(proc, dir, sizeof(dir) - 1)) <= 0)
		goto unknown;
	dir[n] = '\0';
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if ((n = readlink(proc, real, sizeof(real) - 1)) <= 0)
		goto unknown;
	real[n] = '\0';
	dl = strlen(dir);
	if (strncmp(real, dir, dl) == 0 && (real[dl] == '/' ||
	    (dl == 1 && dir[0] == '/')))
		return fd;
	snprintf(err, errlen, "external data '%s' is outside the model's "
	    "directory", loc);
	close(fd);
	return -1;
 unknown:
	snprintf(err, errlen, "cannot tell where external data '%s' is",
	    loc);
	close(fd);
	return -1;
}

const void *
modelfile_external(void *arg, const char *loc, size_t *len, char *err,
    size_t errlen)
{
	struct modelfile	*mf = arg;
	struct modelfile_ext	*e;
	const char		*p;
	int			 fd;

	for (size_t i = 0; i < mf->n_ext; i++)
		if (strcmp(mf->ext[i].location, loc) == 0) {
			*len = mf->ext[i].len;
			return mf->ext[i].data;
		}
	if (*loc == '\0' || strlen(loc) >= PATH_MAX) {
		snprintf(err, errlen, "external data location is empty or too "
		    "long");
		return NULL;
	}
	if (*loc == '/') {
		snprintf(err, errlen, "external data '%s' is an absolute path",
		    loc);
		return NULL;
	}
	for (p = loc; p != NULL; p = strchr(p, '/'), p = p ? p + 1 : NULL)
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' ||
		    p[2] == '\0')) {
			snprintf(err, errlen, "external data '%s' names a "
			    "parent directory", loc);
			return NULL;
		}
	if (mf->dirfd == -1) {
		snprintf(err, errlen, "external data '%s' cannot be opened "
		    "any more", loc);
		return NULL;
	}
	if (mf->n_ext == MODELFILE_MAX_EXT) {
		snprintf(err, errlen, "more than %d external data files",
		    MODELFILE_MAX_EXT);
		return NULL;
	}
	if ((fd = open_beneath(mf, loc, err, errlen)) == -1)
		return NULL;
	mf->ext = xreallocarray(mf->ext, mf->n_ext + 1, sizeof(*mf->ext));
	e = &mf->ext[mf->n_ext];
	if (map_file(fd, "external data", loc, MODELFILE_MAX_EXT_BYTES -
	    mf->ext_bytes, &e->data, &e->len, err, errlen) == -1) {
		close(fd);
		return NULL;
	}
	close(fd);		/* the mapping stays */
	e->location = xstrdup(loc);
	mf->ext_bytes += e->len;
	mf->n_ext++;
	*len = e->len;
	return e->data;
}

void
modelfile_seal(struct modelfile *mf)
{
	if (mf->dirfd != -1)
		close(mf->dirfd);
	mf->dirfd = -1;
}

uint64_t
modelfile_mapped(const struct modelfile *mf)
{
	return (uint64_t)mf->len + mf->ext_bytes;
}

void
modelfile_unmap(struct modelfile *mf)
{
	if (mf->data != NULL)
		munmap((void *)(uintptr_t)mf->data, mf->len);
	mf->data = NULL;
	mf->len = 0;
	for (size_t i = 0; i < mf->n_ext; i++) {
		munmap((void *)(uintptr_t)mf->ext[i].data, mf->ext[i].len);
		free(mf->ext[i].location);
	}
	free(mf->ext);
	mf->ext = NULL;
	mf->n_ext = 0;
	mf->ext_bytes = 0;
}

void
modelfile_close(struct modelfile *mf)
{
	modelfile_unmap(mf);
	modelfile_seal(mf);
	if (mf->fd != -1)
		close(mf->fd);
	mf->fd = -1;
	free(mf->path);
	mf->path = NULL;
}
