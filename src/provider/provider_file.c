/*
 * provider_file.c — the "file" backend: a provider that is a local directory.
 *
 * It is the embedded default and the test default.  Writes are atomic
 * (temp file, fsync, rename, fsync of the directory) so a crash never leaves
 * a half-written object under its final name.  Keys are checked so that no
 * key can name a file outside the provider's directory.  Files are opened as
 * transient files, which PostgreSQL closes at transaction end, so no file
 * descriptor survives an ERROR.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "provider.h"

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

	req->ok = false;
	req->not_found = (save_errno == ENOENT);
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

	if (stat(p->path, &st) != 0 || !S_ISDIR(st.st_mode))
	{
		if (errno == 0)
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

static int
file_write_all(int fd, const char *data, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, data, Min(len, (size_t) 64 * 1024 * 1024));

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
	}
	return 0;
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
	if (file_write_all(fd, req->data, req->datalen) != 0)
	{
		file_set_error(req, "write", key);
		CloseTransientFile(fd);
		unlink(tmppath);
		return;
	}
	req->ok = file_commit_temp(req, fd, tmppath, path, key);
}

static void
file_get(ProviderRequest *req, const char *key)
{
	char	   *path = file_full_path(req->provider, key);
	int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	uint64		done = 0;

	if (fd < 0)
	{
		file_set_error(req, "open", key);
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
			u->fd = OpenTransientFile(u->tmppath, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY);
			if (u->fd < 0)
			{
				file_set_error(req, "create", u->key);
				return;
			}
			u->active = true;
			break;
		case POP_UPLOAD_PART:
			if (file_write_all(u->fd, req->data, req->datalen) != 0)
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
