/*
 * keys.c — the master key.
 *
 * The master key wraps every object's data key and never leaves the
 * database server: it is read from the file named by destor.master_key_file
 * (superuser-only, reloadable), 64 hex digits as `openssl rand -hex 32`
 * writes them.  There is no default key: without one, every operation that
 * needs a key fails and says how to create one.  Key bytes are wiped after
 * use and never appear in messages.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/fd.h"
#include "utils/guc.h"

#include "destor/object.h"

static char *destor_master_key_file = NULL;

void
keys_define_gucs(void)
{
	DefineCustomStringVariable("destor.master_key_file",
							   "File holding the master key (64 hex digits) that wraps data keys.",
							   "Create one with: openssl rand -hex 32 > FILE; chmod 600 FILE.",
							   &destor_master_key_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
}

/*
 * The key read last, kept for the session while its file is unchanged
 * (same path, size and modification time), so that a read of a small blob
 * does not reread the file every time.  Wiped when the file changes.
 */
static bool cached_valid = false;
static char cached_path[MAXPGPATH];
static struct stat cached_st;
static uint8 cached_key[CODEC_KEY_LEN];

/*
 * The key file must be the server's own and private, as PostgreSQL demands
 * of its SSL server key (be-secure-common.c): owned by the database user
 * (or root, then readable by the group at most) and not readable by others.
 * Checked on the open file, so the file checked is the file read.
 */
static void
keys_check_file(int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat master key file \"%s\": %m", destor_master_key_file)));
	}
	if (!S_ISREG(st.st_mode))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("master key file \"%s\" is not a regular file", destor_master_key_file)));
	}
	if (st.st_uid != geteuid() && st.st_uid != 0)
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("master key file \"%s\" must be owned by the database user or root",
						destor_master_key_file)));
	}
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("master key file \"%s\" has group or world access", destor_master_key_file),
				 errdetail("The file has mode %04o; it must be u=rw (0600) or less if owned by the database user, or u=rw,g=r (0640) or less if owned by root.",
						   (unsigned int) (st.st_mode & 07777)),
				 errhint("Run chmod 600 \"%s\".", destor_master_key_file)));
	}
}

void
keys_load_master(uint8 key[CODEC_KEY_LEN], uint8 key_id[CODEC_KEY_FINGERPRINT_LEN])
{
	char		buf[256];
	int			fd;
	ssize_t		n;
	struct stat st;

	if (destor_master_key_file == NULL || destor_master_key_file[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("destor.master_key_file is not set"),
				 errdetail("destor encrypts every object with keys wrapped by a master key, and there is no default key."),
				 errhint("Create a key with \"openssl rand -hex 32 > /path/key; chmod 600 /path/key\", set destor.master_key_file = '/path/key' in postgresql.conf and reload.")));

	if (cached_valid && strcmp(cached_path, destor_master_key_file) == 0 &&
		stat(destor_master_key_file, &st) == 0 && st.st_size == cached_st.st_size &&
		st.st_mtim.tv_sec == cached_st.st_mtim.tv_sec &&
		st.st_mtim.tv_nsec == cached_st.st_mtim.tv_nsec && st.st_ino == cached_st.st_ino &&
		st.st_mode == cached_st.st_mode && st.st_uid == cached_st.st_uid)
	{
		memcpy(key, cached_key, CODEC_KEY_LEN);
		codec_key_fingerprint(key, key_id);
		return;
	}
	if (cached_valid)
		codec_secure_zero(cached_key, sizeof(cached_key));
	cached_valid = false;

	fd = OpenTransientFile(destor_master_key_file, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open master key file \"%s\": %m", destor_master_key_file),
				 errhint("Check destor.master_key_file and that the server can read the file.")));
	keys_check_file(fd);
	n = read(fd, buf, sizeof(buf) - 1);
	CloseTransientFile(fd);
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read master key file \"%s\": %m", destor_master_key_file)));

	if (codec_parse_hex_key(buf, n, key) != 0)
	{
		codec_secure_zero(buf, sizeof(buf));
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("master key file \"%s\" does not hold a 256-bit key", destor_master_key_file),
				 errdetail("The file must contain exactly 64 hexadecimal digits."),
				 errhint("Create one with \"openssl rand -hex 32\".")));
	}
	codec_secure_zero(buf, sizeof(buf));
	codec_key_fingerprint(key, key_id);
	if (stat(destor_master_key_file, &cached_st) == 0 &&
		strlen(destor_master_key_file) < MAXPGPATH)
	{
		strlcpy(cached_path, destor_master_key_file, MAXPGPATH);
		memcpy(cached_key, key, CODEC_KEY_LEN);
		cached_valid = true;
	}
}
