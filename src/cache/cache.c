/*
 * cache.c — the shared-memory cache of decrypted blocks.
 *
 * Allocated at startup when destor is in shared_preload_libraries, sized by
 * destor.cache_size (0 turns it off).  A partitioned hash table maps
 * (object id, block) to a slot; each partition has its own LWLock, so
 * backends do not queue on one lock.  Slots are recycled by clock sweep.
 * A reader pins a slot while it holds the partition lock and copies the
 * page out right after (nothing in between can fail, so a pin can never be
 * left behind); an evictor claims a slot only when nobody pins it and
 * unmaps it under the exclusive partition lock, so a page is never
 * overwritten while it is being read.  Plaintext stays in shared memory,
 * which is never written to disk by PostgreSQL.
 */
#include "postgres.h"

#include <sys/mman.h>
#include <unistd.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/wait_event.h"

#include "destor/cache.h"

#define CACHE_PARTITIONS	16
/* derived entries (see cache.h) live at block numbers with this bit set */
#define SPAN_BIT			(UINT64CONST(1) << 63)
#define SPAN_PAGE_BITS		12
/* how far an insert of derived data looks for room before giving up */
#define DERIVED_SWEEP		256
#define CACHE_MAX_USAGE		5

/*
 * destor.cache_size: -1 (the default) sizes the cache like shared_buffers,
 * with 128MB at least.  Why: shared_buffers is the operator's statement of
 * how much hot data the server should keep in memory, and a destor table
 * read as often as a heap table deserves as much room; a fixed 128MB made a
 * repeated scan of a table that fits in shared_buffers slower than the
 * heap's as soon as its pages and decompressed chunks outgrew 128MB (issue
 * 11: 1.33x the heap's time, 0.79x with 512MB).  The cost is shared memory
 * of the same size again; set a size (or 0) to choose otherwise.
 */
#define CACHE_AUTO_MIN_KB	(128 * 1024)
int			destor_cache_size_kb = -1;

/* The cache's size in kB: the setting, or for -1 what it stands for. */
static int64
cache_size_kb(void)
{
	if (destor_cache_size_kb >= 0)
		return destor_cache_size_kb;
	return Max((int64) CACHE_AUTO_MIN_KB, (int64) NBuffers * (BLCKSZ / 1024));
}

typedef struct CacheKey
{
	uint8		id[CODEC_OBJID_LEN];
	uint64		blockno;
} CacheKey;

typedef struct CacheEntry
{
	CacheKey	key;
	int			slot;
} CacheEntry;

typedef struct CacheSlot
{
	CacheKey	key;			/* meaningful when valid or busy */
	pg_atomic_uint32 pins;
	pg_atomic_uint32 usage;
	uint32		len;
	bool		valid;			/* changed under the key's partition lock */
	bool		busy;			/* being fetched by owner: others wait */
	int			owner;			/* pid of the fetching backend */
	ConditionVariable cv;		/* broadcast when busy ends */
} CacheSlot;

typedef struct CacheCtl
{
	int			nslots;
	LWLockPadded *locks;
	pg_atomic_uint64 hand;
	pg_atomic_uint64 hits;
	pg_atomic_uint64 misses;
	pg_atomic_uint64 evictions;
	pg_atomic_uint64 bytes_from_cache;
	pg_atomic_uint64 bytes_from_providers;
	pg_atomic_uint64 used;
	pg_atomic_uint32 valid_slots;	/* slots holding a page */
	pg_atomic_uint32 derived_slots; /* of them, pages of derived entries */
} CacheCtl;

static CacheCtl *ctl = NULL;

/* this backend's reservations of pages it is fetching (see below) */
#define MAX_RESERVED 1024
static int	reserved[MAX_RESERVED];
static int	nreserved = 0;
static bool exit_hook_set = false;

static bool cache_fill_reserved(struct CacheKey *key, uint32 hash, LWLock *lock,
								const char *data, uint32 len);
static CacheSlot *slots = NULL;
static char *pages = NULL;
static HTAB *map = NULL;
static bool notice_given = false;

static int
cache_nslots(void)
{
	return (int) Min(cache_size_kb() * 1024 / CACHE_PAGE_SIZE, INT_MAX / 2);
}

