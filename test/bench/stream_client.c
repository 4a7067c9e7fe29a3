/*
 * stream_client.c — the client side of blob_stream_bench.sh: streams MB
 * megabytes to or from the server in 1 MB calls, through large objects
 * (lo_write / lo_read, libpq's fast-path calls) or through destor blob
 * descriptors (blob_write / blob_read, a prepared statement with a binary
 * bytea parameter or result), one transaction each, as a client would.
 *
 *   stream_client CONNINFO MB lo-write            prints: seconds oid peak_kB
 *   stream_client CONNINFO MB lo-read OID         prints: seconds - peak_kB
 *   stream_client CONNINFO MB blob-write          prints: seconds handle peak_kB
 *   stream_client CONNINFO MB blob-read HANDLE    prints: seconds - peak_kB
 *
 * peak_kB is VmHWM of the backend at the end (pg_read_file of
 * /proc/self/status: the bench's cluster runs it as a superuser).  The data
 * is pseudo-random (incompressible) and the same for every mode: reads check
 * every byte against it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpq-fe.h"
#include "libpq/libpq-fs.h"

#define CHUNK (1024 * 1024)
#define POOL_CHUNKS 64

static PGconn *conn;
static unsigned char *pool;

static void
die(const char *what)
{
	fprintf(stderr, "stream_client: %s: %s", what, PQerrorMessage(conn));
	exit(1);
}

static PGresult *
run(const char *sql)
{
	PGresult   *r = PQexec(conn, sql);

	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		die(sql);
	return r;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* chunk i of the stream: a slice of the random pool, stamped with i */
static const unsigned char *
chunk(long i)
{
	static unsigned char buf[CHUNK];

	memcpy(buf, pool + (i % POOL_CHUNKS) * (size_t) CHUNK, CHUNK);
	memcpy(buf, &i, sizeof(i));
	return buf;
}

static long
peak_kb(void)
{
	PGresult   *r = run("SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\\s+(\\d+)'))[1]");
	long		kb = atol(PQgetvalue(r, 0, 0));

	PQclear(r);
	return kb;
}

int
main(int argc, char **argv)
{
	long		mb;
	const char *mode;
	uint64_t	x = 0x9e3779b97f4a7c15ULL;
	double		t0,
				t1;
	char		result[128] = "-";

	if (argc < 4)
	{
		fprintf(stderr, "usage: stream_client CONNINFO MB lo-write|lo-read OID|blob-write|blob-read HANDLE\n");
		return 2;
	}
	mb = atol(argv[2]);
	mode = argv[3];
	pool = malloc((size_t) POOL_CHUNKS * CHUNK);
	for (size_t i = 0; i < (size_t) POOL_CHUNKS * CHUNK / 8; i++)
	{
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(pool + i * 8, &x, 8);
	}
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
		die("connect");

	t0 = now();
	PQclear(run("BEGIN"));
	if (strcmp(mode, "lo-write") == 0)
	{
		Oid			lo = lo_creat(conn, INV_READ | INV_WRITE);
		int			fd = lo_open(conn, lo, INV_WRITE);

		if (lo == InvalidOid || fd < 0)
			die("lo_creat/lo_open");
		for (long i = 0; i < mb; i++)
			if (lo_write(conn, fd, (const char *) chunk(i), CHUNK) != CHUNK)
				die("lo_write");
		if (lo_close(conn, fd) != 0)
			die("lo_close");
		snprintf(result, sizeof(result), "%u", lo);
	}
	else if (strcmp(mode, "lo-read") == 0 && argc > 4)
	{
		int			fd = lo_open(conn, (Oid) atol(argv[4]), INV_READ);
		char	   *buf = malloc(CHUNK);

		if (fd < 0)
			die("lo_open");
		for (long i = 0; i < mb; i++)
			if (lo_read(conn, fd, buf, CHUNK) != CHUNK || memcmp(buf, chunk(i), CHUNK) != 0)
			{
				fprintf(stderr, "stream_client: lo_read: MB %ld differs\n", i);
				return 1;
			}
		lo_close(conn, fd);
	}
	else if (strcmp(mode, "blob-write") == 0)
	{
		PGresult   *r = run("SELECT destor.blob_create('archive')");
		char		fd[32];
		const char *values[2];
		int			lengths[2] = {0, CHUNK};
		int			formats[2] = {0, 1};

		snprintf(fd, sizeof(fd), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = PQprepare(conn, "w", "SELECT destor.blob_write($1::integer, $2::bytea)", 2, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			die("prepare");
		PQclear(r);
		values[0] = fd;
		for (long i = 0; i < mb; i++)
		{
			values[1] = (const char *) chunk(i);
			r = PQexecPrepared(conn, "w", 2, values, lengths, formats, 0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK)
				die("blob_write");
			PQclear(r);
		}
		r = PQexecParams(conn, "SELECT destor.blob_close($1::integer)", 1, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			die("blob_close");
		snprintf(result, sizeof(result), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	else if (strcmp(mode, "blob-read") == 0 && argc > 4)
	{
		const char *values[2] = {argv[4], NULL};
		PGresult   *r = PQexecParams(conn, "SELECT destor.blob_open($1::destor.blob)", 1, NULL, values,
									 NULL, NULL, 0);
		char		fd[32];

		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			die("blob_open");
		snprintf(fd, sizeof(fd), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = PQprepare(conn, "r", "SELECT destor.blob_read($1::integer, 1048576)", 1, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			die("prepare");
		PQclear(r);
		values[0] = fd;
		for (long i = 0; i < mb; i++)
		{
			r = PQexecPrepared(conn, "r", 1, values, NULL, NULL, 1);
			if (PQresultStatus(r) != PGRES_TUPLES_OK)
				die("blob_read");
			if (PQgetlength(r, 0, 0) != CHUNK || memcmp(PQgetvalue(r, 0, 0), chunk(i), CHUNK) != 0)
			{
				fprintf(stderr, "stream_client: blob_read: MB %ld differs\n", i);
				return 1;
			}
			PQclear(r);
		}
		PQclear(PQexecParams(conn, "SELECT destor.blob_close($1::integer)", 1, NULL, values, NULL, NULL, 0));
	}
	else
	{
		fprintf(stderr, "stream_client: unknown mode %s\n", mode);
		return 2;
	}
	PQclear(run("COMMIT"));
	t1 = now();
	printf("%.3f %s %ld\n", t1 - t0, result, peak_kb());
	PQfinish(conn);
	return 0;
}
