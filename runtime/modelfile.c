/* runtime/modelfile.c - see modelfile.h. */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/modelfile.h"

int
modelfile_open(struct modelfile *mf, const char *path, uint64_t max,
    char *err, size_t errlen)
{
	struct stat	 st;
	void		*p;

	mf->data = NULL;
	mf->len = 0;
	if ((mf->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		snprintf(err, errlen, "cannot open model '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(mf->fd, &st) == -1) {
		snprintf(err, errlen, "cannot stat model '%s': %s", path,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "model '%s' is not a regular file", path);
		goto fail;
	}
	if (st.st_size == 0) {
		snprintf(err, errlen, "model '%s' is empty", path);
		goto fail;
	}
	if ((uint64_t)st.st_size > max) {
		snprintf(err, errlen, "model '%s' is too large (%lld bytes, "
		    "limit %llu)", path, (long long)st.st_size,
		    (unsigned long long)max);
		goto fail;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, mf->fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot map model '%s': %s", path,
		    strerror(errno));
		goto fail;
	}
	mf->data = p;
	mf->len = (size_t)st.st_size;
	return 0;
 fail:
	modelfile_close(mf);
	return -1;
}

void
modelfile_unmap(struct modelfile *mf)
{
	if (mf->data != NULL)
		munmap((void *)(uintptr_t)mf->data, mf->len);
	mf->data = NULL;
	mf->len = 0;
}

void
modelfile_close(struct modelfile *mf)
{
	modelfile_unmap(mf);
	if (mf->fd != -1)
		close(mf->fd);
	mf->fd = -1;
}
