/*
 * cluster.h - the embedded PostgreSQL cluster under $EXPGRID_HOME.
 *
 * Layout: $EXPGRID_HOME (default ./var) holds pg/ (the data directory),
 * run/ (the Unix socket directory) and log/postgres.log.  The server listens
 * on its private socket only (listen_addresses = ''), with trust
 * authentication on that socket and fsync on.
 *
 * PostgreSQL refuses to run as root, so as root initdb and the server run as
 * the `postgres` system user.  When that user cannot reach $EXPGRID_HOME
 * (a checkout under a 0700 /root) or the socket path would be too long for
 * sun_path, pg/ and run/ are symlinks into /var/tmp/expgrid-<hash of the
 * absolute home>/, a postgres-owned directory; the symlinks are the record
 * that `db url`, `db stop` and `down` follow.
 *
 * Processes are started with fork/exec and explicit argv, never a shell.
 * The server is started directly (not through pg_ctl, whose -o/-l strings
 * go through /bin/sh) in its own session so it outlives the caller; start
 * waits until it accepts connections and reports the log's tail on failure.
 * A postmaster.pid whose process is gone is removed before starting.
 * Start and stop hold an flock on $EXPGRID_HOME/cluster.lock, so concurrent
 * `db start`s are safe.  An eg_cluster is used by one thread at a time.
 */
#ifndef EG_STORE_CLUSTER_H
#define EG_STORE_CLUSTER_H

#include <stdbool.h>

#include "common/err.h"

typedef struct eg_cluster eg_cluster;

/* Resolves the layout for `home` (NULL: $EXPGRID_HOME, else ./var), creating
 * the home directory if needed; starts nothing.  Caller frees with
 * eg_cluster_free. */
int eg_cluster_open(const char *home, eg_cluster **out, eg_diag *d);
void eg_cluster_free(eg_cluster *c); /* accepts NULL; stops nothing */

/* initdb on first use, then starts the server and waits (up to 60 s) until
 * it accepts connections and the `expgrid` database exists.  Idempotent: a
 * running server is left alone.  Does not migrate (see eg_store_migrate). */
int eg_cluster_start(eg_cluster *c, eg_diag *d);
/* Fast shutdown (SIGINT), waiting up to 60 s; *was_running (may be NULL)
 * tells whether there was a server.  Stopping a stopped cluster is OK. */
int eg_cluster_stop(eg_cluster *c, bool *was_running, eg_diag *d);
/* Whether the server accepts connections now. */
bool eg_cluster_running(const eg_cluster *c);
/* Whether initdb has run. */
bool eg_cluster_initialized(const eg_cluster *c);

/* A postgresql:// URI that libpq and psql accept (owned by c). */
const char *eg_cluster_url(const eg_cluster *c);
const char *eg_cluster_home(const eg_cluster *c);     /* absolute */
const char *eg_cluster_data_dir(const eg_cluster *c); /* real path */
const char *eg_cluster_log_path(const eg_cluster *c);

/* The PostgreSQL server binaries' directory (pg_config --bindir, else the
 * newest /usr/lib/postgresql/N/bin) into out; EG_EMISSING_DEP if none. */
int eg_cluster_bindir(char *out, size_t outlen, eg_diag *d);

#endif
