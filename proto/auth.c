/*
 * auth.c - nonces, HMAC-SHA256 proofs, the version check and token files,
 * all through libsodium: randombytes_buf for nonces and tokens,
 * crypto_auth_hmacsha256_{init,update,final} (the token is a key of any
 * length, not the fixed 32 bytes crypto_auth_hmacsha256() expects),
 * sodium_memcmp for constant-time comparison and sodium_memzero to wipe
 * every copy of the secret, including the read buffers and the hex text.
 *
 * Token files are checked on the open descriptor (fstat), not by path, so
 * the file checked is the file read.
 */
#include "proto/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct eg_proto_token {
	size_t len;
	uint8_t bytes[]; /* len bytes; not NUL-terminated */
};

int eg_proto_init(void)
{
	return sodium_init() < 0 ? EG_EMISSING_DEP : EG_OK;
}

void eg_proto_nonce(uint8_t nonce[EG_MSG_NONCE_LEN])
{
	randombytes_buf(nonce, EG_MSG_NONCE_LEN);
}

void eg_proto_proof(const eg_proto_token *t,
		    const uint8_t nonce[EG_MSG_NONCE_LEN],
		    uint8_t proof[EG_MSG_PROOF_LEN])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, t->bytes, t->len);
	crypto_auth_hmacsha256_update(&st, nonce, EG_MSG_NONCE_LEN);
	crypto_auth_hmacsha256_final(&st, proof);
	sodium_memzero(&st, sizeof(st));
}

int eg_proto_verify(const eg_proto_token *t,
		    const uint8_t nonce[EG_MSG_NONCE_LEN],
		    const uint8_t proof[EG_MSG_PROOF_LEN], eg_diag *diag)
{
	uint8_t want[EG_MSG_PROOF_LEN];
	int same;

	eg_proto_proof(t, nonce, want);
	same = sodium_memcmp(want, proof, EG_MSG_PROOF_LEN) == 0;
	sodium_memzero(want, sizeof(want));
	if (!same)
		return eg_diag_set(diag, EG_EAUTH,
				   "wrong proof: the peer does not hold this "
				   "deployment's token");
	return EG_OK;
}

int eg_proto_check_version(int64_t peer_version, eg_diag *diag)
{
	if (peer_version == EG_PROTO_VERSION)
		return EG_OK;
	return eg_diag_set(diag, EG_EVERSION,
			   "protocol version mismatch: peer speaks version "
			   "%lld, this build speaks version %d",
			   (long long)peer_version, EG_PROTO_VERSION);
}

int eg_proto_token_from(const void *bytes, size_t len, eg_proto_token **out,
			eg_diag *diag)
{
	eg_proto_token *t;

	*out = NULL;
	if (len < EG_PROTO_TOKEN_MIN)
		return eg_diag_set(diag, EG_EINVAL,
				   "token is %zu bytes; at least %d are "
				   "required", len, EG_PROTO_TOKEN_MIN);
	if (len > EG_PROTO_TOKEN_MAX)
		return eg_diag_set(diag, EG_ETOO_BIG,
				   "token is %zu bytes; at most %d are "
				   "allowed", len, EG_PROTO_TOKEN_MAX);
	t = malloc(sizeof(*t) + len);
	if (t == NULL)
		return eg_diag_set(diag, EG_ENOMEM, "no memory for the token");
	t->len = len;
	memcpy(t->bytes, bytes, len);
	*out = t;
	return EG_OK;
}

void eg_proto_token_free(eg_proto_token *t)
{
	if (t == NULL)
		return;
	sodium_memzero(t->bytes, t->len);
	free(t);
}

size_t eg_proto_token_len(const eg_proto_token *t)
{
	return t->len;
}

static size_t trim_right(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' ||
			 s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n;
}

static int load_file(const char *path, eg_proto_token **out, eg_diag *diag)
{
	char buf[EG_PROTO_TOKEN_MAX + 2];
	struct stat st;
	size_t n = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return eg_diag_set(diag, eg_err_from_errno(errno),
				   "token file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = eg_diag_set(diag, eg_err_from_errno(errno),
				 "token file %s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = eg_diag_set(diag, EG_EINVAL,
				 "token file %s is not a regular file", path);
		goto done;
	}
	if ((st.st_mode & 077) != 0) {
		rc = eg_diag_set(diag, EG_EPERM,
				 "token file %s has mode %04o, which lets "
				 "group or others read it; run chmod 600 %s",
				 path, (unsigned)(st.st_mode & 07777), path);
		goto done;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = eg_diag_set(diag, eg_err_from_errno(errno),
					 "token file %s: %s", path,
					 strerror(errno));
			goto done;
		}
		if (r == 0 || (n += (size_t)r) == sizeof(buf))
			break;
	}
	rc = eg_proto_token_from(buf, trim_right(buf, n), out, diag);
	if (rc != EG_OK)
		eg_diag_prefix(diag, rc, "token file %s", path);
done:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

int eg_proto_token_load(const char *path, eg_proto_token **out,
			eg_diag *diag)
{
	const char *env = getenv(EG_PROTO_TOKEN_ENV);
	int rc;

	*out = NULL;
	if (env != NULL && env[0] != '\0') {
		rc = eg_proto_token_from(env, trim_right(env, strlen(env)),
					 out, diag);
		return rc == EG_OK ? rc
				   : eg_diag_prefix(diag, rc, "%s",
						    EG_PROTO_TOKEN_ENV);
	}
	if (path == NULL)
		return eg_diag_set(diag, EG_ENOENT,
				   "no token: %s is not set",
				   EG_PROTO_TOKEN_ENV);
	return load_file(path, out, diag);
}

/* fsyncs the directory holding `path`, so the new entry survives a crash. */
static void sync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd;

	if (slash == NULL) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else if ((size_t)(slash - path) < sizeof(dir)) {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	} else {
		return;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int eg_proto_token_generate(const char *path, eg_proto_token **out,
			    eg_diag *diag)
{
	uint8_t raw[32];
	char hex[2 * sizeof(raw) + 2];
	size_t len, off = 0;
	int fd, rc = EG_OK;

	if (out != NULL)
		*out = NULL;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		return eg_diag_set(diag, eg_err_from_errno(errno),
				   "cannot create token file %s: %s", path,
				   strerror(errno));
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	len = 2 * sizeof(raw);
	hex[len] = '\n';
	/* The umask can only clear bits of 0600, but be explicit anyway. */
	if (fchmod(fd, 0600) != 0)
		goto io_err;
	while (off < len + 1) {
		ssize_t w = write(fd, hex + off, len + 1 - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto io_err;
		off += (size_t)w;
	}
	if (fsync(fd) != 0)
		goto io_err;
	if (close(fd) != 0) {
		fd = -1;
		goto io_err;
	}
	fd = -1;
	sync_parent(path);
	if (out != NULL)
		rc = eg_proto_token_from(hex, len, out, diag);
	goto done;

io_err:
	rc = eg_diag_set(diag, eg_err_from_errno(errno),
			 "cannot write token file %s: %s", path,
			 strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(path);
done:
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(hex, sizeof(hex));
	return rc;
}
