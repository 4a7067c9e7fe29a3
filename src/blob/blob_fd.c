/*
 * blob_fd.c — blob descriptors: a blob streamed in or out in pieces, the way
 * lo_open/lowrite/loread stream a large object.
 *
 * destor.blob_create(pool) opens a descriptor for writing a new blob; every
 * destor.blob_write() feeds the data to an ObjectWriter, which compresses,
 * encrypts, encodes and uploads it as it arrives (memory stays bounded by the
 * writer's part buffers, whatever the blob's size); destor.blob_close()
 * finishes the object and records the blob, which is then visible to this
 * transaction and, once it commits, to others.  destor.blob_open(blob) opens
 * an existing blob for reading (after the same access check as blob_get);
 * destor.blob_read(), blob_seek() and blob_tell() move through it.
 *
 * Descriptors live until the end of the transaction that opened them, as
 * large-object descriptors do:
 *   - The table of descriptors is in TopTransactionContext; a transaction
 *     callback forgets it at commit and abort.  Numbers are never reused
 *     within a session, so a descriptor of an earlier transaction is
 *     recognised as such instead of naming another blob.
 *   - At abort, every writer is simply abandoned: the object layer already
 *     discards its open uploads and deletes its written shards
 *     (object_xact.c), and its memory goes with the transaction.  Readers
 *     are reset there too, so no read-ahead is still writing into their
 *     buffers when the transaction's files are closed.
 *   - At commit, a descriptor still open for writing is an ERROR (like an
 *     unfinished COPY): only blob_close() returns the new blob's handle, so
 *     committing would store a blob nobody can reach, or lose data the
 *     client believes stored.  Read descriptors are closed silently.
 *   - A read descriptor holds the snapshot it found the blob under until it
 *     closes (as lo_open(INV_READ) does), so a delete or a pack compaction
 *     committed meanwhile by another session leaves the shards it reads
 *     (object_xact.c defers their removal while a snapshot may see them).
 *   - A descriptor opened in a subtransaction that rolls back is closed, as
 *     lo's are.  A write descriptor that was written to in a subtransaction
 *     that rolled back (an ERROR caught by a savepoint or an exception block,
 *     or a plain ROLLBACK TO) cannot go on: what was written cannot be taken
 *     back out of the object's stream, and the uploads begun there were
 *     aborted.  It is marked broken; blob_close() then releases it with an
 *     ERROR and nothing is stored.  A read descriptor in the same case only
 *     drops its reader (reopened at the next read).
 *
 * Memory: a descriptor that streams holds megabytes (a writer's part
 * buffers, a reader's windows and read-ahead, the window buffer below), so
 * at most destor.max_active_blob_descriptors of a backend's descriptors
 * hold them at once.  Opening a descriptor costs a few kilobytes; a read
 * descriptor gets its buffers at its first read, and when the limit is
 * reached the least recently used reader gives them back (its next read
 * starts a new reader, as after a rolled-back subtransaction).  Writers
 * cannot give back theirs: a new write descriptor beyond the limit, or a
 * read when every active descriptor is writing, is an ERROR.
 *
 * Reads: sequential reads (each starting where the last one ended) go
 * through a buffer of BLOB_FD_WINDOW bytes aligned on the object's read
 * windows, so the reader fetches whole windows and starts fetching the next
 * one while this one is used (object_read.c's read-ahead); 1 MB reads then
 * cost one provider round trip per 16 MB.  Other reads go straight to the
 * reader.  Both look in the shared cache first; bulk windows do not fill it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/int.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "destor/blob.h"
#include "destor/object.h"

/* one read window of the object reader (READ_WINDOW_BLOCKS blocks) */
#define BLOB_FD_WINDOW	((uint64) 256 * OBJECT_BLOCK_SIZE)

#define BLOB_SEEK_SET	0
#define BLOB_SEEK_CUR	1
#define BLOB_SEEK_END	2

typedef enum BlobFdState
{
	BLOB_FD_OPEN,
	BLOB_FD_BROKEN,				/* write: data lost to an error or rollback */
	BLOB_FD_CLOSED,				/* by blob_close */
	BLOB_FD_ROLLED_BACK			/* opened in a subtransaction that rolled back */
} BlobFdState;

