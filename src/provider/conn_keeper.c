/*
 * conn_keeper.c — connections to the providers made before they are needed.
 *
 * Every backend, and every parallel worker of every query, opens its own
 * connections to the providers, and over a WAN each costs a round trip
 * (TCP's handshake; TLS adds its own) before its first request can go out.
 * A parallel scan pays it in each participant, every time: in the WAN bench
 * it was a third of a cold scan's distance from its ideal.
 *
 * With destor.warm_connections > 0 (the default, when destor is preloaded)
 * a background worker, the keeper, holds
 * that many connected sockets ready for each provider address a backend
 * used within the last KEEPER_WANT_MS, and hands one over (SCM_RIGHTS, on
 * a Unix socket in the data directory; each end checks the other runs as
 * the server's user)
 * when libcurl opens a connection (CURLOPT_OPENSOCKETFUNCTION in
 * s3_request.c).  libcurl is told the socket is connected and sends its
 * request, or its TLS hello, at once.  A socket is handed over only if it
 * is younger than its address's lifetime and the server has not closed it;
 * a backend that gets none within KEEPER_WAIT_MS connects as before.  The
 * keeper never talks to the database: it needs no catalog and no key, and
 * the sockets carry no credentials until a backend signs a request on them.
 *
 * A socket's lifetime is learned per address: it starts at
 * KEEPER_FIRST_AGE_MS, grows to 1.5 times what a socket lived out open (up
 * to KEEPER_MAX_AGE_MS), and drops to half the age at which the server
 * closed one (a second at least), not to grow again for
 * KEEPER_RELEARN_MS.  A request that finds its kept socket closed after
 * all is tried again on a connection of its own, uncounted
 * (s3_transfer_finish).
 * A fixed short lifetime replaced every socket every few seconds: on a
 * provider that keeps idle connections for a minute, a dozen connects a
 * minute for each socket kept.  The oldest socket still within its life
 * is handed over first: it would be let go soonest.
 */
#include "postgres.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "destor/provider.h"

/* on by default: a round trip saved per provider and new session or worker */
#define WARM_CONNECTIONS_DEFAULT	4

int			destor_warm_connections = WARM_CONNECTIONS_DEFAULT;

/* set in the postmaster when the keeper is registered; backends inherit it */
static bool keeper_registered = false;

#define KEEPER_MAX_ADDRS		64
#define KEEPER_MAX_SOCKS		32		/* per address: the setting's maximum */
#define KEEPER_MAX_CLIENTS		256
#define KEEPER_FIRST_AGE_MS		4000	/* servers close idle connections */
#define KEEPER_MIN_AGE_MS		1000	/* ... or this soon, at the soonest kept */
#define KEEPER_LEARN_MIN_MS		2000	/* a close of a younger one: a restart */
#define KEEPER_MAX_AGE_MS		30000	/* a lifetime learned grows to this */
#define KEEPER_RELEARN_MS		600000	/* a lifetime capped may grow again after */
#define KEEPER_WANT_MS			60000	/* kept warm this long after a use */
#define KEEPER_RETRY_MS			1000	/* after a failed connect */
#define KEEPER_WAIT_MS			20		/* a backend waits for an answer */
#define KEEPER_MAGIC			0x6b656570	/* "keep" */

typedef struct KeeperRequest
{
	uint32		magic;
	uint32		addrlen;
	struct sockaddr_storage addr;
} KeeperRequest;

typedef struct KeptSocket
{
	int			fd;
	bool		connected;
	short		revents;		/* what the last poll found */
	TimestampTz opened;
	double		life;			/* let go at this fraction of the address's lifetime */
} KeptSocket;

typedef struct KeptAddr
{
	bool		used;
	struct sockaddr_storage addr;
	socklen_t	addrlen;
	TimestampTz wanted;			/* last asked for */
	TimestampTz retry_at;		/* no connect before (after a failure) */
	int			max_age_ms;		/* a socket's lifetime here, learned */
	TimestampTz capped_at;		/* the server closed one (0: not lately):
								 * no longer, until KEEPER_RELEARN_MS */
	int			nsocks;
	KeptSocket	socks[KEEPER_MAX_SOCKS];
} KeptAddr;