void
cache_define_gucs(void)
{
	DefineCustomIntVariable("destor.cache_size",
							"Shared memory for destor's cache of decrypted pages (0 turns it off).",
							"-1 (the default): as large as shared_buffers, at least 128MB.  Takes effect at server start; destor must be in shared_preload_libraries.",
							&destor_cache_size_kb, -1, -1, INT_MAX / 2,
							PGC_POSTMASTER, GUC_UNIT_KB, NULL, NULL, NULL);
}

static Size
cache_shmem_size(void)
{
	int			n = cache_nslots();
	Size		size;

	size = MAXALIGN(sizeof(CacheCtl));
	size = add_size(size, MAXALIGN(mul_size(n, sizeof(CacheSlot))));
	size = add_size(size, mul_size(n, CACHE_PAGE_SIZE));
	size = add_size(size, PG_CACHE_LINE_SIZE);
	size = add_size(size, hash_estimate_size(n + CACHE_PARTITIONS, sizeof(CacheEntry)));
	return size;
}

void
cache_shmem_request(void)
{
	if (cache_nslots() == 0)
		return;
	RequestAddinShmemSpace(cache_shmem_size());
	RequestNamedLWLockTranche("destor_cache", CACHE_PARTITIONS);
}

void
cache_shmem_startup(void)
{
	int			n = cache_nslots();
	bool		found;
	HASHCTL		info;
	char	   *p;

	if (n == 0)
		return;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	p = ShmemInitStruct("destor cache",
						MAXALIGN(sizeof(CacheCtl)) + MAXALIGN(mul_size(n, sizeof(CacheSlot))) +
						mul_size(n, CACHE_PAGE_SIZE) + PG_CACHE_LINE_SIZE, &found);
	ctl = (CacheCtl *) p;
	slots = (CacheSlot *) (p + MAXALIGN(sizeof(CacheCtl)));
	pages = (char *) TYPEALIGN(PG_CACHE_LINE_SIZE,
							   p + MAXALIGN(sizeof(CacheCtl)) + MAXALIGN(mul_size(n, sizeof(CacheSlot))));
	if (!found)
	{
		ctl->nslots = n;
		ctl->locks = GetNamedLWLockTranche("destor_cache");
		pg_atomic_init_u64(&ctl->hand, 0);
		pg_atomic_init_u64(&ctl->hits, 0);
		pg_atomic_init_u64(&ctl->misses, 0);
		pg_atomic_init_u64(&ctl->evictions, 0);
		pg_atomic_init_u64(&ctl->bytes_from_cache, 0);
		pg_atomic_init_u64(&ctl->bytes_from_providers, 0);
		pg_atomic_init_u64(&ctl->used, 0);
		pg_atomic_init_u32(&ctl->valid_slots, 0);
		pg_atomic_init_u32(&ctl->derived_slots, 0);
		for (int i = 0; i < n; i++)
		{
			memset(&slots[i].key, 0, sizeof(CacheKey));
			pg_atomic_init_u32(&slots[i].pins, 0);
			pg_atomic_init_u32(&slots[i].usage, 0);
			slots[i].len = 0;
			slots[i].valid = false;
			slots[i].busy = false;
			slots[i].owner = 0;
			ConditionVariableInit(&slots[i].cv);
		}
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(CacheKey);
	info.entrysize = sizeof(CacheEntry);
	info.num_partitions = CACHE_PARTITIONS;
	map = ShmemInitHash("destor cache map", n + CACHE_PARTITIONS, n + CACHE_PARTITIONS, &info,
						HASH_ELEM | HASH_BLOBS | HASH_PARTITION);
	LWLockRelease(AddinShmemInitLock);
}

bool
cache_enabled(void)
{
	if (ctl != NULL)
		return true;
	if (!notice_given && destor_cache_size_kb != 0)
	{
		notice_given = true;
		ereport(NOTICE,
				(errmsg("destor has no shared cache in this server"),
				 errhint("Add destor to shared_preload_libraries and restart to cache hot pages in shared memory.")));
	}
	return false;
}

static LWLock *
partition_lock(uint32 hash)
{
	return &ctl->locks[hash % CACHE_PARTITIONS].lock;
}

static void
make_key(CacheKey *key, const uint8 id[CODEC_OBJID_LEN], uint64 blockno)
{
	memset(key, 0, sizeof(CacheKey));
	memcpy(key->id, id, CODEC_OBJID_LEN);
	key->blockno = blockno;
}

/* The key of a page, its hash, and the lock of its partition. */
static LWLock *
locate(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, CacheKey *key, uint32 *hash)
{
	make_key(key, id, blockno);
	*hash = get_hash_value(map, key);
	return partition_lock(*hash);
}

static bool cache_lookup_counted(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, uint32 from,
								 uint32 to, char *dst, bool count_miss);

bool
cache_lookup(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, uint32 from, uint32 to, char *dst)
{
	return cache_lookup_counted(id, blockno, from, to, dst, true);
}

/*
 * cache_probe — cache_lookup for a caller that reads the block another way
 * on a miss (which counts the miss then): a hit counts, a miss does not.
 */
bool
cache_probe(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, uint32 from, uint32 to, char *dst)
{
	return cache_lookup_counted(id, blockno, from, to, dst, false);
}

static bool
cache_lookup_counted(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, uint32 from, uint32 to,
					 char *dst, bool count_miss)
{
	CacheKey	key;
	uint32		hash;
	LWLock	   *lock;
	CacheEntry *e;
	CacheSlot  *s = NULL;
	int			slot = -1;

	if (ctl == NULL)
		return false;
	lock = locate(id, blockno, &key, &hash);
	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(map, &key, hash, HASH_FIND, NULL);
	if (e && slots[e->slot].valid && slots[e->slot].len >= to)
	{
		slot = e->slot;
		s = &slots[slot];
		pg_atomic_fetch_add_u32(&s->pins, 1);
	}
	LWLockRelease(lock);
	if (s == NULL)
	{
		if (count_miss)
			pg_atomic_fetch_add_u64(&ctl->misses, 1);
		return false;
	}
	/* pinned: no evictor can take the slot; nothing here can fail */
	memcpy(dst, pages + (Size) slot * CACHE_PAGE_SIZE + from, to - from);
	if (pg_atomic_read_u32(&s->usage) < CACHE_MAX_USAGE)
		pg_atomic_fetch_add_u32(&s->usage, 1);
	pg_atomic_fetch_sub_u32(&s->pins, 1);
	pg_atomic_fetch_add_u64(&ctl->hits, 1);
	pg_atomic_fetch_add_u64(&ctl->bytes_from_cache, to - from);
	return true;
}

bool
cache_contains(const uint8 id[CODEC_OBJID_LEN], uint64 blockno)
{
	CacheKey	key;
	uint32		hash;
	LWLock	   *lock;
	bool		found;

	if (ctl == NULL)
		return false;
	lock = locate(id, blockno, &key, &hash);
	LWLockAcquire(lock, LW_SHARED);
	{
		CacheEntry *e = hash_search_with_hash_value(map, &key, hash, HASH_FIND, NULL);

		found = e != NULL && slots[e->slot].valid;	/* pages being fetched are not in yet */
	}
	LWLockRelease(lock);
	return found;
}

static inline bool
is_derived(const CacheKey *key)
{
	return (key->blockno & SPAN_BIT) != 0;
}

/* A slot now holds a page (the caller holds its partition lock). */
static void
slot_filled(CacheSlot *s)
{
	s->valid = true;
	pg_atomic_fetch_add_u32(&ctl->valid_slots, 1);
	if (is_derived(&s->key))
		pg_atomic_fetch_add_u32(&ctl->derived_slots, 1);
}

/* A slot's page is gone (the caller holds its partition lock). */
static void
slot_emptied(CacheSlot *s)
{
	s->valid = false;
	pg_atomic_fetch_sub_u32(&ctl->valid_slots, 1);
	if (is_derived(&s->key))
		pg_atomic_fetch_sub_u32(&ctl->derived_slots, 1);
}

/*
 * Claim a slot nobody uses, unmapping its old page; -1 if none found.
 *
 * Derived entries (decompressed chunks) only save CPU: they may take free
 * slots and each other's, never a real page, so they can never make a scan
 * go back to the providers — when the cache is too small for both, the
 * pages win.  Their search is short, and it ages only derived slots.
 */
static int
claim_slot(bool derived)
{
	int			limit = derived ? Min(DERIVED_SWEEP, ctl->nslots) : 2 * ctl->nslots;

	if (derived && pg_atomic_read_u32(&ctl->valid_slots) >= (uint32) ctl->nslots &&
		pg_atomic_read_u32(&ctl->derived_slots) == 0)
		return -1;				/* full of real pages: no room */
	for (int tries = 0; tries < limit; tries++)
	{
		int			idx = (int) (pg_atomic_fetch_add_u64(&ctl->hand, 1) % ctl->nslots);
		CacheSlot  *s = &slots[idx];
		uint32		usage = pg_atomic_read_u32(&s->usage);
		uint32		expected = 0;

		if (pg_atomic_read_u32(&s->pins) != 0)
			continue;
		/* unlocked look at the key: only decides whom to age; checked again below */
		if (derived && s->valid && !is_derived(&s->key))
			continue;
		if (usage > 0)
		{
			/* second chance */
			pg_atomic_compare_exchange_u32(&s->usage, &usage, usage - 1);
			continue;
		}
		if (!pg_atomic_compare_exchange_u32(&s->pins, &expected, 1))
			continue;
		/* claimed: pins == 1 is ours; only a reader under the old key's lock can add to it */
		if (s->valid)
		{
			uint32		oldhash = get_hash_value(map, &s->key);
			LWLock	   *oldlock = partition_lock(oldhash);

			LWLockAcquire(oldlock, LW_EXCLUSIVE);
			if (!s->valid)
			{
				/* emptied meanwhile (destor.cache_reset()): free, and ours */
				LWLockRelease(oldlock);
				return idx;
			}
			if (pg_atomic_read_u32(&s->pins) != 1 || (derived && !is_derived(&s->key)))
			{
				/* a reader got to it first, or it holds a real page now: leave it */
				LWLockRelease(oldlock);
				pg_atomic_fetch_sub_u32(&s->pins, 1);
				continue;
			}
			hash_search_with_hash_value(map, &s->key, oldhash, HASH_REMOVE, NULL);
			slot_emptied(s);
			pg_atomic_fetch_sub_u64(&ctl->used, s->len);
			pg_atomic_fetch_add_u64(&ctl->evictions, 1);
			LWLockRelease(oldlock);
		}
		return idx;
	}
	return -1;
}

/*
 * Map a slot's pages into this backend before writing them.  Shared memory
 * is mapped lazily, page by page, on first touch in each backend: filling a
 * 64 kB slot a backend never touched took 16 page faults, which on a
 * virtual machine cost more than the copy (a 4 MB object written through
 * the cache: ~50 ms).  One madvise maps them at once; where the kernel
 * lacks MADV_POPULATE_WRITE (before Linux 5.14) the faults happen as before.
 */
static void
slot_populate(int idx, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	static uintptr_t pagesize = 0;
	uintptr_t	start = (uintptr_t) (pages + (Size) idx * CACHE_PAGE_SIZE);
	uintptr_t	end = start + len;

	if (pagesize == 0)
		pagesize = (uintptr_t) sysconf(_SC_PAGESIZE);
	start &= ~(pagesize - 1);
	(void) madvise((void *) start, end - start, MADV_POPULATE_WRITE);
#endif
}

void
cache_insert(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, const char *data, uint32 len)
{
	CacheKey	key;
	uint32		hash;
	LWLock	   *lock;
	CacheEntry *e;
	bool		found;
	int			idx;

	if (ctl == NULL || len > CACHE_PAGE_SIZE)
		return;
	lock = locate(id, blockno, &key, &hash);
	if (nreserved > 0 && cache_fill_reserved(&key, hash, lock, data, len))
		return;
	if (cache_contains(id, blockno))
		return;
	idx = claim_slot(is_derived(&key));
	if (idx < 0)
		return;					/* everything pinned right now: skip */
	slot_populate(idx, len);
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search_with_hash_value(map, &key, hash, HASH_ENTER_NULL, &found);
	if (e == NULL || found)
	{
		/* someone cached it meanwhile (or the map is full): give the slot back */
		LWLockRelease(lock);
		pg_atomic_fetch_sub_u32(&slots[idx].pins, 1);
		return;
	}
	e->slot = idx;
	slots[idx].key = key;
	memcpy(pages + (Size) idx * CACHE_PAGE_SIZE, data, len);
	slots[idx].len = len;
	slot_filled(&slots[idx]);
	pg_atomic_write_u32(&slots[idx].usage, 1);
	pg_atomic_fetch_add_u64(&ctl->used, len);
	LWLockRelease(lock);
	pg_atomic_fetch_sub_u32(&slots[idx].pins, 1);
}

/* ---------------------------------------------------------------------------
 * Derived entries (see cache.h): page i of the entry tagged t of an object
 * is cached as block  2^63 | t << 12 | i,  a range no real block reaches.
 * ------------------------------------------------------------------------- */

static uint64
span_block(uint64 tag, uint32 page)
{
	Assert(tag <= CACHE_SPAN_MAX_TAG && page < (1 << SPAN_PAGE_BITS));
	return SPAN_BIT | (tag << SPAN_PAGE_BITS) | page;
}

/*
 * The largest entry worth caching: at most 1/8 of the cache, so that one
 * huge chunk does not push out everything else.
 */
uint32
cache_span_max_bytes(void)
{
	uint64		limit;

	if (ctl == NULL)
		return 0;
	limit = Min((uint64) ctl->nslots / 8, (uint64) (1 << SPAN_PAGE_BITS)) * CACHE_PAGE_SIZE;
	return (uint32) Min(limit, (uint64) PG_UINT32_MAX);
}

bool
cache_lookup_span(const uint8 id[CODEC_OBJID_LEN], uint64 tag, char *dst, uint32 len)
{
	if (ctl == NULL || len < CACHE_SPAN_MIN_BYTES || len > cache_span_max_bytes() ||
		tag > CACHE_SPAN_MAX_TAG)
		return false;
	for (uint32 off = 0, page = 0; off < len; off += CACHE_PAGE_SIZE, page++)
	{
		uint32		n = Min(len - off, CACHE_PAGE_SIZE);

		if (!cache_lookup(id, span_block(tag, page), 0, n, dst + off))
			return false;
	}
	return true;
}

/*
 * Bytes [from, from + len) of a span of span_len bytes cached whole by
 * cache_insert_span: only the pages they lie on are copied (a point look-up
 * needs one value of a column chunk, not the chunk).
 */
bool
cache_lookup_span_part(const uint8 id[CODEC_OBJID_LEN], uint64 tag, uint32 span_len, uint32 from,
					   uint32 len, char *dst)
{
	uint32		end = from + len;

	if (ctl == NULL || span_len < CACHE_SPAN_MIN_BYTES || span_len > cache_span_max_bytes() ||
		tag > CACHE_SPAN_MAX_TAG || len == 0 || end > span_len || end < from)
		return false;
	while (from < end)
	{
		uint32		page = from / CACHE_PAGE_SIZE;
		uint32		in = from % CACHE_PAGE_SIZE;
		uint32		n = Min(end - from, CACHE_PAGE_SIZE - in);

		if (!cache_lookup(id, span_block(tag, page), in, in + n, dst))
			return false;
		dst += n;
		from += n;
	}
	return true;
}

bool
cache_contains_span(const uint8 id[CODEC_OBJID_LEN], uint64 tag)
{
	if (ctl == NULL || tag > CACHE_SPAN_MAX_TAG)
		return false;
	return cache_contains(id, span_block(tag, 0));
}

void
cache_insert_span(const uint8 id[CODEC_OBJID_LEN], uint64 tag, const char *data, uint32 len)
{
	if (ctl == NULL || len < CACHE_SPAN_MIN_BYTES || len > cache_span_max_bytes() ||
		tag > CACHE_SPAN_MAX_TAG)
		return;
	/* last page first: a reader that finds page 0 then usually finds the rest */
	for (int64 page = (len - 1) / CACHE_PAGE_SIZE; page >= 0; page--)
	{
		uint32		off = (uint32) page * CACHE_PAGE_SIZE;

		cache_insert(id, span_block(tag, (uint32) page), data + off, Min(len - off, CACHE_PAGE_SIZE));
	}
}

/* ---------------------------------------------------------------------------
 * In-flight pages: a backend about to fetch a missing page reserves it;
 * others that want the same page wait for it instead of fetching it too.
 * A reservation ends when the page is inserted, or is given up (after an
 * ERROR: by the transaction callbacks; at exit: by a shmem exit hook).
 * A backend never waits while it holds reservations, so two cannot wait
 * for each other.
 * ------------------------------------------------------------------------- */

static void
cache_exit_hook(int code, Datum arg)
{
	cache_release_reservations();
}

CacheProbe
cache_read(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, uint32 from, uint32 to, char *dst)
{
	CacheKey	key;
	uint32		hash;
	LWLock	   *lock;
	CacheEntry *e;
	bool		busy = false;

	if (ctl == NULL)
		return CACHE_MISS;
	if (cache_lookup(id, blockno, from, to, dst))
		return CACHE_HIT;
	lock = locate(id, blockno, &key, &hash);
	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(map, &key, hash, HASH_FIND, NULL);
	if (e && slots[e->slot].busy && slots[e->slot].owner != MyProcPid)
		busy = true;
	LWLockRelease(lock);
	return busy ? CACHE_BUSY : CACHE_MISS;
}

/* Is another backend fetching this page right now? */
bool
cache_busy(const uint8 id[CODEC_OBJID_LEN], uint64 blockno)
{
	CacheKey	key;
	uint32		hash;
	LWLock	   *lock;
	CacheEntry *e;
	bool		busy;

	if (ctl == NULL)
		return false;
	lock = locate(id, blockno, &key, &hash);
	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(map, &key, hash, HASH_FIND, NULL);
	busy = e && slots[e->slot].busy && slots[e->slot].owner != MyProcPid;
	LWLockRelease(lock);
	return busy;
}

/* Wait (interruptibly, at most a few seconds) until nobody fetches the page. */
void
cache_wait(const uint8 id[CODEC_OBJID_LEN], uint64 blockno)
{
	CacheKey	key;
	uint32		hash;
	LWLock	   *lock;

	/* never wait while holding reservations: two backends could wait for each other */
	if (ctl == NULL || nreserved > 0)
		return;
	lock = locate(id, blockno, &key, &hash);
	for (int rounds = 0; rounds < 100; rounds++)
	{
		CacheEntry *e;
		CacheSlot  *s = NULL;

		LWLockAcquire(lock, LW_SHARED);
		e = hash_search_with_hash_value(map, &key, hash, HASH_FIND, NULL);
		if (e && slots[e->slot].busy)
			s = &slots[e->slot];
		LWLockRelease(lock);
		if (s == NULL)
			return;
		ConditionVariablePrepareToSleep(&s->cv);
		(void) ConditionVariableTimedSleep(&s->cv, 100, PG_WAIT_EXTENSION);
		ConditionVariableCancelSleep();
	}
}

/* Reserve a missing page for this backend to fetch; false if someone has it. */
bool
cache_reserve(const uint8 id[CODEC_OBJID_LEN], uint64 blockno)
{
	CacheKey	key;
	uint32		hash;
	LWLock	   *lock;
	CacheEntry *e;
	bool		found;
	int			idx;

	if (ctl == NULL || nreserved == MAX_RESERVED)
		return false;
	if (!exit_hook_set)
	{
		before_shmem_exit(cache_exit_hook, (Datum) 0);
		exit_hook_set = true;
	}
	if (cache_contains(id, blockno))
		return false;
	idx = claim_slot(false);
	if (idx < 0)
		return false;
	lock = locate(id, blockno, &key, &hash);
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search_with_hash_value(map, &key, hash, HASH_ENTER_NULL, &found);
	if (e == NULL || found)
	{
		LWLockRelease(lock);
		pg_atomic_fetch_sub_u32(&slots[idx].pins, 1);
		return false;
	}
	e->slot = idx;
	slots[idx].key = key;
	slots[idx].valid = false;
	slots[idx].busy = true;
	slots[idx].owner = MyProcPid;
	reserved[nreserved++] = idx;	/* the claim's pin stays until the end */
	LWLockRelease(lock);
	return true;
}

/* Fill a page this backend reserved; false if it holds no such reservation. */
static bool
cache_fill_reserved(CacheKey *key, uint32 hash, LWLock *lock, const char *data, uint32 len)
{
	CacheEntry *e;
	int			idx = -1;

	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search_with_hash_value(map, key, hash, HASH_FIND, NULL);
	if (e && slots[e->slot].busy && slots[e->slot].owner == MyProcPid)
	{
		idx = e->slot;
		memcpy(pages + (Size) idx * CACHE_PAGE_SIZE, data, len);
		slots[idx].len = len;
		slot_filled(&slots[idx]);
		slots[idx].busy = false;
		pg_atomic_write_u32(&slots[idx].usage, 1);
		pg_atomic_fetch_add_u64(&ctl->used, len);
	}
	LWLockRelease(lock);
	if (idx < 0)
		return false;
	for (int i = 0; i < nreserved; i++)
		if (reserved[i] == idx)
		{
			reserved[i] = reserved[--nreserved];
			break;
		}
	pg_atomic_fetch_sub_u32(&slots[idx].pins, 1);
	ConditionVariableBroadcast(&slots[idx].cv);
	return true;
}

/* Give up every reservation still held (not fetched after all, or ERROR). */
void
cache_release_reservations(void)
{
	while (nreserved > 0)
	{
		int			idx = reserved[--nreserved];
		CacheSlot  *s = &slots[idx];
		uint32		hash = get_hash_value(map, &s->key);
		LWLock	   *lock = partition_lock(hash);

		LWLockAcquire(lock, LW_EXCLUSIVE);
		if (s->busy && s->owner == MyProcPid)
		{
			hash_search_with_hash_value(map, &s->key, hash, HASH_REMOVE, NULL);
			s->busy = false;
			s->valid = false;
		}
		LWLockRelease(lock);
		pg_atomic_fetch_sub_u32(&s->pins, 1);
		ConditionVariableBroadcast(&s->cv);
	}
}

void
cache_count_misses(uint64 n)
{
	if (ctl != NULL)
		pg_atomic_fetch_add_u64(&ctl->misses, n);
}

void
cache_count_provider_bytes(uint64 bytes)
{
	if (ctl != NULL)
		pg_atomic_fetch_add_u64(&ctl->bytes_from_providers, bytes);
}

PG_FUNCTION_INFO_V1(destor_cache_stats);

Datum
destor_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {0};
	int64		pinned = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (ctl == NULL)
	{
		for (int i = 0; i < 8; i++)
			values[i] = Int64GetDatum(0);
	}
	else
	{
		for (int i = 0; i < ctl->nslots; i++)
			pinned += pg_atomic_read_u32(&slots[i].pins) > 0;
		values[0] = Int64GetDatum((int64) ctl->nslots * CACHE_PAGE_SIZE);
		values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&ctl->used));
		values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&ctl->hits));
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&ctl->misses));
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&ctl->evictions));
		values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&ctl->bytes_from_cache));
		values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&ctl->bytes_from_providers));
		values[7] = Int64GetDatum(pinned);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

