/* hash.c - SHA-256 through libsodium. */
#include "common/hash.h"

#include <sodium.h>
#include <string.h>

#include "common/err.h"

int eg_hash_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char digest[crypto_hash_sha256_BYTES];

	if (sodium_init() < 0)
		return EG_ENOTSUP;
	crypto_hash_sha256(digest, data, len);
	sodium_bin2hex(out, 65, digest, sizeof(digest));
	return EG_OK;
}

int eg_hash_key_hex(const void *data, size_t len, char out[EG_KEY_HEX + 1])
{
	char full[65];
	int rc = eg_hash_sha256_hex(data, len, full);

	if (rc != EG_OK)
		return rc;
	memcpy(out, full, EG_KEY_HEX);
	out[EG_KEY_HEX] = '\0';
	return EG_OK;
}