/*
 * The keeper's socket: a file in the data directory, the working directory
 * of every server process, relative so that a long data directory path
 * does not overflow sun_path.  Not an abstract name: any local user could
 * bind that first (while the keeper restarts) and be handed backends'
 * signed requests; the data directory is the server user's alone.  In
 * pg_stat_tmp, which base backups leave out.
 */
#define KEEPER_SOCKET_PATH		"pg_stat_tmp/destor_keeper.sock"

static socklen_t
keeper_address(struct sockaddr_un *un)
{
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	strlcpy(un->sun_path, KEEPER_SOCKET_PATH, sizeof(un->sun_path));
	return offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) + 1;
}

/* Whether the process at the other end of Unix socket fd runs as we do. */
static bool
peer_is_us(int fd)
{
	struct ucred cred;
	socklen_t	len = sizeof(cred);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid();
}

static void
keeper_unlink_socket(int code, Datum arg)
{
	(void) unlink(KEEPER_SOCKET_PATH);
}

void
conn_keeper_define_gucs(void)
{
	DefineCustomIntVariable("destor.warm_connections",
							"Connected sockets a background worker keeps ready per provider address that backends used lately; 0 turns it off.",
							"Each saves a new backend or parallel worker the round trip of TCP's handshake to a provider.",
							&destor_warm_connections, WARM_CONNECTIONS_DEFAULT, 0, KEEPER_MAX_SOCKS,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

void
conn_keeper_register_worker(void)
{
	BackgroundWorker worker;

	if (destor_warm_connections <= 0)
		return;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "destor");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "destor_conn_keeper_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "destor connection keeper");
	snprintf(worker.bgw_type, BGW_MAXLEN, "destor connection keeper");
	RegisterBackgroundWorker(&worker);
	keeper_registered = true;
}

/* ---------------------------------------------------------------------
 * The keeper
 * --------------------------------------------------------------------- */

static KeptAddr kept[KEEPER_MAX_ADDRS];
static int	clients[KEEPER_MAX_CLIENTS];

/*
 * Descriptors: the kept sockets may use up to kept_budget (three quarters
 * of the soft limit, less a reserve), so that clients always find some.
 * Out of them all the same (EMFILE), the keeper stops accepting for a
 * while: the listening socket stays readable, and polled it would spin.
 */
static int	nkept = 0;
static int	kept_budget = KEEPER_MAX_ADDRS * KEEPER_MAX_SOCKS;
static int	max_clients = KEEPER_MAX_CLIENTS;
static TimestampTz accept_paused_until = 0;
#define KEEPER_FD_RESERVE		16
#define KEEPER_ACCEPT_PAUSE_MS	1000
static int	nclients = 0;

static void
kept_close(KeptAddr *a, int i)
{
	close(a->socks[i].fd);
	a->socks[i] = a->socks[--a->nsocks];
	nkept--;
}

/* How long socket s of a lives: its share of what a's lifetime is now. */
static int
kept_life_ms(KeptAddr *a, KeptSocket *s)
{
	return (int) (a->max_age_ms * s->life);
}

static bool
kept_expired(KeptAddr *a, KeptSocket *s, TimestampTz now)
{
	return TimestampDifferenceExceeds(s->opened, now, kept_life_ms(a, s));
}

/*
 * The server closed connected socket s of a: it keeps idle connections
 * about that long, so hand over none older than half that (a socket closed
 * younger than KEEPER_LEARN_MIN_MS was more likely closed by a restart, a
 * server's or a proxy's, than by an idle timeout).  The cap holds for
 * KEEPER_RELEARN_MS: a restart that closed older sockets must not keep the
 * lifetime short for good.  (An address not asked for within
 * KEEPER_WANT_MS is forgotten, what was learned of it too.)
 */
static void
kept_learn_close(KeptAddr *a, KeptSocket *s, TimestampTz now)
{
	long		secs;
	int			usecs;
	long		age_ms;

	TimestampDifference(s->opened, now, &secs, &usecs);
	age_ms = Min(secs, (long) (KEEPER_MAX_AGE_MS / 1000)) * 1000 + usecs / 1000;
	if (age_ms < KEEPER_LEARN_MIN_MS)
		return;
	a->max_age_ms = Max(KEEPER_MIN_AGE_MS, Min(a->max_age_ms, (int) (age_ms / 2)));
	a->capped_at = now;
}

/* A socket of a lived its life out: the next may live longer, unless capped. */
static void
kept_learn_lived(KeptAddr *a, KeptSocket *s, TimestampTz now)
{
	if (a->capped_at != 0 && !TimestampDifferenceExceeds(a->capped_at, now, KEEPER_RELEARN_MS))
		return;
	a->capped_at = 0;
	a->max_age_ms = Max(a->max_age_ms, Min(kept_life_ms(a, s) * 3 / 2, KEEPER_MAX_AGE_MS));
}

/* Whether a connected socket is still open at the far end: nothing to read. */
static bool
socket_alive(int fd)
{
	struct pollfd p = {.fd = fd,.events = POLLIN | POLLRDHUP};

	return poll(&p, 1, 0) == 0;
}

static KeptAddr *
kept_find(const struct sockaddr_storage *addr, socklen_t len, bool create)
{
	KeptAddr   *free_slot = NULL;
	KeptAddr   *oldest = NULL;

	for (int i = 0; i < KEEPER_MAX_ADDRS; i++)
	{
		KeptAddr   *a = &kept[i];

		if (!a->used)
		{
			if (free_slot == NULL)
				free_slot = a;
			continue;
		}
		if (a->addrlen == len && memcmp(&a->addr, addr, len) == 0)
			return a;
		if (oldest == NULL || a->wanted < oldest->wanted)
			oldest = a;
	}
	if (!create)
		return NULL;
	if (free_slot == NULL)
	{
		/* full: the address wanted longest ago makes room */
		free_slot = oldest;
		while (free_slot->nsocks > 0)
			kept_close(free_slot, 0);
	}
	memset(free_slot, 0, sizeof(KeptAddr));
	free_slot->used = true;
	memcpy(&free_slot->addr, addr, len);
	free_slot->addrlen = len;
	free_slot->max_age_ms = KEEPER_FIRST_AGE_MS;
	return free_slot;
}

/* Start connecting one more socket to a; false if it failed at once. */
static bool
kept_connect(KeptAddr *a, TimestampTz now)
{
	int			one = 1;
	int			fd;

	if (nkept >= kept_budget)
		return false;			/* the descriptors left are for clients */
	fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *) &a->addr, a->addrlen) != 0 && errno != EINPROGRESS)
	{
		close(fd);
		return false;
	}
	a->socks[a->nsocks].fd = fd;
	a->socks[a->nsocks].connected = false;
	a->socks[a->nsocks].opened = now;
	/*
	 * Up to a quarter short of the address's lifetime, at random: sockets
	 * made together are not all let go together, which would leave a new
	 * backend none ready for the round trip their replacements take.
	 */
	a->socks[a->nsocks].life = 1.0 - pg_prng_double(&pg_global_prng_state) / 4;
	a->nsocks++;
	nkept++;
	return true;
}

