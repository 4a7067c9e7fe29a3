/*
 * provider_file.c — the "file" backend: a provider that is a local directory.
 *
 * It is the embedded default and the test default.  Writes are atomic
 * (temp file, fsync, rename, fsync of the directory) so a crash never leaves
 * a half-written object under its final name.  Keys are checked so that no
 * key can name a file outside the provider's directory.  Files are opened as
 * transient files, which PostgreSQL closes at transaction end, so no file
 * descriptor survives an ERROR.
 *
 * Bulk transfers (streamed uploads, large ranged reads) use direct I/O where
 * the filesystem allows it: shards are written once and read rarely, so
 * copying them through the page cache only costs memory bandwidth and
 * evicts what the database itself caches.  Small objects stay buffered.
 */
#include "postgres.h"

#include <aio.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "destor/provider.h"

/* Keys are relative paths made of safe segments: no "", ".", ".." segment,
 * no absolute path, no backslash or NUL. */
static bool
file_key_is_safe(const char *key)
{
	const char *seg = key;

	if (key == NULL || key[0] == '\0' || key[0] == '/')
		return false;
	for (;;)
	{
		const char *end = strchr(seg, '/');
		size_t		len = end ? (size_t) (end - seg) : strlen(seg);

		if (len == 0 || (len == 1 && seg[0] == '.') ||
			(len == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
		if (memchr(seg, '\\', len) != NULL)
			return false;
		if (end == NULL)
			break;
		seg = end + 1;
	}
	return true;
}

static char *
file_full_path(Provider *p, const char *key)
{
	return psprintf("%s/%s", p->path, key);
}

static void
file_set_error(ProviderRequest *req, const char *what, const char *key)
{
	int			save_errno = errno;

	struct stat st;

	req->ok = false;
	req->not_found = (save_errno == ENOENT);
	/* the provider's own directory gone is an outage, not a missing object */
	if (save_errno == ENOENT && stat(req->provider->path, &st) != 0)
	{
		req->not_found = false;
		req->unreachable = true;
		req->error = psprintf("could not %s \"%s\": the provider's directory \"%s\" does not exist",
							  what, key, req->provider->path);
		return;
	}
	req->error = psprintf("could not %s \"%s\" in directory \"%s\": %s",
						  what, key, req->provider->path, strerror(save_errno));
}

/* Create every missing parent directory of path (below the provider root). */
static int
file_make_parents(Provider *p, const char *path)
{
	char	   *copy = pstrdup(path);
	size_t		rootlen = strlen(p->path);
	struct stat st;

	if (stat(p->path, &st) != 0)
	{
		pfree(copy);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
	{
		errno = ENOTDIR;
		pfree(copy);
		return -1;
	}
	for (char *s = copy + rootlen + 1; *s; s++)
	{
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(copy, S_IRWXU) != 0 && errno != EEXIST)
		{
			pfree(copy);
			return -1;
		}
		*s = '/';
	}
	pfree(copy);
	return 0;
}

static int
file_fsync_parent_dir(const char *path)
{
	char	   *dir = pstrdup(path);
	char	   *slash = strrchr(dir, '/');
	int			fd;
	int			rc = 0;

	if (slash)
		*slash = '\0';
	fd = OpenTransientFile(dir, O_RDONLY | PG_BINARY);
	if (fd < 0)
		rc = -1;
	else
	{
		if (pg_fsync(fd) != 0 && errno != EINVAL)
			rc = -1;
		CloseTransientFile(fd);
	}
	pfree(dir);
	return rc;
}

/* Write all of data at offset (pwrite: uploads never use the file position,
 * since parts may also be written by asynchronous I/O). */
static int
file_write_all(int fd, const char *data, size_t len, off_t offset)
{
	while (len > 0)
	{
		ssize_t		n = pwrite(fd, data, Min(len, (size_t) 64 * 1024 * 1024), offset);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
		{
			errno = ENOSPC;
			return -1;
		}
		data += n;
		len -= n;
		offset += n;
	}
	return 0;
}

/* Reads at least this long use direct I/O. */
#define FILE_DIRECT_READ_MIN (256 * 1024)
/* Bounce buffers up to this size are kept for the next read. */
#define FILE_BOUNCE_KEEP (16 * 1024 * 1024)

/*
 * Aligned bounce buffers for direct reads, one per concurrent read slot,
 * kept in TopMemoryContext: fresh multi-megabyte allocations for every
 * read would be page-faulted in again each time.
 */
#define FILE_MAX_SLOTS 32

typedef struct BounceBuffer
{
	char	   *raw;
	char	   *buf;
	size_t		cap;
} BounceBuffer;

/* slots 0..FILE_MAX_SLOTS-1 serve batches; the last one synchronous reads */
#define FILE_SYNC_SLOT FILE_MAX_SLOTS
static BounceBuffer bounces[FILE_MAX_SLOTS + 1];

static char *
file_bounce(int slot, size_t len, bool *temporary)
{
	BounceBuffer *b = &bounces[slot];

	*temporary = false;
	if (len <= b->cap)
		return b->buf;
	if (len > FILE_BOUNCE_KEEP)
	{
		*temporary = true;
		return provider_alloc_aligned(CurrentMemoryContext, len);
	}
	if (b->raw)
		pfree(b->raw);
	b->raw = NULL;
	b->cap = 0;
	b->raw = MemoryContextAllocHuge(TopMemoryContext, len + PROVIDER_IO_ALIGN);
	b->buf = (char *) TYPEALIGN(PROVIDER_IO_ALIGN, b->raw);
	b->cap = len;
	return b->buf;
}

/* Open for direct I/O, or buffered where the filesystem refuses it. */
static int
file_open_maybe_direct(const char *path, int flags, bool *direct)
{
	int			fd = OpenTransientFile(path, flags | O_DIRECT);

	*direct = true;
	if (fd < 0 && errno == EINVAL)
	{
		if (flags & O_CREAT)
			unlink(path);
		*direct = false;
		fd = OpenTransientFile(path, flags);
	}
	return fd;
}

/*
 * Write the aligned head of data directly; anything unaligned (the tail
 * of the last part) switches the descriptor to buffered writes.
 */
static int
file_write_part(ProviderUpload *u, const char *data, size_t len, off_t offset)
{
	if (u->direct)
	{
		size_t		aligned = 0;

		if ((uintptr_t) data % PROVIDER_IO_ALIGN == 0 && offset % PROVIDER_IO_ALIGN == 0)
			aligned = len & ~((size_t) PROVIDER_IO_ALIGN - 1);
		if (aligned > 0 && file_write_all(u->fd, data, aligned, offset) == 0)
		{
			data += aligned;
			len -= aligned;
			offset += aligned;
		}
		else if (aligned > 0 && errno != EINVAL)
			return -1;
		if (len > 0)
		{
			int			flags = fcntl(u->fd, F_GETFL);

			if (flags < 0 || fcntl(u->fd, F_SETFL, flags & ~O_DIRECT) < 0)
				return -1;
			u->direct = false;
		}
	}
	return file_write_all(u->fd, data, len, offset);
}

static char *
file_temp_path(const char *path)
{
	static uint32 counter = 0;

	return psprintf("%s.tmp.%d.%u", path, MyProcPid, ++counter);
}

/* fsync, close, rename into place and make the rename durable. */
static bool
file_commit_temp(ProviderRequest *req, int fd, const char *tmppath,
				 const char *path, const char *key)
{
	if (pg_fsync(fd) != 0)
	{
		file_set_error(req, "fsync", key);
		CloseTransientFile(fd);
		unlink(tmppath);
		return false;
	}
	if (CloseTransientFile(fd) != 0)
	{
		file_set_error(req, "close", key);
		unlink(tmppath);
		return false;
	}
	if (rename(tmppath, path) != 0)
	{
		file_set_error(req, "rename", key);
		unlink(tmppath);
		return false;
	}
	if (file_fsync_parent_dir(path) != 0)
	{
		file_set_error(req, "fsync the directory of", key);
		return false;
	}
	return true;
}

static void
file_put(ProviderRequest *req, const char *key)
{
	char	   *path = file_full_path(req->provider, key);
	char	   *tmppath = file_temp_path(path);
	int			fd;

	if (file_make_parents(req->provider, path) != 0)
	{
		file_set_error(req, "create the directory for", key);
		return;
	}
	fd = OpenTransientFile(tmppath, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY);
	if (fd < 0)
	{
		file_set_error(req, "create", key);
		return;
	}
	if (file_write_all(fd, req->data, req->datalen, 0) != 0)
	{
		file_set_error(req, "write", key);
		CloseTransientFile(fd);
		unlink(tmppath);
		return;
	}
	req->ok = file_commit_temp(req, fd, tmppath, path, key);
}

/* A large ranged read through an aligned bounce buffer, with direct I/O. */
static bool
file_get_direct(ProviderRequest *req, const char *key, int fd)
{
	uint64		a0 = req->offset & ~((uint64) PROVIDER_IO_ALIGN - 1);
	uint64		a1 = TYPEALIGN(PROVIDER_IO_ALIGN, req->offset + req->length);
	uint64		want = a1 - a0;
	uint64		done = 0;
	uint64		skip = req->offset - a0;
	bool		temporary;
	char	   *buf = file_bounce(FILE_SYNC_SLOT, want, &temporary);

	while (done < want)
	{
		ssize_t		n = pread(fd, buf + done, want - done, a0 + done);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			file_set_error(req, "read", key);
			CloseTransientFile(fd);
			return false;
		}
		done += n;
		if ((uint64) n < want - (done - n))
			break;				/* end of file */
	}
	CloseTransientFile(fd);
	req->result_size = done > skip ? Min(req->length, done - skip) : 0;
	memcpy(req->buf, buf + skip, req->result_size);
	if (temporary)
		provider_free_aligned(buf);
	req->ok = true;
	return true;
}

static void
file_get(ProviderRequest *req, const char *key)
{
	char	   *path = file_full_path(req->provider, key);
	bool		direct = false;
	int			fd;
	uint64		done = 0;

	if (req->length >= FILE_DIRECT_READ_MIN)
		fd = file_open_maybe_direct(path, O_RDONLY | PG_BINARY, &direct);
	else
		fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		file_set_error(req, "open", key);
		return;
	}
	if (direct)
	{
		file_get_direct(req, key, fd);
		return;
	}
	while (done < req->length)
	{
		ssize_t		n = pread(fd, req->buf + done,
							  Min(req->length - done, (uint64) 64 * 1024 * 1024),
							  req->offset + done);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			file_set_error(req, "read", key);
			CloseTransientFile(fd);
			return;
		}
		if (n == 0)
			break;				/* end of file: the caller checks result_size */
		done += n;
	}
	CloseTransientFile(fd);
	req->result_size = done;
	req->ok = true;
}

