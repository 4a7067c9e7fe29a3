/*
 * key_rotation.c — re-wrapping data keys under a new master key.
 *
 * Rotating the master key changes no byte on any provider: every object has
 * its own data key, and the master key only wraps that data key in the
 * object's catalog row (objects.wrapped_key, with objects.key_id naming the
 * wrapping key by fingerprint).  Shard trailers carry tags and a footer,
 * never a wrapped key, so re-wrapping the catalog rows is the whole
 * rotation (see docs/ARCHITECTURE.md, "Master key rotation").
 *
 * A rotation runs with the server configured for it: destor.master_key_file
 * names the new key (so every session wraps new objects under it and can
 * read objects re-wrapped under it at once) and
 * destor.previous_master_key_file the key being retired (so every session
 * still reads what is not re-wrapped yet).  This file checks that the
 * configuration and the new key file agree and re-wraps one data key at a
 * time; src/maintenance/rotate_keys.c walks the catalog.
 */
#include "postgres.h"

#include "destor/object.h"

struct KeyRotation
{
	uint8		new_key[CODEC_KEY_LEN];
	uint8		new_id[CODEC_KEY_FINGERPRINT_LEN];
	uint8		old_key[CODEC_KEY_LEN];
	uint8		old_id[CODEC_KEY_FINGERPRINT_LEN];
};

/* Wipes the keys when the memory goes, whether the rotation ended or failed. */
static void
key_rotation_wipe(void *arg)
{
	codec_secure_zero(arg, sizeof(KeyRotation));
}

/*
 * key_rotation_begin — the keys of a rotation to the key in new_key_file,
 * checked against the configuration: the new key must be the one of
 * destor.master_key_file, and destor.previous_master_key_file must name
 * another key.  Keys live in CurrentMemoryContext and are wiped with it.
 */
KeyRotation *
key_rotation_begin(const char *new_key_file)
{
	KeyRotation *kr = palloc0(sizeof(KeyRotation));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));
	uint8		cur_key[CODEC_KEY_LEN];
	uint8		cur_id[CODEC_KEY_FINGERPRINT_LEN];
	bool		is_current;

	cb->func = key_rotation_wipe;
	cb->arg = kr;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);

	keys_read_file(new_key_file, "new master key file", kr->new_key, kr->new_id);
	keys_load_master(cur_key, cur_id);
	is_current = memcmp(cur_id, kr->new_id, CODEC_KEY_FINGERPRINT_LEN) == 0;
	codec_secure_zero(cur_key, sizeof(cur_key));

	if (!keys_previous_configured())
	{
		if (is_current)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the new master key is the key already in use"),
					 errdetail("The file \"%s\" holds the key of destor.master_key_file, and destor.previous_master_key_file names no key to rotate from.",
							   new_key_file),
					 errhint("Create a new key with \"openssl rand -hex 32\" (mode 0600), set destor.master_key_file to it and destor.previous_master_key_file to the old key file, reload, and call destor.rotate_master_key() with the new file.")));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the server is not configured for a rotation to master key file \"%s\"",
						new_key_file),
				 errdetail("Data keys are re-wrapped under the key of destor.master_key_file, which every session then uses for new objects, while destor.previous_master_key_file keeps the old key readable."),
				 errhint("Set destor.master_key_file = '%s' and destor.previous_master_key_file to the old key file in postgresql.conf, reload, and call destor.rotate_master_key() again.",
						 new_key_file)));
	}

	keys_load_previous(kr->old_key, kr->old_id);
	if (memcmp(kr->old_id, kr->new_id, CODEC_KEY_FINGERPRINT_LEN) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the new master key is the same as the previous master key"),
				 errdetail("The file \"%s\" and destor.previous_master_key_file hold the same key, so a rotation would change nothing.",
						   new_key_file),
				 errhint("Create a new key with \"openssl rand -hex 32\" (mode 0600) and rotate to it.")));
	if (!is_current)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("master key file \"%s\" does not hold the key of destor.master_key_file",
						new_key_file),
				 errdetail("Data keys are re-wrapped under the key of destor.master_key_file, which every session then uses for new objects, while destor.previous_master_key_file keeps the old key readable."),
				 errhint("Set destor.master_key_file = '%s' in postgresql.conf, reload, and call destor.rotate_master_key() again.",
						 new_key_file)));
	return kr;
}

/* The fingerprint of the key data keys are rotated to. */
const uint8 *
key_rotation_new_key_id(const KeyRotation *kr)
{
	return kr->new_id;
}

/*
 * key_rotation_rewrap — the data key of object id (format key_version),
 * wrapped under the previous master key as wrapped, unwrapped and wrapped
 * again under the new key into out, with the same associated data (object
 * id and format).  An object wrapped by a third key, or whose wrapped key
 * does not authenticate, is an ERROR: it is not readable now either.
 */
void
key_rotation_rewrap(const KeyRotation *kr, const uint8 id[CODEC_OBJID_LEN], int key_version,
					const uint8 key_id[CODEC_KEY_FINGERPRINT_LEN],
					const uint8 wrapped[CODEC_WRAPPED_KEY_LEN],
					uint8 out[CODEC_WRAPPED_KEY_LEN])
{
	uint8		aad[CODEC_OBJID_LEN + 4];
	uint8		dek[CODEC_KEY_LEN];
	int			rc;

	if (memcmp(key_id, kr->old_id, CODEC_KEY_FINGERPRINT_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("object %s was written with a master key that is neither the previous nor the new one",
						object_id_text(id)),
				 errdetail("Its data key can be re-wrapped only by the key that wrapped it."),
				 errhint("Set destor.previous_master_key_file to the key that wrapped it, reload, and call destor.rotate_master_key() again.")));
	memcpy(aad, id, CODEC_OBJID_LEN);
	aad[CODEC_OBJID_LEN] = (uint8) (key_version >> 24);
	aad[CODEC_OBJID_LEN + 1] = (uint8) (key_version >> 16);
	aad[CODEC_OBJID_LEN + 2] = (uint8) (key_version >> 8);
	aad[CODEC_OBJID_LEN + 3] = (uint8) key_version;
	if (codec_key_unwrap(kr->old_key, aad, sizeof(aad), wrapped, dek) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not unwrap the data key of object %s", object_id_text(id)),
				 errdetail("The wrapped key in the catalog does not authenticate under the previous master key."),
				 errhint("The catalog row may have been altered; restore it from a backup.")));
	rc = codec_key_wrap(kr->new_key, aad, sizeof(aad), dek, out);
	codec_secure_zero(dek, sizeof(dek));
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not wrap the data key of object %s", object_id_text(id))));
}
