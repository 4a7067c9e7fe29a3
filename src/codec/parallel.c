/*
 * parallel.c — run a few pure-C tasks on two cores.
 *
 * Opening (and sealing) blocks is the CPU-bound part of moving an object;
 * a backend is single-threaded, so the codec lends it short-lived helper
 * threads.  A task must be pure C: it may call codec functions that keep no
 * shared state (cipher operations on its own codec_cipher), never the
 * database server.  Helper threads run with every signal blocked, so
 * signals keep going to the backend's own thread.
 */
#include <pthread.h>
#include <signal.h>

#include "destor/codec.h"

typedef struct helper_arg
{
	void		(*fn) (void *);
	void	   *arg;
} helper_arg;

static void *
helper_main(void *p)
{
	helper_arg *h = (helper_arg *) p;

	h->fn(h->arg);
	return NULL;
}

void
codec_run_parallel(void (*fn) (void *), void **args, int nargs)
{
	pthread_t	threads[CODEC_MAX_THREADS];
	helper_arg	hargs[CODEC_MAX_THREADS];
	bool		started[CODEC_MAX_THREADS] = {false};
	sigset_t	all,
				old;

	if (nargs > CODEC_MAX_THREADS)
		nargs = CODEC_MAX_THREADS;

	/* threads inherit the creator's mask: block everything while creating */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 1; i < nargs; i++)
	{
		hargs[i].fn = fn;
		hargs[i].arg = args[i];
		started[i] = pthread_create(&threads[i], NULL, helper_main, &hargs[i]) == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (nargs > 0)
		fn(args[0]);
	for (int i = 1; i < nargs; i++)
	{
		if (started[i])
			pthread_join(threads[i], NULL);
		else
			fn(args[i]);		/* no thread to be had: do it here */
	}
}