static void
file_head(ProviderRequest *req, const char *key)
{
	char	   *path = file_full_path(req->provider, key);
	struct stat st;

	if (stat(path, &st) != 0)
	{
		file_set_error(req, "stat", key);
		return;
	}
	req->result_size = st.st_size;
	req->ok = true;
}

static void
file_delete(ProviderRequest *req, const char *key)
{
	char	   *path = file_full_path(req->provider, key);

	if (unlink(path) != 0 && errno != ENOENT)
	{
		file_set_error(req, "delete", key);
		return;
	}
	req->ok = true;
}

static void
file_upload(ProviderRequest *req)
{
	ProviderUpload *u = req->upload;
	char	   *path = file_full_path(req->provider, u->key);

	switch (req->op)
	{
		case POP_UPLOAD_BEGIN:
			if (file_make_parents(req->provider, path) != 0)
			{
				file_set_error(req, "create the directory for", u->key);
				return;
			}
			u->tmppath = MemoryContextStrdup(GetMemoryChunkContext(u), file_temp_path(path));
			u->fd = file_open_maybe_direct(u->tmppath, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY,
										   &u->direct);
			if (u->fd < 0)
			{
				file_set_error(req, "create", u->key);
				return;
			}
			u->active = true;
			break;
		case POP_UPLOAD_PART:
			if (file_write_part(u, req->data, req->datalen, u->size) != 0)
			{
				file_set_error(req, "write", u->key);
				return;
			}
			u->nparts++;
			u->size += req->datalen;
			break;
		case POP_UPLOAD_COMPLETE:
			{
				int			fd = u->fd;

				u->fd = -1;
				u->active = false;
				if (!file_commit_temp(req, fd, u->tmppath, path, u->key))
					return;
				break;
			}
		case POP_UPLOAD_ABORT:
			if (u->fd >= 0)
				CloseTransientFile(u->fd);
			u->fd = -1;
			if (u->tmppath)
				unlink(u->tmppath);
			u->active = false;
			break;
		default:
			Assert(false);
	}
	req->ok = true;
}