typedef struct BlobFd
{
	BlobFdState state;
	bool		writing;
	SubTransactionId open_subid;	/* (sub)transaction that opened it */
	SubTransactionId io_subid;	/* innermost one that wrote or read through it */
	uint64		pos;			/* read or write position */
	MemoryContext cxt;			/* owned: the descriptor's memory */

	/* writing: the writer lives in the opening subtransaction's context */
	ObjectWriter *writer;
	char	   *pool;			/* in cxt */
	Oid			owner;			/* the role that called blob_create: the blob's owner */

	/* reading */
	uint8		id[CODEC_OBJID_LEN];
	BlobData   *meta;			/* in cxt */
	Snapshot	snapshot;		/* owned, registered on the top transaction */
	MemoryContext reader_cxt;	/* holds the reader; reset to abandon it */
	ObjectReader *reader;		/* NULL until the first read */
	uint64		last_end;		/* where the last read ended (sequential?) */
	char	   *buf;			/* one window of plaintext, in cxt */
	uint64		buf_start;
	uint64		buf_len;		/* 0: nothing buffered */
	uint64		last_used;		/* fd_tick at its last read (LRU) */
} BlobFd;

/* descriptors holding stream buffers at once (the GUC) */
int			blob_max_active_descriptors = 8;

/* This transaction's descriptors: fd = fd_base + index. */
static MemoryContext fd_cxt = NULL;
static BlobFd **fds = NULL;
static int	nfds = 0;
static int	fds_cap = 0;
static int32 fd_base = 0;
/* the next descriptor number of this session (never reused in it) */
static int32 fd_next = 0;
static bool fd_callbacks = false;
/* counts reads, to find the least recently used reader */
static uint64 fd_tick = 0;

PG_FUNCTION_INFO_V1(blob_fd_create);
PG_FUNCTION_INFO_V1(blob_fd_open);
PG_FUNCTION_INFO_V1(blob_fd_write);
PG_FUNCTION_INFO_V1(blob_fd_read);
PG_FUNCTION_INFO_V1(blob_fd_seek);
PG_FUNCTION_INFO_V1(blob_fd_tell);
PG_FUNCTION_INFO_V1(blob_fd_close);

/* ---------------------------------------------------------------------------
 * End of (sub)transaction
 * ------------------------------------------------------------------------- */

/* Forget a reader without waiting for it to be useful: error-cleanup path. */
static void
fd_drop_reader(BlobFd *d)
{
	if (d->reader_cxt != NULL)
		MemoryContextReset(d->reader_cxt);
	d->reader = NULL;
	d->buf_len = 0;
	d->last_end = PG_UINT64_MAX;
}

/*
 * fd_release_snapshot — let go of a read descriptor's snapshot (closed, or
 * its subtransaction rolled back).  Not at abort: the transaction's resource
 * owner releases it there.
 */
static void
fd_release_snapshot(BlobFd *d)
{
	if (d->snapshot != NULL)
	{
		Snapshot	snap = d->snapshot;

		d->snapshot = NULL;
		UnregisterSnapshotFromOwner(snap, TopTransactionResourceOwner);
	}
}

static void
fd_forget_all(void)
{
	fds = NULL;
	nfds = 0;
	fds_cap = 0;
	fd_cxt = NULL;				/* a child of TopTransactionContext: it goes too */
}

static void
blob_fd_xact_callback(XactEvent event, void *arg)
{
	if (fds == NULL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			for (int i = 0; i < nfds; i++)
			{
				BlobFd	   *d = fds[i];

				if (d->writing && (d->state == BLOB_FD_OPEN || d->state == BLOB_FD_BROKEN))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
							 errmsg("blob descriptor %d is still open for writing", fd_base + i),
							 errdetail("Only destor.blob_close() stores the blob and returns its handle; committing now would lose what was written."),
							 errhint("Call destor.blob_close(%d) before the end of the transaction, or roll back to discard the blob.",
									 fd_base + i)));
			}
			for (int i = 0; i < nfds; i++)
			{
				BlobFd	   *d = fds[i];

				if (d->reader != NULL)
				{
					ObjectReader *r = d->reader;

					d->reader = NULL;
					object_reader_close(r);
				}
				fd_release_snapshot(d);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* before the transaction's files close under a read-ahead */
			for (int i = 0; i < nfds; i++)
				fd_drop_reader(fds[i]);
			fd_forget_all();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			fd_forget_all();
			break;
		default:
			break;
	}
}

