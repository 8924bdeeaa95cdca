/* runtime/modelfile.h - the model file of maas-runtime, opened and mapped
 * read-only.  The mapping is needed only while the model is parsed; the fd
 * stays open while serving so that /proc/<pid>/fd names the model. */
#ifndef RUNTIME_MODELFILE_H
#define RUNTIME_MODELFILE_H
#include <stddef.h>
#include <stdint.h>

struct modelfile {
	int		 fd;	/* owned; -1 if closed */
	const uint8_t	*data;	/* len bytes mapped PROT_READ, or NULL */
	size_t		 len;
};

/* Opens path, checks it is a regular file of 1..max bytes and maps it.
 * 0, or -1 with a message in err ("cannot open model '/x': No such file or
 * directory"); *mf is then closed. */
int	modelfile_open(struct modelfile *mf, const char *path, uint64_t max,
	    char *err, size_t errlen);
void	modelfile_unmap(struct modelfile *);	/* keeps the fd */
void	modelfile_close(struct modelfile *);	/* unmaps too */
#endif
