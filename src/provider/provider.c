/*
 * provider.c — provider lookup, option validation and batch dispatch.
 *
 * A provider is a foreign server of the destor_provider wrapper.  Its
 * options are validated here, in one place, against a static table (as
 * postgres_fdw's option.c does).  Credentials live in user mappings and are
 * read only at use time; they never appear in messages.
 */
#include "postgres.h"

#include <math.h>
#include <sys/mman.h>

#include "access/reloptions.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/uuid.h"
#include "utils/guc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "destor/provider.h"

int			destor_connect_timeout_ms = 5000;
int			destor_request_timeout_ms = 60000;
int			destor_max_retries = 4;
int			destor_max_concurrent_requests = 32;
int			destor_provider_down_ms = 10000;

/*
 * The two timeouts are superuser settings (GRANT SET ON PARAMETER hands
 * them to a role): a request that times out counts against its provider in
 * shared memory, and two in a row mark it down for every session.  Set to
 * 100 ms by any role with USAGE on a pool, they let that role send every
 * other session's reads around a healthy provider at will (found by the
 * hostile-roles sweep, TAP 179).
 */
void
provider_define_gucs(void)
{
	DefineCustomIntVariable("destor.connect_timeout",
							"Time allowed to connect to a provider.",
							"A connection that times out counts against the provider for every session.",
							&destor_connect_timeout_ms, 5000, 100, 600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("destor.request_timeout",
							"Time without progress after which a provider request is abandoned.",
							"A request that times out counts against the provider for every session.",
							&destor_request_timeout_ms, 60000, 100, 3600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("destor.max_retries",
							"Retries of a provider request after a transient failure.",
							NULL, &destor_max_retries, 4, 0, 100,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("destor.max_concurrent_requests",
							"Provider transfers a backend runs at the same time.",
							NULL, &destor_max_concurrent_requests, 32, 1, 1024,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("destor.provider_down_interval",
							"How long a provider that failed or was found slow is avoided by reads that have other shards to use.",
							NULL, &destor_provider_down_ms, 10000, 0, 3600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------- */
typedef struct ProviderOption
{
	const char *name;
	Oid			context;		/* ForeignServerRelationId or UserMappingRelationId */
} ProviderOption;

static const ProviderOption provider_options[] = {
	{"type", ForeignServerRelationId},
	{"path", ForeignServerRelationId},
	{"endpoint", ForeignServerRelationId},
	{"bucket", ForeignServerRelationId},
	{"region", ForeignServerRelationId},
	{"addressing", ForeignServerRelationId},
	{"prefix", ForeignServerRelationId},
	{"geo", ForeignServerRelationId},
	{"operator", ForeignServerRelationId},
	{"cost_per_gb_month", ForeignServerRelationId},
	{"cost_per_request", ForeignServerRelationId},
	{"egress_per_gb", ForeignServerRelationId},
	{"access_key_id", UserMappingRelationId},
	{"secret_access_key", UserMappingRelationId},
	{"session_token", UserMappingRelationId},
	{"instance", ForeignDataWrapperRelationId},
	{NULL, InvalidOid}
};

static bool
provider_option_is_valid(const char *name, Oid context)
{
	for (const ProviderOption *o = provider_options; o->name; o++)
		if (o->context == context && strcmp(o->name, name) == 0)
			return true;
	return false;
}

static char *
provider_valid_option_list(Oid context)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const ProviderOption *o = provider_options; o->name; o++)
		if (o->context == context)
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", o->name);
	return buf.data;
}

void
provider_validate_options(List *options, Oid catalog)
{
	ListCell   *lc;
	char	   *type = NULL;
	char	   *path = NULL;
	char	   *endpoint = NULL;
	char	   *bucket = NULL;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		char	   *val = defGetString(def);

		if (!provider_option_is_valid(def->defname, catalog))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for a destor provider", def->defname),
					 errhint("Valid options in this context are: %s.",
							 provider_valid_option_list(catalog))));

		if (strcmp(def->defname, "instance") == 0)
			(void) DirectFunctionCall1(uuid_in, CStringGetDatum(val));	/* a uuid */
		else if (strcmp(def->defname, "type") == 0)
		{
			if (strcmp(val, "file") != 0 && strcmp(val, "s3") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid provider type \"%s\"", val),
						 errhint("Valid provider types are: file, s3.")));
			type = val;
		}
		else if (strcmp(def->defname, "path") == 0)
		{
			if (!is_absolute_path(val))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("provider path \"%s\" is not an absolute path", val),
						 errhint("Give the full path of a directory the server can write to.")));
			path = val;
		}
		else if (strcmp(def->defname, "endpoint") == 0)
		{
			if (strncmp(val, "http://", 7) != 0 && strncmp(val, "https://", 8) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid endpoint \"%s\"", val),
						 errdetail("An endpoint is a URL such as https://s3.example.com or http://127.0.0.1:9000."),
						 errhint("Start the endpoint with http:// or https://.")));
			endpoint = val;
		}
		else if (strcmp(def->defname, "bucket") == 0)
		{
			if (val[0] == '\0' || strchr(val, '/') != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid bucket name \"%s\"", val),
						 errhint("A bucket name is not empty and contains no \"/\".")));
			bucket = val;
		}
		else if (strcmp(def->defname, "addressing") == 0)
		{
			if (strcmp(val, "path") != 0 && strcmp(val, "virtual") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid addressing \"%s\"", val),
						 errhint("Valid values are: path, virtual.")));
		}
		else if (strcmp(def->defname, "prefix") == 0)
		{
			if (val[0] == '/' || strstr(val, "..") != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid prefix \"%s\"", val),
						 errhint("A prefix does not start with \"/\" and contains no \"..\".")));
		}
		else if (strcmp(def->defname, "geo") == 0 || strcmp(def->defname, "operator") == 0)
		{
			/* placement rules compare these tags; a comma would split them */
			if (val[0] == '\0' || strchr(val, ',') != NULL ||
				isspace((unsigned char) val[0]) || isspace((unsigned char) val[strlen(val) - 1]))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"", def->defname, val),
						 errdetail("Pools' placement rules compare these tags as whole words."),
						 errhint("Give one non-empty tag without commas or surrounding spaces, such as 'EU' or 'acme'.")));
		}
		else if (strcmp(def->defname, "cost_per_gb_month") == 0 ||
				 strcmp(def->defname, "cost_per_request") == 0 ||
				 strcmp(def->defname, "egress_per_gb") == 0)
		{
			double		cost;

			/* prices: storage_report and placement_cost multiply by them */
			if (!parse_real(val, &cost, 0, NULL) || cost < 0 || isnan(cost) || isinf(cost))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"", def->defname, val),
						 errdetail("A price is a non-negative finite number, in your currency."),
						 errhint("Give a non-negative number, such as %s.",
								 strcmp(def->defname, "cost_per_request") == 0 ? "0.0000004" :
								 strcmp(def->defname, "egress_per_gb") == 0 ? "0.01" : "0.004")));
		}
	}

	if (catalog != ForeignServerRelationId)
		return;

	if (type == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("a destor provider needs the option \"type\""),
				 errhint("Use OPTIONS (type 'file', path '...') or OPTIONS (type 's3', endpoint '...', bucket '...').")));

	if (strcmp(type, "file") == 0)
	{
		if (path == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("a file provider needs the option \"path\""),
					 errhint("Give the absolute path of the directory that holds the provider's objects.")));
		if (endpoint || bucket)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("options \"endpoint\" and \"bucket\" are for s3 providers"),
					 errhint("Remove them, or use type 's3'.")));

		/* A file provider writes server-side files, as COPY TO a file does. */
		if (!has_privs_of_role(GetUserId(), ROLE_PG_WRITE_SERVER_FILES))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to create a file provider"),
					 errdetail("File providers write files on the database server."),
					 errhint("Only superusers and members of pg_write_server_files may declare file providers.")));
	}
	else
	{
		if (endpoint == NULL || bucket == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("an s3 provider needs the options \"endpoint\" and \"bucket\""),
					 errhint("For example: OPTIONS (type 's3', endpoint 'https://gateway.example.com', bucket 'backup').")));
		if (path)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("option \"path\" is for file providers"),
					 errhint("Remove it, or use type 'file'.")));
	}
}