static void
blob_fd_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (fds == NULL)
		return;
	for (int i = 0; i < nfds; i++)
	{
		BlobFd	   *d = fds[i];

		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			if (d->open_subid == mySubid)
				d->open_subid = parentSubid;
			if (d->io_subid == mySubid)
				d->io_subid = parentSubid;
		}
		else if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			if (d->state != BLOB_FD_OPEN && d->state != BLOB_FD_BROKEN)
				continue;
			if (d->open_subid == mySubid)
			{
				/* the writer's memory goes with the subtransaction's */
				fd_drop_reader(d);
				fd_release_snapshot(d);
				d->writer = NULL;
				d->state = BLOB_FD_ROLLED_BACK;
			}
			else if (d->io_subid == mySubid)
			{
				if (d->writing)
				{
					/* its memory stays with the transaction; its part in
					 * flight is given up now, not sent on meanwhile */
					if (d->writer)
						object_writer_stop(d->writer);
					d->writer = NULL;
					d->state = BLOB_FD_BROKEN;
				}
				else
					fd_drop_reader(d);
			}
		}
	}
}

/* ---------------------------------------------------------------------------
 * The table of descriptors
 * ------------------------------------------------------------------------- */

void
blob_fd_define_gucs(void)
{
	DefineCustomIntVariable("destor.max_active_blob_descriptors",
							"Most blob descriptors of a backend holding stream buffers at once.",
							"Each writing descriptor holds its writer's part buffers (two sets of "
							"one 8 MB part per shard: about 100 MB for a 4+2 pool), each reading one "
							"that has read up to about 32 MB; beyond the limit the least recently "
							"used reader gives its buffers back, and a new writer is refused.",
							&blob_max_active_descriptors, 8, 1, 1024,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* Does d hold stream buffers (a writer, or a reader that has read)? */
static bool
fd_active(BlobFd *d)
{
	if (d->state != BLOB_FD_OPEN && d->state != BLOB_FD_BROKEN)
		return false;
	return d->writing ? d->writer != NULL : (d->reader != NULL || d->buf != NULL);
}

/*
 * fd_release_buffers — a reader gives back its reader and window buffer
 * (the least recently used one, to make room).  Its position and its
 * "sequential" mark stay: the next read starts a new reader.
 */
static void
fd_release_buffers(BlobFd *d)
{
	if (d->reader != NULL)
	{
		ObjectReader *r = d->reader;

		d->reader = NULL;
		object_reader_close(r);
	}
	if (d->reader_cxt != NULL)
		MemoryContextReset(d->reader_cxt);
	if (d->buf != NULL)
		pfree(d->buf);
	d->buf = NULL;
	d->buf_len = 0;
}

/*
 * fd_make_room — before self (NULL: a new writer) takes stream buffers:
 * while destor.max_active_blob_descriptors others hold theirs, the least
 * recently used reader lets go of its; if only writers are left, ERROR.
 */
static void
fd_make_room(BlobFd *self)
{
	for (;;)
	{
		int			active = 0;
		int			writers = 0;
		BlobFd	   *lru = NULL;

		for (int i = 0; fds != NULL && i < nfds; i++)
		{
			BlobFd	   *d = fds[i];

			if (d == self || !fd_active(d))
				continue;
			active++;
			if (d->writing)
				writers++;
			else if (lru == NULL || d->last_used < lru->last_used)
				lru = d;
		}
		if (active < blob_max_active_descriptors)
			return;
		if (lru == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many blob descriptors are writing at once"),
					 errdetail("%d descriptors of this transaction are writing blobs, and each holds up to tens of megabytes of buffers; destor.max_active_blob_descriptors is %d.",
							   writers, blob_max_active_descriptors),
					 errhint("Finish some with destor.blob_close() first, or have a superuser raise destor.max_active_blob_descriptors.")));
		fd_release_buffers(lru);
	}
}
static BlobFd *
fd_new(bool writing, int32 *fdno)
{
	BlobFd	   *d;

	if (!fd_callbacks)
	{
		RegisterXactCallback(blob_fd_xact_callback, NULL);
		RegisterSubXactCallback(blob_fd_subxact_callback, NULL);
		fd_callbacks = true;
	}
	if (fds == NULL)
	{
		fd_cxt = AllocSetContextCreate(TopTransactionContext, "destor blob descriptors",
									   ALLOCSET_SMALL_SIZES);
		fds_cap = 8;
		fds = MemoryContextAlloc(fd_cxt, sizeof(BlobFd *) * fds_cap);
		nfds = 0;
		/* start over long before the numbers could wrap */
		if (fd_next > PG_INT32_MAX / 2)
			fd_next = 0;
		fd_base = fd_next;
	}
	if (nfds == fds_cap)
	{
		if (fds_cap >= PG_INT32_MAX / 4)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many blob descriptors opened in one transaction")));
		fds_cap *= 2;
		fds = repalloc_huge(fds, sizeof(BlobFd *) * fds_cap);
	}
	d = MemoryContextAllocZero(fd_cxt, sizeof(BlobFd));
	d->cxt = AllocSetContextCreate(fd_cxt, "destor blob descriptor", ALLOCSET_SMALL_SIZES);
	d->writing = writing;
	d->state = BLOB_FD_OPEN;
	d->open_subid = GetCurrentSubTransactionId();
	d->io_subid = InvalidSubTransactionId;
	d->last_end = PG_UINT64_MAX;
	fds[nfds] = d;
	*fdno = fd_base + nfds;
	nfds++;
	fd_next = fd_base + nfds;
	return d;
}

/*
 * fd_get — the open descriptor fdno, or an ERROR saying why there is none.
 * want_write: true for writing, false for reading, -1 for either.
 */
static BlobFd *
fd_get(int32 fdno, int want_write)
{
	BlobFd	   *d;

	if (fds == NULL || fdno < fd_base || fdno >= fd_base + nfds)
	{
		if (fdno >= 0 && fdno < (fds == NULL ? fd_next : fd_base))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("blob descriptor %d belongs to an earlier transaction", fdno),
					 errdetail("Blob descriptors are valid until the end of the transaction that opened them."),
					 errhint("Open the blob again with destor.blob_open() in this transaction.")));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("blob descriptor %d does not exist", fdno),
				 errhint("Descriptors come from destor.blob_create() or destor.blob_open().")));
	}
	d = fds[fdno - fd_base];
	switch (d->state)
	{
		case BLOB_FD_OPEN:
			break;
		case BLOB_FD_CLOSED:
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("blob descriptor %d is closed", fdno),
					 errdetail("destor.blob_close() was called on it.")));
			break;
		case BLOB_FD_ROLLED_BACK:
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("blob descriptor %d is closed", fdno),
					 errdetail("It was opened in a subtransaction that rolled back.")));
			break;
		case BLOB_FD_BROKEN:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("blob descriptor %d can no longer be written", fdno),
					 errdetail("A write through it failed or was rolled back, and a blob is written from start to end."),
					 errhint("Release it with destor.blob_close(%d), which stores nothing, and write the blob again through a new descriptor.",
							 fdno)));
			break;
	}
	if (want_write == 1 && !d->writing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("blob descriptor %d was not opened for writing", fdno),
				 errhint("Blobs cannot be changed: write a new one with destor.blob_create().")));
	if (want_write == 0 && d->writing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("blob descriptor %d was not opened for reading", fdno),
				 errhint("Close it with destor.blob_close() and read the new blob through destor.blob_open().")));
	return d;
}