/* Send fd (or nothing, fd < 0) as the answer to client c. */
static bool
keeper_answer(int c, int fd)
{
	char		status = fd >= 0 ? 1 : 0;
	struct iovec iov = {.iov_base = &status,.iov_len = 1};
	union
	{
		struct cmsghdr hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	}			cmsg;
	struct msghdr msg;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd >= 0)
	{
		memset(&cmsg, 0, sizeof(cmsg));
		msg.msg_control = cmsg.buf;
		msg.msg_controllen = sizeof(cmsg.buf);
		CMSG_FIRSTHDR(&msg)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&msg)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&msg)->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&msg)), &fd, sizeof(int));
	}
	return sendmsg(c, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 1;
}

/* A request from client c: hand over a ready socket, if one is. */
static bool
keeper_serve(int c, TimestampTz now)
{
	KeeperRequest req;
	KeptAddr   *a;
	int			best;
	ssize_t		n = recv(c, &req, sizeof(req), MSG_DONTWAIT);

	if (n != sizeof(req) || req.magic != KEEPER_MAGIC || req.addrlen == 0 ||
		req.addrlen > sizeof(req.addr) ||
		(req.addr.ss_family != AF_INET && req.addr.ss_family != AF_INET6))
		return false;			/* closed, or not one of ours: drop it */
	a = kept_find(&req.addr, req.addrlen, true);
	a->wanted = now;
	/* drop the ones too old or closed, then hand over the oldest left */
	for (int i = 0; i < a->nsocks;)
	{
		KeptSocket *s = &a->socks[i];

		if (s->connected && kept_expired(a, s, now))
			kept_close(a, i);
		else if (s->connected && !socket_alive(s->fd))
		{
			kept_learn_close(a, s, now);
			kept_close(a, i);
		}
		else
			i++;
	}
	best = -1;
	for (int i = 0; i < a->nsocks; i++)
		if (a->socks[i].connected && (best < 0 || a->socks[i].opened < a->socks[best].opened))
			best = i;
	if (best >= 0)
	{
		bool		sent = keeper_answer(c, a->socks[best].fd);

		kept_close(a, best);	/* the client has its own descriptor now */
		return sent;
	}
	return keeper_answer(c, -1);
}