PG_FUNCTION_INFO_V1(destor_cache_reset);

/* Empty the cache and zero its counters (superuser; see the install script). */
Datum
destor_cache_reset(PG_FUNCTION_ARGS)
{
	if (ctl == NULL)
		PG_RETURN_VOID();
	for (int p = 0; p < CACHE_PARTITIONS; p++)
		LWLockAcquire(&ctl->locks[p].lock, LW_EXCLUSIVE);
	for (int i = 0; i < ctl->nslots; i++)
	{
		CacheSlot  *s = &slots[i];

		/* a reader holding a pin still copies valid bytes: they are not reused until unpinned;
		 * pages being fetched stay (their owner fills or releases them) */
		if (s->valid && !s->busy)
		{
			hash_search(map, &s->key, HASH_REMOVE, NULL);
			slot_emptied(s);
		}
		pg_atomic_write_u32(&s->usage, 0);
	}
	pg_atomic_write_u64(&ctl->used, 0);
	pg_atomic_write_u64(&ctl->hits, 0);
	pg_atomic_write_u64(&ctl->misses, 0);
	pg_atomic_write_u64(&ctl->evictions, 0);
	pg_atomic_write_u64(&ctl->bytes_from_cache, 0);
	pg_atomic_write_u64(&ctl->bytes_from_providers, 0);
	for (int p = CACHE_PARTITIONS - 1; p >= 0; p--)
		LWLockRelease(&ctl->locks[p].lock);
	PG_RETURN_VOID();
}