/* ---------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------- */
static ObjectReader *
fd_reader(BlobFd *d)
{
	if (d->reader == NULL)
	{
		MemoryContext old;

		if (d->reader_cxt == NULL)
			d->reader_cxt = AllocSetContextCreate(d->cxt, "destor blob descriptor reader",
												  ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(d->reader_cxt);
		d->reader = blob_data_reader(d->meta);
		MemoryContextSwitchTo(old);
	}
	return d->reader;
}

/*
 * fd_read_at — n bytes (all inside the blob) at pos into dst.  A read that
 * continues the previous one goes through the window buffer; others are
 * read as asked.
 */
static void
fd_read_at(BlobFd *d, uint64 pos, uint64 n, char *dst)
{
	bool		sequential = pos == d->last_end;

	while (n > 0)
	{
		uint64		take;

		CHECK_FOR_INTERRUPTS();
		if (d->buf_len > 0 && pos >= d->buf_start && pos < d->buf_start + d->buf_len)
		{
			take = Min(n, d->buf_start + d->buf_len - pos);
			memcpy(dst, d->buf + (pos - d->buf_start), take);
		}
		else if (sequential)
		{
			uint64		wstart = pos - pos % BLOB_FD_WINDOW;
			uint64		wlen = Min(BLOB_FD_WINDOW, d->meta->size - wstart);

			/* no window is longer than the blob: a small blob, a small buffer */
			if (d->buf == NULL)
				d->buf = MemoryContextAlloc(d->cxt, Min(BLOB_FD_WINDOW, d->meta->size));
			d->buf_len = 0;		/* half-filled if the read fails */
			blob_data_read(d->meta, fd_reader(d), wstart, wlen, d->buf);
			d->buf_start = wstart;
			d->buf_len = wlen;
			continue;
		}
		else
		{
			take = n;
			blob_data_read(d->meta, fd_reader(d), pos, n, dst);
		}
		pos += take;
		dst += take;
		n -= take;
	}
}

/* ---------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------- */

/* destor.blob_create(pool name) → integer: a descriptor writing a new blob */
Datum
blob_fd_create(PG_FUNCTION_ARGS)
{
	Name		poolname = PG_GETARG_NAME(0);
	Pool	   *pool = pool_lookup(NameStr(*poolname), true);	/* USAGE, as blob_put */
	ObjectWriter *w;
	BlobFd	   *d;
	int32		fdno;

	fd_make_room(NULL);
	/* in the current (sub)transaction's context, which a rollback frees */
	w = object_writer_create(pool, true);
	d = fd_new(true, &fdno);
	d->writer = w;
	d->pool = MemoryContextStrdup(d->cxt, pool->name);
	d->owner = GetUserId();
	PG_RETURN_INT32(fdno);
}

/* destor.blob_open(b blob) → integer: a descriptor reading a blob */
Datum
blob_fd_open(PG_FUNCTION_ARGS)
{
	BlobHandle *b = (BlobHandle *) PG_GETARG_POINTER(0);
	MemoryContext cxt;
	MemoryContext old;
	BlobData   *meta;
	BlobFd	   *d;
	int32		fdno;

	/* the same check as blob_get's; the metadata stays with the descriptor */
	cxt = AllocSetContextCreate(CurTransactionContext, "destor blob metadata",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	meta = blob_open_data(b, "read");
	MemoryContextSwitchTo(old);

	d = fd_new(false, &fdno);
	MemoryContextSetParent(cxt, d->cxt);
	memcpy(d->id, b->id, CODEC_OBJID_LEN);
	d->meta = meta;

	/*
	 * Hold the snapshot the blob was found under until the descriptor
	 * closes, as lo_open(INV_READ) does: this backend's xmin then keeps a
	 * delete committed by another session meanwhile from removing the
	 * shards (object_xact.c leaves them retired for cleanup_orphans), so
	 * the descriptor reads to the end of its transaction.
	 */
	d->snapshot = RegisterSnapshotOnOwner(ActiveSnapshotSet() ? GetActiveSnapshot()
										  : GetTransactionSnapshot(),
										  TopTransactionResourceOwner);
	PG_RETURN_INT32(fdno);
}

/* destor.blob_write(fd integer, data bytea) → integer: bytes written */
Datum
blob_fd_write(PG_FUNCTION_ARGS)
{
	int32		fdno = PG_GETARG_INT32(0);
	BlobFd	   *d = fd_get(fdno, 1);
	bytea	   *data = PG_GETARG_BYTEA_PP(1);
	size_t		len = VARSIZE_ANY_EXHDR(data);

	/* an ERROR in here, caught by a savepoint, breaks the descriptor */
	d->io_subid = GetCurrentSubTransactionId();
	object_writer_write(d->writer, VARDATA_ANY(data), len);
	d->pos += len;
	PG_RETURN_INT32((int32) len);
}

/* destor.blob_read(fd integer, length integer) → bytea */
Datum
blob_fd_read(PG_FUNCTION_ARGS)
{
	int32		fdno = PG_GETARG_INT32(0);
	int32		length = PG_GETARG_INT32(1);
	BlobFd	   *d = fd_get(fdno, 0);
	bytea	   *result;
	uint64		n;

	if (length < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("blob read length must not be negative"),
				 errdetail("The length given was %d.", length)));
	if (length > (int32) (MaxAllocSize - VARHDRSZ))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("blob read length %d is too large", length),
				 errhint("Read at most 1 GB at a time.")));

	/* like loread: at or past the end, what is there (maybe nothing) */
	n = d->pos >= d->meta->size ? 0 : Min((uint64) length, d->meta->size - d->pos);
	result = palloc(VARHDRSZ + n);
	SET_VARSIZE(result, VARHDRSZ + n);
	if (n > 0)
	{
		if (!fd_active(d))
			fd_make_room(d);
		d->last_used = ++fd_tick;
		d->io_subid = GetCurrentSubTransactionId();
		fd_read_at(d, d->pos, n, VARDATA(result));
		d->last_end = d->pos + n;
		d->pos += n;
	}
	PG_RETURN_BYTEA_P(result);
}