static void
keeper_accept(int l)
{
	for (;;)
	{
		int			c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0)
		{
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																  KEEPER_ACCEPT_PAUSE_MS);
			return;
		}
		/* only processes of the server's own user */
		if (!peer_is_us(c) || nclients >= max_clients)
		{
			close(c);
			continue;
		}
		clients[nclients++] = c;
	}
}

/* Age, check and refill every address still wanted; forget the others. */
static void
keeper_tend(TimestampTz now)
{
	for (int i = 0; i < KEEPER_MAX_ADDRS; i++)
	{
		KeptAddr   *a = &kept[i];

		if (!a->used)
			continue;
		for (int j = 0; j < a->nsocks;)
		{
			KeptSocket *s = &a->socks[j];

			if (kept_expired(a, s, now))
			{
				/* the server kept it this long: the next may live longer */
				if (s->connected && socket_alive(s->fd))
					kept_learn_lived(a, s, now);
				else if (s->connected)
					kept_learn_close(a, s, now);
				kept_close(a, j);
			}
			else
				j++;
		}
		if (TimestampDifferenceExceeds(a->wanted, now, KEEPER_WANT_MS))
		{
			while (a->nsocks > 0)
				kept_close(a, 0);
			a->used = false;
			continue;
		}
		while (a->nsocks < destor_warm_connections && now >= a->retry_at)
		{
			if (!kept_connect(a, now))
			{
				a->retry_at = TimestampTzPlusMilliseconds(now, KEEPER_RETRY_MS);
				break;
			}
		}
	}
}

/*
 * Share the descriptors the process may open (see kept_budget), and let go
 * of what exceeds a limit lowered under us: poll() refuses more
 * descriptors than the limit (EINVAL), which ended the keeper.
 */
static void
keeper_fd_limits(void)
{
	struct rlimit rl;
	long		n;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return;
	n = (long) rl.rlim_cur - KEEPER_FD_RESERVE;
	kept_budget = (int) Min(Max(n * 3 / 4, 0), (long) (KEEPER_MAX_ADDRS * KEEPER_MAX_SOCKS));
	max_clients = (int) Min(Max(n - kept_budget, 1), (long) KEEPER_MAX_CLIENTS);
	/* the fullest address gives up a socket first */
	while (nkept > kept_budget)
	{
		KeptAddr   *fullest = NULL;

		for (int i = 0; i < KEEPER_MAX_ADDRS; i++)
			if (kept[i].used && kept[i].nsocks > 0 &&
				(fullest == NULL || kept[i].nsocks > fullest->nsocks))
				fullest = &kept[i];
		if (fullest == NULL)
			break;
		kept_close(fullest, fullest->nsocks - 1);
	}
	/* a client let go finds out at its next request, and stays away a second */
	while (nclients > max_clients)
		close(clients[--nclients]);
}

void		destor_conn_keeper_main(Datum arg);

