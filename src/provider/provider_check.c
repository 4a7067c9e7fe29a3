/*
 * provider_check.c — destor.check_provider(): a round trip through one
 * provider (write, read back, compare, delete a random probe object), so a
 * DBA can tell at once whether a provider is configured and reachable.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "destor/codec.h"
#include "destor/provider.h"

#define PROBE_SIZE 4096

PG_FUNCTION_INFO_V1(check_provider);

Datum
check_provider(PG_FUNCTION_ARGS)
{
	Name		servername = PG_GETARG_NAME(0);
	ForeignServer *server = GetForeignServerByName(NameStr(*servername), false);
	Provider   *p;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	ProviderRequest r = {0};
	uint8		nonce[8];
	char	   *key;
	char	   *probe = palloc(PROBE_SIZE);
	char	   *back = palloc0(PROBE_SIZE);
	double		latency = 0;
	const char *failed_step = NULL;
	AclResult	aclresult;

	aclresult = pg_foreign_server_aclcheck(server->serverid, GetUserId(), ACL_USAGE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, server->servername);
	p = provider_lookup(server->serverid);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (codec_random_bytes(nonce, sizeof(nonce)) != 0 ||
		codec_random_bytes((uint8 *) probe, PROBE_SIZE) != 0)
		elog(ERROR, "could not generate random bytes");
	key = psprintf("probe/%02x%02x%02x%02x%02x%02x%02x%02x", nonce[0], nonce[1], nonce[2],
				   nonce[3], nonce[4], nonce[5], nonce[6], nonce[7]);

	r.provider = p;
	r.op = POP_PUT;
	r.key = key;
	r.data = probe;
	r.datalen = PROBE_SIZE;
	provider_execute(&r, 1);
	latency += r.latency_ms;
	if (!r.ok)
		failed_step = "write";
	else
	{
		memset(&r, 0, sizeof(r));
		r.provider = p;
		r.op = POP_GET;
		r.key = key;
		r.offset = 0;
		r.length = PROBE_SIZE;
		r.buf = back;
		provider_execute(&r, 1);
		latency += r.latency_ms;
		if (!r.ok)
			failed_step = "read";
		else if (r.result_size != PROBE_SIZE || memcmp(probe, back, PROBE_SIZE) != 0)
		{
			failed_step = "read";
			r.ok = false;
			r.error = psprintf("the probe object read back differs from what was written (%llu bytes)",
							   (unsigned long long) r.result_size);
		}
		{
			ProviderRequest d = {0};

			d.provider = p;
			d.op = POP_DELETE;
			d.key = key;
			provider_execute(&d, 1);
			latency += d.latency_ms;
			if (r.ok && !d.ok)
			{
				failed_step = "delete";
				r = d;
			}
		}
	}

	provider_stats_note_check(p, failed_step == NULL);
	values[0] = BoolGetDatum(failed_step == NULL);
	values[1] = Float8GetDatum(latency);
	if (failed_step == NULL)
		values[2] = CStringGetTextDatum(psprintf("wrote, read back and deleted a %d-byte probe object",
												 PROBE_SIZE));
	else
		values[2] = CStringGetTextDatum(psprintf("could not %s a probe object: %s", failed_step,
												 r.error ? r.error : "unknown error"));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