/* ---------------------------------------------------------------------------
 * Lookup
 * ------------------------------------------------------------------------- */
static void
provider_apply_options(Provider *p, List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		char	   *val = defGetString(def);

		if (strcmp(def->defname, "type") == 0)
			p->type = strcmp(val, "s3") == 0 ? PROVIDER_S3 : PROVIDER_FILE;
		else if (strcmp(def->defname, "path") == 0)
			p->path = pstrdup(val);
		else if (strcmp(def->defname, "endpoint") == 0)
		{
			int			len = strlen(val);

			while (len > 0 && val[len - 1] == '/')
				len--;
			p->endpoint = pnstrdup(val, len);
		}
		else if (strcmp(def->defname, "bucket") == 0)
			p->bucket = pstrdup(val);
		else if (strcmp(def->defname, "region") == 0)
			p->region = pstrdup(val);
		else if (strcmp(def->defname, "addressing") == 0)
			p->virtual_host = strcmp(val, "virtual") == 0;
		else if (strcmp(def->defname, "prefix") == 0)
		{
			int			len = strlen(val);

			p->prefix = (len > 0 && val[len - 1] != '/') ? psprintf("%s/", val) : pstrdup(val);
		}
		else if (strcmp(def->defname, "geo") == 0)
			p->geo = pstrdup(val);
		else if (strcmp(def->defname, "operator") == 0)
			p->operator_name = pstrdup(val);
		else if (strcmp(def->defname, "cost_per_gb_month") == 0)
			(void) parse_real(val, &p->cost_per_gb_month, 0, NULL);
		else if (strcmp(def->defname, "cost_per_request") == 0)
			(void) parse_real(val, &p->cost_per_request, 0, NULL);
		else if (strcmp(def->defname, "egress_per_gb") == 0)
			(void) parse_real(val, &p->egress_per_gb, 0, NULL);
		else if (strcmp(def->defname, "access_key_id") == 0)
			p->access_key_id = pstrdup(val);
		else if (strcmp(def->defname, "secret_access_key") == 0)
			p->secret_access_key = pstrdup(val);
		else if (strcmp(def->defname, "session_token") == 0)
			p->session_token = pstrdup(val);
	}
}

