/* runtime/modelfile.h - the model file of maas-runtime and its external
 * data files, opened and mapped read-only (MAP_PRIVATE, PROT_READ) before
 * the sandbox.  The mappings stay for the process's life: the weights are
 * read from them in place, so every runtime serving the same file shares
 * its pages through the page cache.  The model's fd stays open too, so
 * that /proc/<pid>/fd names the model; data files are closed once mapped
 * (their mappings show in /proc/<pid>/maps). */
#ifndef RUNTIME_MODELFILE_H
#define RUNTIME_MODELFILE_H
#include <stddef.h>
#include <stdint.h>

#define MODELFILE_MAX_EXT	256		/* external data files */
#define MODELFILE_MAX_EXT_BYTES	(256ULL << 30)	/* all of them together */

/* An external data file, mapped. */
struct modelfile_ext {
	char		*location;	/* as the model names it, owned */
	const uint8_t	*data;		/* len bytes mapped PROT_READ */
	size_t		 len;
};

struct modelfile {
	int			 fd;	/* owned; -1 if closed */
	const uint8_t		*data;	/* len bytes mapped PROT_READ, or NULL */
	size_t			 len;
	int			 dirfd;	/* the model's directory; -1 closed */
	char			*path;	/* as given, owned, for messages */
	struct modelfile_ext	*ext;	/* n_ext, owned */
	size_t			 n_ext;
	uint64_t		 ext_bytes;	/* sum of their sizes */
};

/* Opens path, checks it is a regular file of 1..max bytes and maps it;
 * opens its directory for modelfile_external().  0, or -1 with a message
 * in err ("cannot open model '/x': No such file or directory"); *mf is
 * then closed. */
int	modelfile_open(struct modelfile *mf, const char *path, uint64_t max,
	    char *err, size_t errlen);
/* An onnx_extern_fn (arg: the struct modelfile): maps the data file at
 * location, relative to the model's directory, once however many tensors
 * name it.  Refused: an absolute location, one with a ".." component, one
 * that resolves (through symlinks) outside the directory, anything but a
 * regular non-empty file, more than MODELFILE_MAX_EXT files or
 * MODELFILE_MAX_EXT_BYTES.  Returns the mapping (valid until
 * modelfile_close()) and its size in *len, or NULL with a message. */
const void *modelfile_external(void *mf, const char *location, size_t *len,
	    char *err, size_t errlen);
/* Closes the directory: no more external files (before the sandbox). */
void	modelfile_seal(struct modelfile *);
/* Bytes mapped: the model file and its data files. */
uint64_t modelfile_mapped(const struct modelfile *);
void	modelfile_unmap(struct modelfile *);	/* keeps the fd */
void	modelfile_close(struct modelfile *);	/* unmaps too */
#endif
