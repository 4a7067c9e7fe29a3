/*
 * keys.c — the master key, and the previous one during a rotation.
 *
 * The master key wraps every object's data key and never leaves the
 * database server: it is read from the file named by destor.master_key_file
 * (superuser-only, reloadable), 64 hex digits as `openssl rand -hex 32`
 * writes them.  There is no default key: without one, every operation that
 * needs a key fails and says how to create one.  Key bytes are wiped after
 * use and never appear in messages.
 *
 * While the master key is being rotated (key_rotation.c), a second file,
 * destor.previous_master_key_file, names the key being retired: it only
 * unwraps, never wraps.  Each object's catalog row says which key wrapped
 * its data key (key_id, a fingerprint), so a reader picks the key by
 * fingerprint and both generations read during the rotation.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/fd.h"
#include "utils/guc.h"

#include "destor/object.h"

static char *destor_master_key_file = NULL;
static char *destor_previous_master_key_file = NULL;

void
keys_define_gucs(void)
{
	DefineCustomStringVariable("destor.master_key_file",
							   "File holding the master key (64 hex digits) that wraps data keys.",
							   "Create one with: openssl rand -hex 32 > FILE; chmod 600 FILE.",
							   &destor_master_key_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("destor.previous_master_key_file",
							   "File holding the master key being retired by a rotation (it only unwraps data keys).",
							   "Set it to the old key file while destor.rotate_master_key() re-wraps data keys under the key of destor.master_key_file; unset it and delete the file afterwards.",
							   &destor_previous_master_key_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
}

/*
 * A key read last from one file, kept for the session while the file is
 * unchanged (same path, size, modification time, inode, mode and owner), so
 * that a read of a small blob does not reread the file every time.  Wiped
 * when the file changes.  One slot for the master key, one for the
 * previous one.
 */
typedef struct KeySlot
{
	bool		valid;
	char		path[MAXPGPATH];
	struct stat st;
	uint8		key[CODEC_KEY_LEN];
	uint8		key_id[CODEC_KEY_FINGERPRINT_LEN];
} KeySlot;

static KeySlot master_slot;
static KeySlot previous_slot;

/*
 * The key file must be the server's own and private, as PostgreSQL demands
 * of its SSL server key (be-secure-common.c): owned by the database user
 * (or root, then readable by the group at most) and not readable by others.
 * Checked on the open file, so the file checked is the file read.  what
 * names the file in messages ("master key file", ...).
 */
static void
keys_check_file(int fd, const char *path, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat %s \"%s\": %m", what, path)));
	}
	if (!S_ISREG(st.st_mode))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" is not a regular file", what, path)));
	}
	if (st.st_uid != geteuid() && st.st_uid != 0)
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" must be owned by the database user or root",
						what, path)));
	}
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" has group or world access", what, path),
				 errdetail("The file has mode %04o; it must be u=rw (0600) or less if owned by the database user, or u=rw,g=r (0640) or less if owned by root.",
						   (unsigned int) (st.st_mode & 07777)),
				 errhint("Run chmod 600 \"%s\".", path)));
	}
}

/*
 * keys_read_file — the key in a key file, checked as keys_check_file says,
 * and its fingerprint.  Every failure is an ERROR naming the file, never
 * its contents.
 */
void
keys_read_file(const char *path, const char *what, uint8 key[CODEC_KEY_LEN],
			   uint8 key_id[CODEC_KEY_FINGERPRINT_LEN])
{
	char		buf[256];
	int			fd;
	ssize_t		n;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open %s \"%s\": %m", what, path),
				 errhint("Check the setting or argument naming the file and that the server can read the file.")));
	keys_check_file(fd, path, what);
	n = read(fd, buf, sizeof(buf) - 1);
	CloseTransientFile(fd);
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read %s \"%s\": %m", what, path)));

	if (codec_parse_hex_key(buf, n, key) != 0)
	{
		codec_secure_zero(buf, sizeof(buf));
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" does not hold a 256-bit key", what, path),
				 errdetail("The file must contain exactly 64 hexadecimal digits."),
				 errhint("Create one with \"openssl rand -hex 32\".")));
	}
	codec_secure_zero(buf, sizeof(buf));
	codec_key_fingerprint(key, key_id);
}