static bool
server_is_provider(ForeignServer *server)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);

	return strcmp(fdw->fdwname, "destor_provider") == 0;
}

/*
 * The options of the user's mapping for a server, or of the PUBLIC one;
 * NIL when there is neither (anonymous access).  Looked up directly rather
 * than through GetUserMapping(), whose "not found" is an ERROR: catching
 * that would leave the memory context and resource owner of the failed
 * call behind.
 */
static List *
provider_user_mapping_options(Oid userid, Oid serverid)
{
	HeapTuple	tup;
	List	   *options = NIL;
	Datum		d;
	bool		isnull;

	tup = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(userid),
						  ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tup))
		tup = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							  ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tup))
		return NIL;
	d = SysCacheGetAttr(USERMAPPINGUSERSERVER, tup, Anum_pg_user_mapping_umoptions, &isnull);
	if (!isnull)
		options = untransformRelOptions(d);
	ReleaseSysCache(tup);
	return options;
}

Provider *
provider_lookup(Oid serverid)
{
	ForeignServer *server = GetForeignServer(serverid);
	Provider   *p;

	if (!server_is_provider(server))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a destor provider", server->servername),
				 errhint("Providers are servers of the foreign-data wrapper destor_provider.")));

	p = palloc0(sizeof(Provider));
	p->serverid = serverid;
	p->name = pstrdup(server->servername);
	p->region = NULL;
	p->prefix = pstrdup("");
	provider_apply_options(p, server->options);
	if (p->region == NULL)
		p->region = pstrdup("us-east-1");

	/* Credentials: the current user's mapping, or the PUBLIC one. */
	if (p->type == PROVIDER_S3)
		provider_apply_options(p, provider_user_mapping_options(GetUserId(), serverid));
	return p;
}

