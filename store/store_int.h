/*
 * store_int.h - internals shared by the store/ sources: the connection object and
 * the libpq error helpers.  Not for use outside store/.
 */
#ifndef EG_STORE_INT_H
#define EG_STORE_INT_H

#include <libpq-fe.h>

#include "store/store.h"

struct eg_store {
	PGconn *conn;
};

/* Executes a parametrized statement (text params, text results); on failure
 * returns NULL with EG_EDB and PostgreSQL's message in d.  `want` is the
 * expected status (PGRES_COMMAND_OK or PGRES_TUPLES_OK). */
PGresult *eg__store_exec(eg_store *s, const char *sql, int nparams,
			 const char *const *params, ExecStatusType want,
			 eg_diag *d);
/* Runs a statement without results (BEGIN, COMMIT, ...). */
int eg__store_cmd(eg_store *s, const char *sql, eg_diag *d);
/* Records PostgreSQL's message for a failed result into d; returns EG_EDB. */
int eg__store_fail(eg_store *s, const PGresult *res, eg_diag *d);

/* An eg_store_rows over res (names and kinds from the result's columns);
 * on success the rows own res, on failure the caller still does. */
int eg__store_rows_new(PGresult *res, eg_store_rows **out, eg_diag *d);

#endif
