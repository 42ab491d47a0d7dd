/*
 * migrate.c - the migrations runner: migrations/NNNN_name.sql applied in
 * version order, each in its own transaction together with its row in
 * schema_migrations (version, name, SHA-256 checksum, applied_at).
 *
 * Invariants: a version is recorded if and only if its file's statements
 * committed; a recorded checksum never changes.  An applied file that was
 * edited, or a recorded version with no file, stops the run before anything
 * is applied, because the database no longer matches what the code expects.
 * Concurrent runners (two `submit`s on a fresh database) serialize on a
 * session-level advisory lock.  Migration files must not contain BEGIN or
 * COMMIT: the runner owns the transaction.  The file text is the only SQL
 * sent unparametrized, and it is the project's own code, not a value.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hash.h"
#include "store/store_int.h"

/* Any constant identifies expgrid's migration lock among advisory locks. */
#define MIGRATE_LOCK "7120305190411"

int eg_store_migrations_dir(char *out, size_t outlen, eg_diag *d)
{
	const char *env = getenv("EXPGRID_MIGRATIONS");
	static const char *const rel[] = {"/../migrations", "/../../migrations"};
	char exe[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (env != NULL && env[0] != '\0') {
		snprintf(out, outlen, "%s", env);
		return EG_OK;
	}
	/* bin/expgrid and build-dir/tests/ sit one and two levels below the
	 * repository root. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(out, outlen, "%s%s", exe, rel[i]);
			if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
				return EG_OK;
		}
	}
	snprintf(out, outlen, "migrations");
	if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
		return EG_OK;
	return eg_diag_set(d, EG_ENOENT,
			   "migrations directory not found (set "
			   "EXPGRID_MIGRATIONS)");
}

struct migration {
	int version;
	char name[256];
	char checksum[65];
	char *sql;
};

static int is_migration(const struct dirent *e)
{
	const char *n = e->d_name;
	size_t len = strlen(n);

	return len > 9 && strspn(n, "0123456789") == 4 && n[4] == '_' &&
	       strcmp(n + len - 4, ".sql") == 0;
}

static int read_file(const char *path, char **out)
{
	FILE *f = fopen(path, "rb");
	long size;
	char *buf = NULL;
	int rc = EG_EIO;

	*out = NULL;
	if (f == NULL)
		return eg_err_from_errno(errno);
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto out;
	buf = malloc((size_t)size + 1);
	if (buf == NULL) {
		rc = EG_ENOMEM;
		goto out;
	}
	if (fread(buf, 1, (size_t)size, f) != (size_t)size)
		goto out;
	buf[size] = '\0';
	*out = buf;
	buf = NULL;
	rc = EG_OK;
out:
	free(buf);
	fclose(f);
	return rc;
}

/* Loads every migration file of dir, sorted by version. */
static int load_migrations(const char *dir, struct migration **out, int *n,
			   eg_diag *d)
{
	struct dirent **ents = NULL;
	struct migration *m = NULL;
	char path[PATH_MAX];
	int count, rc = EG_OK;

	*out = NULL;
	*n = 0;
	count = scandir(dir, &ents, is_migration, alphasort);
	if (count < 0)
		return eg_diag_set(d, eg_err_from_errno(errno), "%s: %s", dir,
				   strerror(errno));
	m = calloc((size_t)count + 1, sizeof(*m));
	if (m == NULL) {
		rc = eg_diag_set(d, EG_ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < count; i++) {
		m[i].version = atoi(ents[i]->d_name);
		snprintf(m[i].name, sizeof(m[i].name), "%s", ents[i]->d_name);
		if (i > 0 && m[i].version == m[i - 1].version) {
			rc = eg_diag_set(d, EG_EINVAL,
					 "%s: two migrations numbered %04d",
					 dir, m[i].version);
			goto out;
		}
		if (snprintf(path, sizeof(path), "%s/%s", dir,
			     ents[i]->d_name) >= (int)sizeof(path)) {
			rc = eg_diag_set(d, EG_ETOO_BIG, "%s: path too long",
					 dir);
			goto out;
		}
		rc = read_file(path, &m[i].sql);
		if (rc != EG_OK) {
			eg_diag_set(d, rc, "%s: %s", path, eg_strerror(rc));
			goto out;
		}
		eg_hash_sha256_hex(m[i].sql, strlen(m[i].sql), m[i].checksum);
	}
	*out = m;
	*n = count;
	m = NULL;
out:
	for (int i = 0; i < count; i++)
		free(ents[i]);
	free(ents);
	if (m != NULL) {
		for (int i = 0; i < count; i++)
			free(m[i].sql);
		free(m);
	}
	return rc;
}

/* Checks what is recorded against the files; marks applied ones (sql freed
 * and set to NULL). */
static int check_applied(eg_store *s, struct migration *m, int n, eg_diag *d)
{
	PGresult *res;
	int rc = EG_OK;

	res = eg__store_exec(s,
			     "SELECT version, name, checksum FROM "
			     "schema_migrations ORDER BY version",
			     0, NULL, PGRES_TUPLES_OK, d);
	if (res == NULL)
		return EG_EDB;
	for (int r = 0; r < PQntuples(res) && rc == EG_OK; r++) {
		int version = atoi(PQgetvalue(res, r, 0));
		const char *sum = PQgetvalue(res, r, 2);
		int i;

		for (i = 0; i < n && m[i].version != version; i++)
			;
		if (i == n) {
			rc = eg_diag_set(d, EG_ECORRUPT,
					 "the database has migration %s, which "
					 "is not in this expgrid's migrations "
					 "(a newer expgrid made it?)",
					 PQgetvalue(res, r, 1));
		} else if (strcmp(sum, m[i].checksum) != 0) {
			rc = eg_diag_set(d, EG_ECORRUPT,
					 "migration %s was edited after it was "
					 "applied (checksum %.12s in the "
					 "database, %.12s on disk); restore it "
					 "and put the change in a new migration",
					 m[i].name, sum, m[i].checksum);
		} else {
			free(m[i].sql);
			m[i].sql = NULL;
		}
	}
	PQclear(res);
	return rc;
}

static int apply_one(eg_store *s, const struct migration *m, eg_diag *d)
{
	char version[16];
	const char *p[3] = {version, m->name, m->checksum};
	PGresult *res;

	if (eg__store_cmd(s, "BEGIN", d) != EG_OK)
		return EG_EDB;
	res = PQexec(s->conn, m->sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		eg__store_fail(s, res, d);
		PQclear(res);
		PQclear(PQexec(s->conn, "ROLLBACK"));
		return eg_diag_prefix(d, EG_EDB, "migration %s", m->name);
	}
	PQclear(res);
	snprintf(version, sizeof(version), "%d", m->version);
	res = eg__store_exec(s,
			     "INSERT INTO schema_migrations (version, name, "
			     "checksum) VALUES ($1, $2, $3)",
			     3, p, PGRES_COMMAND_OK, d);
	if (res == NULL) {
		PQclear(PQexec(s->conn, "ROLLBACK"));
		return EG_EDB;
	}
	PQclear(res);
	return eg__store_cmd(s, "COMMIT", d);
}

int eg_store_migrate(eg_store *s, const char *dir, int *applied, eg_diag *d)
{
	char dirbuf[PATH_MAX];
	struct migration *m = NULL;
	int n = 0, done = 0, rc;
	bool locked = false;

	if (applied != NULL)
		*applied = 0;
	if (dir == NULL) {
		rc = eg_store_migrations_dir(dirbuf, sizeof(dirbuf), d);
		if (rc != EG_OK)
			return rc;
		dir = dirbuf;
	}
	rc = load_migrations(dir, &m, &n, d);
	if (rc != EG_OK)
		return rc;
	{
		PGresult *res = eg__store_exec(
			s, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", 0,
			NULL, PGRES_TUPLES_OK, d);

		if (res == NULL) {
			rc = EG_EDB;
			goto out;
		}
		PQclear(res);
	}
	locked = true;
	rc = eg__store_cmd(s,
			   "CREATE TABLE IF NOT EXISTS schema_migrations ("
			   "version integer PRIMARY KEY, "
			   "name text NOT NULL, "
			   "checksum text NOT NULL, "
			   "applied_at timestamptz NOT NULL DEFAULT now())",
			   d);
	if (rc != EG_OK)
		goto out;
	rc = check_applied(s, m, n, d);
	for (int i = 0; i < n && rc == EG_OK; i++) {
		if (m[i].sql == NULL)
			continue;
		rc = apply_one(s, &m[i], d);
		if (rc == EG_OK)
			done++;
	}
out:
	if (locked) {
		PGresult *res = PQexec(s->conn, "SELECT pg_advisory_unlock("
						MIGRATE_LOCK ")");
		PQclear(res);
	}
	for (int i = 0; i < n; i++)
		free(m[i].sql);
	free(m);
	if (applied != NULL)
		*applied = done;
	return rc;
}