void
destor_conn_keeper_main(Datum arg)
{
	struct sockaddr_un un;
	socklen_t	unlen = keeper_address(&un);
	int			l;
	struct pollfd *fds;
	int			maxfds = 1 + KEEPER_MAX_CLIENTS + KEEPER_MAX_ADDRS * KEEPER_MAX_SOCKS;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* a keeper before this one (a restart) left its file */
	(void) unlink(KEEPER_SOCKET_PATH);
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *) &un, unlen) != 0 || listen(l, 64) != 0)
		ereport(ERROR,
				(errcode_for_socket_access(),
				 errmsg("destor connection keeper could not listen on \"%s\": %m", KEEPER_SOCKET_PATH)));
	on_proc_exit(keeper_unlink_socket, (Datum) 0);
	fds = palloc(sizeof(struct pollfd) * maxfds);
	ereport(DEBUG1, (errmsg_internal("destor connection keeper ready")));

	for (;;)
	{
		int			nfds = 0;
		int			rc;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (!PostmasterIsAlive())
			proc_exit(1);
		keeper_fd_limits();		/* the limit can change under us (prlimit) */

		fds[nfds].fd = l;
		now = GetCurrentTimestamp();
		/* (a pause further off than its length: the clock went back) */
		if (accept_paused_until - now > (TimestampTz) KEEPER_ACCEPT_PAUSE_MS * 1000)
			accept_paused_until = 0;
		fds[nfds++].events = now < accept_paused_until ? 0 : POLLIN;
		for (int i = 0; i < nclients; i++)
		{
			fds[nfds].fd = clients[i];
			fds[nfds++].events = POLLIN | POLLRDHUP;
		}
		for (int i = 0; i < KEEPER_MAX_ADDRS; i++)
			for (int j = 0; kept[i].used && j < kept[i].nsocks; j++)
			{
				fds[nfds].fd = kept[i].socks[j].fd;
				fds[nfds++].events = kept[i].socks[j].connected ? (POLLIN | POLLRDHUP) : POLLOUT;
			}
		/* a signal (SIGTERM, SIGHUP) interrupts poll: its work is done above */
		rc = poll(fds, nfds, 100);
		/*
		 * EINVAL: more descriptors than a limit lowered since this turn's
		 * keeper_fd_limits; the next turn trims to it
		 */
		if (rc < 0 && errno != EINTR && errno != EINVAL)
			ereport(ERROR,
					(errcode_for_socket_access(),
					 errmsg("destor connection keeper could not poll: %m")));
		now = GetCurrentTimestamp();
		if (rc > 0)
		{
			int			f = 1 + nclients;
			int			keep = 0;

			/* what each socket's poll found, in the order they were listed */
			for (int i = 0; i < KEEPER_MAX_ADDRS; i++)
				for (int j = 0; kept[i].used && j < kept[i].nsocks; j++)
					kept[i].socks[j].revents = fds[f++].revents;
			for (int i = 0; i < KEEPER_MAX_ADDRS; i++)
			{
				KeptAddr   *a = &kept[i];

				for (int j = 0; a->used && j < a->nsocks;)
				{
					KeptSocket *s = &a->socks[j];
					short		ev = s->revents;
					int			err = 0;
					socklen_t	len = sizeof(err);

					s->revents = 0;
					if (ev == 0)
						j++;
					else if (!s->connected && (ev & POLLOUT) &&
							 getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
					{
						s->connected = true;
						j++;
					}
					else
					{
						/*
						 * Refused, or closed by the server (the last moves to
						 * j): not again for a while — a server behind a proxy
						 * that accepts and then closes had the keeper
						 * reconnecting 600 times a second.  A connected one
						 * the server closed tells how long it keeps idle
						 * connections: hand over none older than half that.
						 */
						if (s->connected)
							kept_learn_close(a, s, now);
						a->retry_at = TimestampTzPlusMilliseconds(now, KEEPER_RETRY_MS);
						kept_close(a, j);
					}
				}
			}
			/* then the clients' requests, and new clients */
			for (int i = 0; i < nclients; i++)
			{
				short		ev = fds[1 + i].revents;

				/*
				 * A client gone (it waited its 20 ms, while accepting was
				 * paused, and left): its request is not answered, which
				 * would spend a kept socket on a closed peer.
				 */
				if ((ev & (POLLHUP | POLLRDHUP | POLLERR)) ||
					(ev != 0 && !keeper_serve(clients[i], now)))
				{
					close(clients[i]);
					continue;
				}
				clients[keep++] = clients[i];
			}
			nclients = keep;
			if (fds[0].revents & POLLIN)
				keeper_accept(l);
		}
		keeper_tend(now);
	}
}