/*
 * destor.blob_seek(fd integer, "offset" bigint, whence integer) → bigint,
 * as lo_lseek64.  A blob being written grows only at its end: its
 * descriptor seeks only to where it is.
 */
Datum
blob_fd_seek(PG_FUNCTION_ARGS)
{
	int32		fdno = PG_GETARG_INT32(0);
	int64		offset = PG_GETARG_INT64(1);
	int32		whence = PG_GETARG_INT32(2);
	BlobFd	   *d = fd_get(fdno, -1);
	int64		base;
	int64		target;

	switch (whence)
	{
		case BLOB_SEEK_SET:
			base = 0;
			break;
		case BLOB_SEEK_CUR:
			base = (int64) d->pos;
			break;
		case BLOB_SEEK_END:
			base = d->writing ? (int64) d->pos : (int64) d->meta->size;
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid whence %d for blob_seek", whence),
					 errhint("Use 0 (from the start), 1 (from the current position) or 2 (from the end), as for lo_lseek64.")));
			base = 0;			/* keep the compiler quiet */
	}
	if (pg_add_s64_overflow(base, offset, &target))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid seek offset: " INT64_FORMAT, offset),
				 errdetail("The position would be past the largest blob offset.")));
	if (target < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid seek offset: " INT64_FORMAT, offset),
				 errdetail("The position would be before the start of the blob.")));
	if (d->writing && (uint64) target != d->pos)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("blob descriptor %d is writing: it cannot seek", fdno),
				 errdetail("A new blob is written from start to end; %llu bytes were written so far.",
						   (unsigned long long) d->pos)));
	d->pos = (uint64) target;
	PG_RETURN_INT64(target);
}