void
provider_file_execute(ProviderRequest *req)
{
	const char *key = req->upload ? req->upload->key : req->key;
	instr_time	start,
				end;

	INSTR_TIME_SET_CURRENT(start);
	if (!file_key_is_safe(key))
	{
		req->ok = false;
		req->error = psprintf("key \"%s\" is not a safe relative path", key);
		return;
	}
	switch (req->op)
	{
		case POP_PUT:
			file_put(req, key);
			break;
		case POP_GET:
			file_get(req, key);
			break;
		case POP_HEAD:
			file_head(req, key);
			break;
		case POP_DELETE:
			file_delete(req, key);
			break;
		default:
			file_upload(req);
			break;
	}
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_SUBTRACT(end, start);
	req->latency_ms = INSTR_TIME_GET_MILLISEC(end);
}

/* ---------------------------------------------------------------------------
 * Batches: large reads and upload parts run concurrently
 *
 * Shards of one request live in different files (often on different
 * disks), so their transfers are issued together with POSIX AIO (glibc
 * runs them on its own I/O threads, with every signal blocked, and they
 * never call into PostgreSQL).  Everything else runs one by one.
 * ------------------------------------------------------------------------- */
/* A read collected this long after its start, and over by then, is loose */
#define FILE_LOOSE_MS	15