Provider *
provider_lookup_by_name(const char *servername, bool missing_ok)
{
	ForeignServer *server = GetForeignServerByName(servername, true);

	if (server == NULL)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("provider \"%s\" does not exist", servername),
				 errhint("Declare it with CREATE SERVER %s FOREIGN DATA WRAPPER destor_provider OPTIONS (...).",
						 quote_identifier(servername))));
	}
	return provider_lookup(server->serverid);
}

Provider *
provider_copy(Provider *p, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Provider   *c = palloc(sizeof(Provider));

#define COPY_STR(f) c->f = p->f ? pstrdup(p->f) : NULL
	*c = *p;
	COPY_STR(name);
	COPY_STR(geo);
	COPY_STR(operator_name);
	COPY_STR(path);
	COPY_STR(endpoint);
	COPY_STR(bucket);
	COPY_STR(region);
	COPY_STR(prefix);
	COPY_STR(access_key_id);
	COPY_STR(secret_access_key);
	COPY_STR(session_token);
#undef COPY_STR
	MemoryContextSwitchTo(old);
	return c;
}

/*
 * buffer_hugepage_hint — ask the kernel to back the 2 MiB-aligned part of a
 * large buffer not touched yet with transparent huge pages.  A buffer of
 * shard bytes or plaintext is written once, end to end, soon after it is
 * allocated, and a fresh allocation of that size is new pages: one page
 * fault per 4 KiB.  In a virtual machine a fault can cost 10 us or more
 * (a 64 MiB file-pool export spent two thirds of its time in them); with
 * huge pages it is one fault per 2 MiB.  Only a hint: without THP (or with
 * it disabled) nothing changes, and a buffer already touched keeps its
 * pages.
 */
#define HUGE_PAGE_BYTES		((uintptr_t) 2 * 1024 * 1024)

void
buffer_hugepage_hint(void *p, size_t len)
{
#ifdef MADV_HUGEPAGE
	uintptr_t	a = TYPEALIGN(HUGE_PAGE_BYTES, (uintptr_t) p);
	uintptr_t	e = TYPEALIGN_DOWN(HUGE_PAGE_BYTES, (uintptr_t) p + len);

	if (len >= 2 * HUGE_PAGE_BYTES && e > a)
		(void) madvise((void *) a, e - a, MADV_HUGEPAGE);
#endif
}

/* MemoryContextAllocHuge, the buffer hinted for huge pages. */
void *
buffer_alloc_large(MemoryContext cxt, size_t size)
{
	void	   *p = MemoryContextAllocHuge(cxt, size);

	buffer_hugepage_hint(p, size);
	return p;
}

/*
 * An aligned buffer; the allocation it lies in is remembered just before
 * it, so that provider_free_aligned() can give it back.
 */
void *
provider_alloc_aligned(MemoryContext cxt, size_t size)
{
	char	   *raw = buffer_alloc_large(cxt, size + PROVIDER_IO_ALIGN + sizeof(void *));
	char	   *aligned = (char *) TYPEALIGN(PROVIDER_IO_ALIGN, raw + sizeof(void *));

	((void **) aligned)[-1] = raw;
	return aligned;
}

void
provider_free_aligned(void *p)
{
	pfree(((void **) p)[-1]);
}

ProviderUpload *
provider_upload_create(Provider *p, const char *key)
{
	ProviderUpload *u = palloc0(sizeof(ProviderUpload));

	u->provider = p;
	u->key = pstrdup(key);
	u->fd = -1;
	return u;
}

/* ---------------------------------------------------------------------------
 * Execution
 * ------------------------------------------------------------------------- */
struct ProviderBatch
{
	ProviderRequest *reqs;
	int			nreqs;
	FileBatch  *file;
	S3Batch    *s3;				/* reads running while the caller works */
	bool		open;			/* started, neither finished nor abandoned */
};