/* ---------------------------------------------------------------------
 * A backend's side: called from a libcurl callback (no palloc, no ereport)
 * --------------------------------------------------------------------- */

static int	keeper_conn = -1;
static pid_t keeper_conn_pid = 0;	/* the process that opened keeper_conn */
static TimestampTz keeper_retry_at = 0;

/*
 * Wait up to KEEPER_WAIT_MS for the keeper's answer.  A signal (a
 * statement_timeout's alarm, a latch's SIGUSR1) does not end the wait:
 * taken for no answer, it dropped the connection and kept the backend
 * from the keeper for a second, and the socket sent meanwhile was lost.
 */
static bool
keeper_wait_answer(struct pollfd *p)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KEEPER_WAIT_MS);

	for (;;)
	{
		long		left = (long) ((until - GetCurrentTimestamp()) / 1000);
		int			rc;

		if (left < 0)
			left = 0;
		else if (left > KEEPER_WAIT_MS)
			left = KEEPER_WAIT_MS;	/* the clock went back */
		rc = poll(p, 1, (int) left);
		if (rc == 1)
			return true;
		if (rc == 0 || errno != EINTR || left == 0)
			return false;
	}
}

static void
keeper_conn_drop(void)
{
	if (keeper_conn >= 0)
		close(keeper_conn);
	keeper_conn = -1;
	keeper_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KEEPER_RETRY_MS);
}

/*
 * conn_keeper_take — a connected socket to addr from the keeper, or -1
 * (none ready, no keeper, or it did not answer within KEEPER_WAIT_MS; then
 * the caller connects itself).  Asking also tells the keeper the address is
 * wanted: the next backend finds sockets ready.
 */
int
conn_keeper_take(const struct sockaddr *addr, int addrlen)
{
	KeeperRequest req;
	char		status = 0;
	union
	{
		struct cmsghdr hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	}			cmsg;
	struct iovec iov = {.iov_base = &status,.iov_len = 1};
	struct msghdr msg;
	struct pollfd p;
	int			fd = -1;

	/* no keeper runs (destor not preloaded, or off): nothing to ask */
	if (!keeper_registered || destor_warm_connections <= 0 ||
		addrlen <= 0 || addrlen > (int) sizeof(req.addr) ||
		(addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
		return -1;
	if (keeper_conn >= 0 && keeper_conn_pid != getpid())
		keeper_conn = -1;		/* another process's (not ours to close) */
	if (keeper_conn < 0)
	{
		struct sockaddr_un un;
		socklen_t	unlen = keeper_address(&un);

		if (keeper_retry_at != 0 && GetCurrentTimestamp() < keeper_retry_at)
			return -1;
		/*
		 * Non-blocking: a keeper whose backlog is full (stopped, stalled)
		 * refuses at once instead of holding us.  And it must run as we
		 * do: it is handed our signed requests' sockets.
		 */
		keeper_conn = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (keeper_conn < 0 || connect(keeper_conn, (struct sockaddr *) &un, unlen) != 0 ||
			!peer_is_us(keeper_conn))
		{
			keeper_conn_drop();
			return -1;
		}
		keeper_conn_pid = getpid();
	}

	memset(&req, 0, sizeof(req));
	req.magic = KEEPER_MAGIC;
	req.addrlen = addrlen;
	memcpy(&req.addr, addr, addrlen);
	if (send(keeper_conn, &req, sizeof(req), MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof(req))
	{
		keeper_conn_drop();
		return -1;
	}
	p.fd = keeper_conn;
	p.events = POLLIN;
	if (!keeper_wait_answer(&p))
	{
		/* late: its answer would be taken for the next request's */
		keeper_conn_drop();
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cmsg.buf;
	msg.msg_controllen = sizeof(cmsg.buf);
	if (recvmsg(keeper_conn, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) != 1)
	{
		keeper_conn_drop();
		return -1;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
			c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (status != 1 && fd >= 0)
	{
		close(fd);
		fd = -1;
	}
	return fd;
}
