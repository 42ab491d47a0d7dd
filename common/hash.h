/*
 * hash.h - content hashes (trial keys, grid spec hashes, migration
 * checksums).  SHA-256 from libsodium; expgrid writes no hash function of its
 * own.
 */
#ifndef EG_HASH_H
#define EG_HASH_H

#include <stddef.h>

/* Hex digits in a trial key: the first 128 bits of SHA-256. */
#define EG_KEY_HEX 32

/* Full SHA-256 of `len` bytes as 64 lowercase hex digits plus NUL. */
int eg_hash_sha256_hex(const void *data, size_t len, char out[65]);
/* The first EG_KEY_HEX hex digits of the SHA-256 (a trial key). */
int eg_hash_key_hex(const void *data, size_t len, char out[EG_KEY_HEX + 1]);

#endif