/* The key of a slot's file, from the slot while the file is unchanged. */
static void
keys_load_slot(KeySlot *slot, const char *path, const char *what, uint8 key[CODEC_KEY_LEN],
			   uint8 key_id[CODEC_KEY_FINGERPRINT_LEN])
{
	struct stat st;

	if (slot->valid && strcmp(slot->path, path) == 0 &&
		stat(path, &st) == 0 && st.st_size == slot->st.st_size &&
		st.st_mtim.tv_sec == slot->st.st_mtim.tv_sec &&
		st.st_mtim.tv_nsec == slot->st.st_mtim.tv_nsec && st.st_ino == slot->st.st_ino &&
		st.st_mode == slot->st.st_mode && st.st_uid == slot->st.st_uid)
	{
		memcpy(key, slot->key, CODEC_KEY_LEN);
		memcpy(key_id, slot->key_id, CODEC_KEY_FINGERPRINT_LEN);
		return;
	}
	if (slot->valid)
		codec_secure_zero(slot->key, sizeof(slot->key));
	slot->valid = false;

	keys_read_file(path, what, key, key_id);
	if (stat(path, &slot->st) == 0 && strlen(path) < MAXPGPATH)
	{
		strlcpy(slot->path, path, MAXPGPATH);
		memcpy(slot->key, key, CODEC_KEY_LEN);
		memcpy(slot->key_id, key_id, CODEC_KEY_FINGERPRINT_LEN);
		slot->valid = true;
	}
}

void
keys_load_master(uint8 key[CODEC_KEY_LEN], uint8 key_id[CODEC_KEY_FINGERPRINT_LEN])
{
	if (destor_master_key_file == NULL || destor_master_key_file[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("destor.master_key_file is not set"),
				 errdetail("destor encrypts every object with keys wrapped by a master key, and there is no default key."),
				 errhint("Create a key with \"openssl rand -hex 32 > /path/key; chmod 600 /path/key\", set destor.master_key_file = '/path/key' in postgresql.conf and reload.")));
	keys_load_slot(&master_slot, destor_master_key_file, "master key file", key, key_id);
}

/*
 * keys_previous_configured — is destor.previous_master_key_file set?
 */
bool
keys_previous_configured(void)
{
	return destor_previous_master_key_file != NULL && destor_previous_master_key_file[0] != '\0';
}

/*
 * keys_load_previous — the key of destor.previous_master_key_file (ERROR
 * when it is not set or not a good key file).
 */
void
keys_load_previous(uint8 key[CODEC_KEY_LEN], uint8 key_id[CODEC_KEY_FINGERPRINT_LEN])
{
	if (!keys_previous_configured())
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("destor.previous_master_key_file is not set")));
	keys_load_slot(&previous_slot, destor_previous_master_key_file, "previous master key file",
				   key, key_id);
}

/*
 * keys_load_by_id — the master key whose fingerprint is key_id: the
 * current one, or during a rotation the previous one.  False (key wiped)
 * when neither is that key; a key file that cannot be read is an ERROR as
 * for keys_load_master.  The previous file is read only when the current
 * key does not match, so a server that never rotated never touches it.
 */
bool
keys_load_by_id(const uint8 key_id[CODEC_KEY_FINGERPRINT_LEN], uint8 key[CODEC_KEY_LEN])
{
	uint8		id[CODEC_KEY_FINGERPRINT_LEN];

	keys_load_master(key, id);
	if (memcmp(id, key_id, CODEC_KEY_FINGERPRINT_LEN) == 0)
		return true;
	if (keys_previous_configured())
	{
		keys_load_previous(key, id);
		if (memcmp(id, key_id, CODEC_KEY_FINGERPRINT_LEN) == 0)
			return true;
	}
	codec_secure_zero(key, CODEC_KEY_LEN);
	return false;
}