typedef struct FileAsync
{
	ProviderRequest *req;
	struct aiocb cb;
	int			fd;				/* reads: our descriptor; parts: the upload's */
	bool		direct;
	char	   *bounce;			/* direct reads */
	bool		bounce_temporary;
	uint64		skip;			/* bytes of bounce before the wanted range */
	size_t		tail;			/* parts: unaligned bytes left for a buffered write */
	bool		submitted;
	bool		loose;			/* ended before anyone looked, long after its
								 * start: its time is not the provider's */
	instr_time	start;
} FileAsync;

static bool
file_async_candidate(ProviderRequest *req)
{
	if (req->op == POP_GET)
		return req->length >= FILE_DIRECT_READ_MIN;
	if (req->op == POP_UPLOAD_PART)
		return req->upload != NULL && req->upload->direct && req->upload->fd >= 0 &&
			(uintptr_t) req->data % PROVIDER_IO_ALIGN == 0 &&
			req->upload->size % PROVIDER_IO_ALIGN == 0 &&
			req->datalen >= PROVIDER_IO_ALIGN;
	return false;
}

/* Prepare one transfer; false if it must run synchronously instead. */
static bool
file_async_prepare(FileAsync *a, int slot)
{
	ProviderRequest *req = a->req;
	const char *key = req->upload ? req->upload->key : req->key;

	memset(&a->cb, 0, sizeof(a->cb));
	a->fd = -1;
	INSTR_TIME_SET_CURRENT(a->start);
	if (!file_key_is_safe(key))
		return false;
	if (req->op == POP_GET)
	{
		char	   *path = file_full_path(req->provider, key);
		uint64		a0 = req->offset & ~((uint64) PROVIDER_IO_ALIGN - 1);
		uint64		a1 = TYPEALIGN(PROVIDER_IO_ALIGN, req->offset + req->length);

		a->fd = file_open_maybe_direct(path, O_RDONLY | PG_BINARY, &a->direct);
		if (a->fd < 0)
			return false;		/* the synchronous path reports the error */
		a->cb.aio_fildes = a->fd;
		if (a->direct)
		{
			a->skip = req->offset - a0;
			if (req->buf_aligned_io)
				a->bounce = req->buf - a->skip;	/* no copy: the caller allowed it */
			else if (slot < 0)
			{
				/* slots belong to a batch still in flight */
				a->bounce = provider_alloc_aligned(CurrentMemoryContext, a1 - a0);
				a->bounce_temporary = true;
			}
			else
				a->bounce = file_bounce(slot, a1 - a0, &a->bounce_temporary);
			a->cb.aio_buf = a->bounce;
			a->cb.aio_nbytes = a1 - a0;
			a->cb.aio_offset = a0;
		}
		else
		{
			a->cb.aio_buf = req->buf;
			a->cb.aio_nbytes = req->length;
			a->cb.aio_offset = req->offset;
		}
		a->cb.aio_lio_opcode = LIO_READ;
	}
	else
	{
		ProviderUpload *u = req->upload;
		size_t		aligned = req->datalen & ~((size_t) PROVIDER_IO_ALIGN - 1);

		a->cb.aio_fildes = u->fd;
		a->cb.aio_buf = (void *) req->data;
		a->cb.aio_nbytes = aligned;
		a->cb.aio_offset = u->size;
		a->cb.aio_lio_opcode = LIO_WRITE;
		a->tail = req->datalen - aligned;
	}
	a->cb.aio_sigevent.sigev_notify = SIGEV_NONE;
	return true;
}