/*
 * The context a batch was started in is going (an ERROR, or a caller that
 * dropped it): abandon the batch before the buffers its transfers write
 * into go with it.  This runs before that context's own memory is freed.
 */
static void
provider_batch_reset(void *arg)
{
	provider_abandon((ProviderBatch *) arg);
}

/*
 * provider_start — start a batch.  File requests run in the background
 * (POSIX AIO); a batch whose s3 requests are all reads, PUTs or upload
 * parts runs on the multi handle while the caller works (provider_poll
 * moves it along); other s3 requests complete here.  The batch is tied to
 * the current context: if that goes before provider_finish, the batch is
 * abandoned first.
 */
static ProviderBatch *provider_start_run(ProviderRequest *reqs, int nreqs, bool puts_ahead);

ProviderBatch *
provider_start(ProviderRequest *reqs, int nreqs)
{
	return provider_start_run(reqs, nreqs, true);
}

/*
 * puts_ahead: s3 PUTs may run on while the caller works.  Only a caller
 * that started the batch itself comes back to drive it (a table segment's
 * shards go out while the next segment is encoded); provider_execute's
 * PUTs complete in the call, as they always did.
 */
static ProviderBatch *
provider_start_run(ProviderRequest *reqs, int nreqs, bool puts_ahead)
{
	ProviderBatch *b = palloc0(sizeof(ProviderBatch));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));
	ProviderRequest **s3reqs = palloc(sizeof(ProviderRequest *) * Max(nreqs, 1));
	ProviderRequest **filereqs = palloc(sizeof(ProviderRequest *) * Max(nreqs, 1));
	int			ns3 = 0;
	int			nfile = 0;
	bool		s3_async = true;

	b->reqs = reqs;
	b->nreqs = nreqs;
	for (int i = 0; i < nreqs; i++)
	{
		ProviderRequest *r = &reqs[i];

		r->ok = false;
		r->not_found = false;
		r->http_status = 0;
		r->result_size = 0;
		r->received = 0;
		r->partial_bytes = 0;
		r->thin = false;
		r->abandoned = false;
		r->retries = 0;
		r->short_bodies = 0;
		r->unreachable = false;
		r->held = false;
		r->timing_loose = false;
		r->error = NULL;
		if (r->op == POP_PUT || r->op == POP_UPLOAD_BEGIN || r->op == POP_UPLOAD_PART)
			provider_writing_begins();
		if (r->provider->type == PROVIDER_S3)
		{
			s3reqs[ns3++] = r;
			/* reads, parts and begins (and PUTs, when asked) run on while
			 * the caller works */
			if (r->op != POP_GET && r->op != POP_UPLOAD_PART && r->op != POP_UPLOAD_BEGIN &&
				!(r->op == POP_PUT && puts_ahead))
				s3_async = false;
		}
		else
			filereqs[nfile++] = r;
	}
	if (nfile > 0)
		b->file = provider_file_start(filereqs, nfile);
	b->open = true;
	cb->func = provider_batch_reset;
	cb->arg = b;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	if (ns3 > 0)
	{
		PG_TRY();
		{
			if (s3_async)
				b->s3 = provider_s3_start(s3reqs, ns3);
			else
				provider_s3_execute_batch(s3reqs, ns3);
		}
		PG_CATCH();
		{
			provider_abandon(b);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	pfree(s3reqs);
	pfree(filereqs);
	return b;
}

/*
 * provider_finish — wait for the batch to end and note its requests in the
 * providers' statistics.  The batch stays allocated (its context's reset
 * callback points at it) but is closed.
 */
void
provider_finish(ProviderBatch *b)
{
	Assert(b->open);
	if (!b->open)
		elog(ERROR, "provider batch finished twice");
	if (b->s3)
	{
		PG_TRY();
		{
			provider_s3_finish(b->s3);
		}
		PG_CATCH();
		{
			provider_abandon(b);
			PG_RE_THROW();
		}
		PG_END_TRY();
		b->s3 = NULL;
	}
	b->open = false;
	if (b->file)
		provider_file_finish(b->file);
	b->file = NULL;
	provider_stats_note(b->reqs, b->nreqs);
}

/* See provider.h. */
void
provider_wait_tail(ProviderBatch *b)
{
	provider_wait_lead(b, 1);
}

/* See provider.h. */
void
provider_wait_lead(ProviderBatch *b, double rtts)
{
	if (!b->open || b->s3 == NULL)
		return;
	PG_TRY();
	{
		provider_s3_wait_tail(b->s3, rtts);
	}
	PG_CATCH();
	{
		provider_abandon(b);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* See provider.h. */
bool
provider_wait_end_or_lead(ProviderBatch *b, ProviderBatch *other, double rtts)
{
	bool		near = false;

	if (!b->open || b->s3 == NULL || !other->open || other->s3 == NULL)
		return false;
	PG_TRY();
	{
		near = provider_s3_wait_end_or_lead(b->s3, other->s3, rtts);
	}
	PG_CATCH();
	{
		provider_abandon(b);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return near;
}

/* See provider.h. */
bool
provider_batch_ending(ProviderBatch *b)
{
	if (!b->open || b->s3 == NULL)
		return false;
	provider_poll();
	return provider_s3_ending(b->s3);
}

/* See provider.h. */
ProviderWaitResult
provider_wait_until(ProviderBatch *b, bool (*ready) (void *arg), void *arg, bool stop_at_tail)
{
	ProviderWaitResult res = PROVIDER_WAIT_OVER;

	if (!b->open || b->s3 == NULL || b->file != NULL)
		return PROVIDER_WAIT_OVER;
	PG_TRY();
	{
		res = provider_s3_wait_until(b->s3, ready, arg, stop_at_tail);
	}
	PG_CATCH();
	{
		provider_abandon(b);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return res;
}

/* Error cleanup: stop what still writes into the caller's buffers. */
void
provider_abandon(ProviderBatch *b)
{
	if (!b->open)
		return;
	b->open = false;
	if (b->file)
		provider_file_abandon(b->file);
	if (b->s3)
		provider_s3_abandon(b->s3);
	b->file = NULL;
	b->s3 = NULL;
}

/*
 * provider_cancel — a batch not wanted after all: its s3 transfers are
 * stopped rather than waited for; its file transfers (local, quick) are
 * completed, so that their descriptors close now.  What its requests did
 * is noted in the providers' statistics as for any batch: the ones that
 * ended, and for the ones stopped the bytes they had received (sent by
 * the provider, and billed as its egress: a read-ahead of a scan under a
 * LIMIT was left out of provider_status.bytes_read and the cost report).
 */
void
provider_cancel(ProviderBatch *b)
{
	if (!b->open)
		return;
	if (b->s3)
		provider_s3_cancel(b->s3);
	b->s3 = NULL;
	b->open = false;
	if (b->file)
		provider_file_finish(b->file);
	b->file = NULL;
	provider_stats_note(b->reqs, b->nreqs);
}

void
provider_poll(void)
{
	provider_s3_poll();
}

void
provider_execute(ProviderRequest *reqs, int nreqs)
{
	provider_finish(provider_start_run(reqs, nreqs, false));
}

/*
 * provider_hedge_writes — make a batch of writes, one per shard, a hedged
 * set: each request a unit, "need" of them needed; once that many are
 * stored, one still stalled is given up (the caller records it missing)
 * instead of waited for, so a write over a WAN goes at the pace of its
 * need-th fastest provider, not its slowest.  s3 only (file providers are
 * local disks), and only when fewer than all are needed.
 */
bool
provider_hedge_writes(ProviderRequest *reqs, int nreqs, int need)
{
	if (nreqs <= need)
		return false;
	for (int r = 0; r < nreqs; r++)
		if (reqs[r].provider->type != PROVIDER_S3)
			return false;
	for (int r = 0; r < nreqs; r++)
	{
		reqs[r].hedge_unit = r + 1;
		reqs[r].hedge_need = need;
	}
	return true;
}


static const char *
provider_op_name(ProviderOp op)
{
	switch (op)
	{
		case POP_PUT:
			return "put";
		case POP_GET:
			return "get";
		case POP_HEAD:
			return "head";
		case POP_DELETE:
			return "delete";
		case POP_UPLOAD_BEGIN:
		case POP_UPLOAD_PART:
		case POP_UPLOAD_COMPLETE:
			return "upload";
		case POP_UPLOAD_ABORT:
			return "abort upload";
	}
	return "request";
}

static void
provider_raise(ProviderRequest *r)
{
	ereport(ERROR,
			(errcode(r->not_found ? ERRCODE_FDW_ERROR : ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
			 errmsg("provider \"%s\" failed to %s an object", r->provider->name,
					provider_op_name(r->op)),
			 errdetail("%s", r->error ? r->error : "unknown error"),
			 errhint("Check the provider with SELECT * FROM destor.check_provider('%s').",
					 r->provider->name)));
}

void
provider_put(Provider *p, const char *key, const char *data, size_t len)
{
	ProviderRequest r = {0};

	r.provider = p;
	r.op = POP_PUT;
	r.key = key;
	r.data = data;
	r.datalen = len;
	provider_execute(&r, 1);
	if (!r.ok)
		provider_raise(&r);
}

uint64
provider_get(Provider *p, const char *key, uint64 offset, uint64 length, char *buf)
{
	ProviderRequest r = {0};

	r.provider = p;
	r.op = POP_GET;
	r.key = key;
	r.offset = offset;
	r.length = length;
	r.buf = buf;
	provider_execute(&r, 1);
	if (!r.ok)
		provider_raise(&r);
	return r.result_size;
}

void
provider_delete(Provider *p, const char *key)
{
	ProviderRequest r = {0};

	r.provider = p;
	r.op = POP_DELETE;
	r.key = key;
	provider_execute(&r, 1);
	if (!r.ok)
		provider_raise(&r);
}

List *
provider_list(Provider *p, const char *prefix)
{
	if (p->type == PROVIDER_S3)
		return provider_s3_list(p, prefix);
	return provider_file_list(p, prefix);
}

List *
provider_list_uploads(Provider *p, const char *prefix)
{
	if (p->type == PROVIDER_S3)
		return provider_s3_list_uploads(p, prefix);
	return NIL;
}

bool
provider_abort_upload(Provider *p, ProviderUploadEntry *e)
{
	ProviderRequest r = {0};
	ProviderUpload *u = provider_upload_create(p, e->key);

	u->upload_id = pstrdup(e->upload_id);
	u->active = true;
	r.provider = p;
	r.op = POP_UPLOAD_ABORT;
	r.upload = u;
	provider_execute(&r, 1);
	if (!r.ok)
		ereport(WARNING,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not abort an unfinished upload of \"%s\" on provider \"%s\"",
						e->key, p->name),
				 errdetail("%s", r.error ? r.error : "unknown error")));
	return r.ok;
}

/*
 * provider_instance_namespace — this database's namespace on providers: the
 * first PROVIDER_NS_LEN bytes of the instance id that CREATE EXTENSION gave
 * the destor_provider wrapper (option "instance").  Extension members'
 * options are not dumped, so a restored copy gets an id of its own, while
 * pg_upgrade and physical replicas keep it.  False when there is none
 * (installed before instance ids existed): then everything counts as ours.
 */
bool
provider_instance_namespace(uint8 ns[PROVIDER_NS_LEN])
{
	ForeignDataWrapper *fdw = GetForeignDataWrapperByName("destor_provider", true);
	ListCell   *lc;

	if (fdw == NULL)
		return false;
	foreach(lc, fdw->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "instance") == 0)
		{
			pg_uuid_t  *u = DatumGetUUIDP(DirectFunctionCall1(uuid_in,
														  CStringGetDatum(defGetString(def))));

			memcpy(ns, u->data, PROVIDER_NS_LEN);
			return true;
		}
	}
	return false;
}