/* destor.blob_tell(fd integer) → bigint */
Datum
blob_fd_tell(PG_FUNCTION_ARGS)
{
	BlobFd	   *d = fd_get(PG_GETARG_INT32(0), -1);

	PG_RETURN_INT64((int64) d->pos);
}

/*
 * destor.blob_close(fd integer) → blob: for a write descriptor, finishes the
 * blob and returns its handle (the blob exists from here on in this
 * transaction, for others once it commits); for a read descriptor, returns
 * the handle it was opened on.
 */
Datum
blob_fd_close(PG_FUNCTION_ARGS)
{
	int32		fdno = PG_GETARG_INT32(0);
	BlobFd	   *d;
	BlobHandle *b = palloc(sizeof(BlobHandle));

	/* a broken write descriptor is released, storing nothing */
	if (fds != NULL && fdno >= fd_base && fdno < fd_base + nfds &&
		fds[fdno - fd_base]->state == BLOB_FD_BROKEN)
	{
		fds[fdno - fd_base]->state = BLOB_FD_CLOSED;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("blob descriptor %d was closed without storing a blob", fdno),
				 errdetail("A write through it had failed or was rolled back; what was written is discarded.")));
	}

	d = fd_get(fdno, -1);
	if (d->writing)
	{
		ObjectWriter *w = d->writer;
		ObjectMeta *meta;
		Oid			save_user;
		int			save_sec;

		/*
		 * The blob goes to the role that created the descriptor, as
		 * lo_creat's large object does, whoever closes it (SET ROLE in
		 * between, a SECURITY DEFINER function returning the descriptor);
		 * that role must still be allowed to write to the pool.
		 */
		GetUserIdAndSecContext(&save_user, &save_sec);
		SetUserIdAndSecContext(d->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		(void) pool_lookup(d->pool, true);

		/* finishing deletes the writer: an ERROR from here leaves it broken */
		d->writer = NULL;
		d->io_subid = GetCurrentSubTransactionId();
		d->state = BLOB_FD_BROKEN;
		meta = blob_store(w);
		SetUserIdAndSecContext(save_user, save_sec);
		memcpy(b->id, meta->id, CODEC_OBJID_LEN);
	}
	else
	{
		fd_release_buffers(d);
		fd_release_snapshot(d);
		memcpy(b->id, d->id, CODEC_OBJID_LEN);
	}
	d->state = BLOB_FD_CLOSED;
	MemoryContextDelete(d->cxt);
	d->cxt = NULL;
	d->reader_cxt = NULL;
	d->meta = NULL;
	d->buf = NULL;
	PG_RETURN_POINTER(b);
}