/*
 * Wait until none of the n control blocks (NULL: not submitted) is in
 * progress; with interrupts held, only waits.
 */
static void
file_aio_wait(const struct aiocb **cbs, int n, bool interruptible)
{
	/* no allocation for the usual sizes: this also runs in error cleanup */
	const struct aiocb *local[64];
	const struct aiocb **pending = n <= lengthof(local) ? local : palloc(sizeof(struct aiocb *) * n);

	for (;;)
	{
		int			npending = 0;
		struct timespec ts = {0, 100 * 1000 * 1000};

		for (int i = 0; i < n; i++)
			if (cbs[i] != NULL && aio_error(cbs[i]) == EINPROGRESS)
				pending[npending++] = cbs[i];
		if (npending == 0)
			break;
		(void) aio_suspend(pending, npending, &ts);
		if (interruptible)
			CHECK_FOR_INTERRUPTS();
	}
	if (pending != local)
		pfree(pending);
}

/* Wait for every submitted transfer; with interrupts held, only waits. */
static void
file_async_wait(FileAsync *as, int n, bool interruptible)
{
	const struct aiocb *cbs[FILE_MAX_SLOTS];

	for (int i = 0; i < n; i++)
		cbs[i] = as[i].submitted ? &as[i].cb : NULL;
	file_aio_wait(cbs, n, interruptible);
}

static void
file_async_complete(FileAsync *a)
{
	ProviderRequest *req = a->req;
	const char *key = req->upload ? req->upload->key : req->key;
	int			err = aio_error(&a->cb);
	ssize_t		n = aio_return(&a->cb);
	instr_time	end;

	if (err != 0)
	{
		errno = err;
		file_set_error(req, req->op == POP_GET ? "read" : "write", key);
	}
	else if (req->op == POP_GET)
	{
		req->timing_loose = a->loose;
		if (a->direct)
		{
			req->result_size = (uint64) n > a->skip ? Min(req->length, n - a->skip) : 0;
			if (!req->buf_aligned_io)
				memcpy(req->buf, a->bounce + a->skip, req->result_size);
		}
		else
		{
			uint64		done = n;

			/* a buffered read may come back short before end of file */
			while (done < req->length)
			{
				ssize_t		m = pread(a->fd, req->buf + done, req->length - done,
									  req->offset + done);

				if (m < 0 && errno == EINTR)
					continue;
				if (m <= 0)
					break;
				done += m;
			}
			req->result_size = done;
		}
		req->ok = true;
	}
	else
	{
		ProviderUpload *u = req->upload;

		if ((size_t) n != a->cb.aio_nbytes)
		{
			errno = ENOSPC;
			file_set_error(req, "write", key);
		}
		else
		{
			u->size += n;
			/* the unaligned tail of a last part goes through the page cache */
			if (a->tail > 0 && file_write_part(u, req->data + n, a->tail, u->size) != 0)
				file_set_error(req, "write", key);
			else
			{
				u->size += a->tail;
				u->nparts++;
				req->ok = true;
			}
		}
	}
	if (req->op == POP_GET && a->fd >= 0)
		CloseTransientFile(a->fd);
	if (a->bounce_temporary)
		provider_free_aligned(a->bounce);
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_SUBTRACT(end, a->start);
	req->latency_ms = INSTR_TIME_GET_MILLISEC(end);
}

struct FileBatch
{
	FileAsync  *as;
	int			nas;
};

/* Batches started and not yet finished (their bounce slots are taken). */
static int	file_batches_in_flight = 0;

/* ---------------------------------------------------------------------------
 * Durability of a batch of writes, together
 *
 * Every file written is made durable before it counts: fsync, rename into
 * place, fsync of its directory (file_commit_temp).  Done shard after
 * shard, that is two disk flushes per shard in a row — a dozen for one
 * 4+2 object, most of a small transaction's commit.  A batch made only of
 * PUTs and completed uploads (one per shard of an object, as writers and
 * the metadata log send them) writes its data first, then fsyncs every
 * file at once on glibc's AIO threads (one per descriptor), renames, and
 * fsyncs the directories at once: the disk and the filesystem's journal
 * take together what arrives together.  Same guarantees, same errors.
 * ------------------------------------------------------------------------- */
typedef struct FileDurable
{
	ProviderRequest *req;
	const char *key;
	char	   *path;
	char	   *tmppath;
	int			fd;				/* the temp file; then its directory's */
	bool		failed;
	struct aiocb cb;
	bool		submitted;
	instr_time	start;
} FileDurable;

static bool
file_durable_candidate(ProviderRequest *req)
{
	return req->op == POP_PUT ||
		(req->op == POP_UPLOAD_COMPLETE && req->upload != NULL && req->upload->fd >= 0);
}

/* Wait for the submitted fsyncs (see provider_file_finish for the ERROR case). */
static void
file_durable_wait(FileDurable *ds, int n, const struct aiocb **cbs, bool interruptible)
{
	for (int i = 0; i < n; i++)
		cbs[i] = ds[i].submitted ? &ds[i].cb : NULL;
	file_aio_wait(cbs, n, interruptible);
}

/*
 * fsync every open ds[i].fd of a request not failed, all at once; false in
 * ds[i] where it failed (errno set for file_set_error).  A descriptor whose
 * fsync could not be queued is synced here.
 */
static void
file_durable_fsync(FileDurable *ds, int n, const char *what, bool dir)
{
	const struct aiocb **cbs;

	for (int i = 0; i < n; i++)
	{
		FileDurable *d = &ds[i];

		d->submitted = false;
		if (d->failed || d->fd < 0)
			continue;
		memset(&d->cb, 0, sizeof(d->cb));
		d->cb.aio_fildes = d->fd;
		d->cb.aio_sigevent.sigev_notify = SIGEV_NONE;
		d->submitted = aio_fsync(O_SYNC, &d->cb) == 0;
	}
	cbs = palloc(sizeof(struct aiocb *) * n);
	PG_TRY();
	{
		file_durable_wait(ds, n, cbs, true);
	}
	PG_CATCH();
	{
		file_durable_wait(ds, n, cbs, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pfree(cbs);
	for (int i = 0; i < n; i++)
	{
		FileDurable *d = &ds[i];
		int			rc;

		if (d->failed || d->fd < 0)
			continue;
		if (d->submitted)
		{
			rc = aio_return(&d->cb);
			if (rc != 0)
				errno = aio_error(&d->cb);
		}
		else
			rc = pg_fsync(d->fd);
		/* a directory that cannot be fsynced (EINVAL) is accepted, as before */
		if (rc != 0 && !(dir && errno == EINVAL))
		{
			file_set_error(d->req, what, d->key);
			d->failed = true;
		}
	}
}

static void
file_durable_batch(ProviderRequest **reqs, int n)
{
	FileDurable *ds = palloc0(sizeof(FileDurable) * n);

	/* 1. the data, into temp files */
	for (int i = 0; i < n; i++)
	{
		FileDurable *d = &ds[i];
		ProviderRequest *req = reqs[i];

		CHECK_FOR_INTERRUPTS();
		d->req = req;
		d->fd = -1;
		INSTR_TIME_SET_CURRENT(d->start);
		d->key = req->upload ? req->upload->key : req->key;
		if (!file_key_is_safe(d->key))
		{
			req->ok = false;
			req->error = psprintf("key \"%s\" is not a safe relative path", d->key);
			d->failed = true;
			continue;
		}
		d->path = file_full_path(req->provider, d->key);
		if (req->op == POP_UPLOAD_COMPLETE)
		{
			d->fd = req->upload->fd;
			d->tmppath = req->upload->tmppath;
			req->upload->fd = -1;
			req->upload->active = false;
			continue;
		}
		d->tmppath = file_temp_path(d->path);
		if (file_make_parents(req->provider, d->path) != 0)
		{
			file_set_error(req, "create the directory for", d->key);
			d->failed = true;
			continue;
		}
		d->fd = OpenTransientFile(d->tmppath, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY);
		if (d->fd < 0)
		{
			file_set_error(req, "create", d->key);
			d->failed = true;
			continue;
		}
		if (file_write_all(d->fd, req->data, req->datalen, 0) != 0)
		{
			file_set_error(req, "write", d->key);
			d->failed = true;
		}
	}

	/* 2. every file's fsync at once */
	file_durable_fsync(ds, n, "fsync", false);

	/* 3. close and rename into place, or clean up */
	for (int i = 0; i < n; i++)
	{
		FileDurable *d = &ds[i];

		if (d->fd >= 0 && CloseTransientFile(d->fd) != 0 && !d->failed)
		{
			file_set_error(d->req, "close", d->key);
			d->failed = true;
		}
		d->fd = -1;
		if (d->failed)
		{
			if (d->tmppath)
				unlink(d->tmppath);
			continue;
		}
		if (rename(d->tmppath, d->path) != 0)
		{
			file_set_error(d->req, "rename", d->key);
			unlink(d->tmppath);
			d->failed = true;
		}
	}

	/* 4. the renames durable: each directory's fsync, at once */
	for (int i = 0; i < n; i++)
	{
		FileDurable *d = &ds[i];
		char	   *slash;

		if (d->failed)
			continue;
		slash = strrchr(d->path, '/');
		if (slash)
			*slash = '\0';
		d->fd = OpenTransientFile(d->path, O_RDONLY | PG_BINARY);
		if (slash)
			*slash = '/';
		if (d->fd < 0)
		{
			file_set_error(d->req, "fsync the directory of", d->key);
			d->failed = true;
		}
	}
	file_durable_fsync(ds, n, "fsync the directory of", true);
	for (int i = 0; i < n; i++)
	{
		FileDurable *d = &ds[i];
		instr_time	end;

		if (d->fd >= 0)
			CloseTransientFile(d->fd);
		if (!d->failed)
			d->req->ok = true;
		INSTR_TIME_SET_CURRENT(end);
		INSTR_TIME_SUBTRACT(end, d->start);
		d->req->latency_ms = INSTR_TIME_GET_MILLISEC(end);
	}
	pfree(ds);
}

/* Run what must run here, submit the rest; results come at finish. */
FileBatch *
provider_file_start(ProviderRequest **reqs, int nreqs)
{
	FileBatch  *b = palloc0(sizeof(FileBatch));
	FileAsync  *as = palloc0(sizeof(FileAsync) * FILE_MAX_SLOTS);
	int			nas = 0;

	b->as = as;
	if (nreqs >= 2)
	{
		bool		all = true;

		for (int i = 0; i < nreqs && all; i++)
			all = file_durable_candidate(reqs[i]);
		if (all)
		{
			file_durable_batch(reqs, nreqs);
			file_batches_in_flight++;
			return b;
		}
	}
	for (int i = 0; i < nreqs; i++)
	{
		ProviderRequest *req = reqs[i];

		CHECK_FOR_INTERRUPTS();
		if (nas < FILE_MAX_SLOTS && file_async_candidate(req))
		{
			FileAsync  *a = &as[nas];

			/* parts of one upload are appended in order: never two at once */
			for (int j = 0; j < nas; j++)
				if (req->upload && as[j].req->upload == req->upload)
					elog(ERROR, "two parts of one upload in one batch");

			a->req = req;
			if (file_async_prepare(a, file_batches_in_flight > 0 ? -1 : nas))
			{
				nas++;
				continue;
			}
			if (a->fd >= 0 && req->op == POP_GET)
				CloseTransientFile(a->fd);
		}
		provider_file_execute(req);
	}
	b->nas = nas;

	for (int i = 0; i < nas; i++)
	{
		int			rc = as[i].cb.aio_lio_opcode == LIO_READ ?
			aio_read(&as[i].cb) : aio_write(&as[i].cb);

		as[i].submitted = (rc == 0);
	}
	file_batches_in_flight++;
	return b;
}

/*
 * Wait for a started batch and fill in its requests.  With interrupts
 * allowed, an ERROR while waiting first lets the I/O threads finish (they
 * may be writing into the caller's buffers).
 */
void
provider_file_finish(FileBatch *b)
{
	instr_time	now;

	/*
	 * A read that had ended before this look, long after it started (a
	 * read-ahead collected after a cursor sat idle), took at most that
	 * long — an upper bound, not its time: taken for its time, a local
	 * disk showed seconds of latency (TAP 151).
	 */
	INSTR_TIME_SET_CURRENT(now);
	for (int i = 0; i < b->nas; i++)
	{
		FileAsync  *a = &b->as[i];
		instr_time	since = now;

		INSTR_TIME_SUBTRACT(since, a->start);
		a->loose = a->submitted && aio_error(&a->cb) != EINPROGRESS &&
			INSTR_TIME_GET_MILLISEC(since) > FILE_LOOSE_MS;
	}
	PG_TRY();
	{
		file_async_wait(b->as, b->nas, true);
	}
	PG_CATCH();
	{
		file_async_wait(b->as, b->nas, false);
		file_batches_in_flight--;
		PG_RE_THROW();
	}
	PG_END_TRY();
	file_batches_in_flight--;

	for (int i = 0; i < b->nas; i++)
	{
		FileAsync  *a = &b->as[i];

		if (a->submitted)
			file_async_complete(a);
		else
		{
			/* could not queue it: do it here */
			if (a->req->op == POP_GET && a->fd >= 0)
				CloseTransientFile(a->fd);
			if (a->bounce_temporary)
				provider_free_aligned(a->bounce);
			provider_file_execute(a->req);
		}
	}
	pfree(b->as);
	pfree(b);
}

/*
 * Forget a started batch during error cleanup: only wait for the I/O
 * threads.  Descriptors are transient files, which transaction abort
 * closes; memory belongs to contexts being reset.
 */
void
provider_file_abandon(FileBatch *b)
{
	file_async_wait(b->as, b->nas, false);
	file_batches_in_flight--;
}

void
provider_file_execute_batch(ProviderRequest **reqs, int nreqs)
{
	provider_file_finish(provider_file_start(reqs, nreqs));
}

static void
file_list_dir(Provider *p, const char *reldir, const char *prefix, List **result)
{
	char	   *dirpath = reldir[0] ? psprintf("%s/%s", p->path, reldir) : pstrdup(p->path);
	DIR		   *dir = AllocateDir(dirpath);
	struct dirent *de;

	if (dir == NULL)
	{
		if (errno == ENOENT && reldir[0] != '\0')
			return;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("provider \"%s\" could not list directory \"%s\": %m", p->name, dirpath),
				 errhint("Check that the provider's path exists and the server can read it.")));
	}
	while ((de = ReadDir(dir, dirpath)) != NULL)
	{
		char	   *rel;
		char	   *full;
		struct stat st;

		CHECK_FOR_INTERRUPTS();
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rel = reldir[0] ? psprintf("%s/%s", reldir, de->d_name) : pstrdup(de->d_name);
		full = psprintf("%s/%s", p->path, rel);
		if (lstat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
		{
			/* descend only where the prefix can still match */
			size_t		rl = strlen(rel);

			if (strncmp(rel, prefix, Min(rl, strlen(prefix))) == 0)
				file_list_dir(p, rel, prefix, result);
		}
		else if (S_ISREG(st.st_mode) && strncmp(rel, prefix, strlen(prefix)) == 0)
		{
			ProviderListEntry *e = palloc(sizeof(ProviderListEntry));

			e->key = rel;
			e->size = st.st_size;
			e->last_modified = time_t_to_timestamptz(st.st_mtime);
			*result = lappend(*result, e);
		}
	}
	FreeDir(dir);
}

List *
provider_file_list(Provider *p, const char *prefix)
{
	List	   *result = NIL;

	file_list_dir(p, "", prefix, &result);
	return result;
}
