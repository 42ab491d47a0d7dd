-- 0001_init.sql - expgrid's results database, first version.
--
-- This schema is expgrid's public API for results (docs/schema.md documents
-- every table and view with example queries).  Applied once, in one
-- transaction, by `expgrid db migrate`; its checksum is recorded in
-- schema_migrations and an edited copy is refused, so never edit this file
-- after a release: add 0002_<what>.sql instead.
--
-- States are text with CHECK constraints rather than enums so that psql,
-- notebooks and BI tools read them without casts, and a later migration can
-- add a state without ALTER TYPE.

CREATE TABLE grids (
	id           bigserial PRIMARY KEY,
	name         text        NOT NULL,
	spec         text        NOT NULL,          -- the grid file as submitted
	spec_hash    text        NOT NULL,          -- SHA-256 of the canonical grid
	target       text        NOT NULL DEFAULT 'cpu',
	max_attempts integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
	priority     integer     NOT NULL DEFAULT 0,
	state        text        NOT NULL DEFAULT 'active'
	             CHECK (state IN ('active', 'done', 'cancelled')),
	trial_count  integer     NOT NULL DEFAULT 0,
	created_at   timestamptz NOT NULL DEFAULT now(),
	-- The same grid (same name, same canonical content) is one row:
	-- submitting it again returns this row's id.
	CONSTRAINT grids_name_hash_key UNIQUE (name, spec_hash)
);
CREATE INDEX grids_name ON grids (name, created_at DESC);

CREATE TABLE trials (
	id            bigserial PRIMARY KEY,
	grid_id       bigint      NOT NULL REFERENCES grids (id) ON DELETE CASCADE,
	idx           integer     NOT NULL,          -- position in expansion order
	key           text        NOT NULL,          -- hash of the canonical params
	params        jsonb       NOT NULL,
	kind          text        NOT NULL DEFAULT 'train',
	target        text        NOT NULL DEFAULT 'cpu',
	state         text        NOT NULL DEFAULT 'pending'
	              CHECK (state IN ('pending', 'leased', 'running', 'done',
	                               'failed', 'cancelled')),
	attempts      integer     NOT NULL DEFAULT 0,
	max_attempts  integer     NOT NULL DEFAULT 3,
	lease_owner   text,
	lease_expires timestamptz,
	depends_on    bigint      REFERENCES trials (id) ON DELETE SET NULL,
	created_at    timestamptz NOT NULL DEFAULT now(),
	started_at    timestamptz,
	finished_at   timestamptz,
	last_error    text,
	CONSTRAINT trials_grid_key UNIQUE (grid_id, key)
);
-- Status counts and cancel: by grid and state.
CREATE INDEX trials_grid_state ON trials (grid_id, state);
-- The scheduler's question: the next pending trials for a target.
CREATE INDEX trials_pending ON trials (target, id) WHERE state = 'pending';
-- Expired leases to reclaim.
CREATE INDEX trials_lease ON trials (lease_expires)
	WHERE state IN ('leased', 'running');
-- Users look a trial up by key across grids.
CREATE INDEX trials_key ON trials (key);
CREATE INDEX trials_depends_on ON trials (depends_on) WHERE depends_on IS NOT NULL;

CREATE TABLE results (
	trial_id   bigint      PRIMARY KEY REFERENCES trials (id) ON DELETE CASCADE,
	attempt    integer     NOT NULL,
	metrics    jsonb       NOT NULL DEFAULT '{}',  -- final metrics by name
	curve      jsonb,                              -- [{epoch, ...}, ...]
	rounds     jsonb,                              -- lottery rounds
	layers     jsonb,                              -- coverify layers
	wall_s     double precision,
	agent      text,                               -- who ran it
	created_at timestamptz NOT NULL DEFAULT now()
);

-- Curves, one row per (trial, attempt, epoch or round, metric).  This is the
-- high-volume table: no foreign key and one index, so ingest through COPY
-- stays far above 300,000 rows/s; rows of deleted trials are removed by
-- the trigger below instead.
CREATE TABLE metrics (
	trial_id bigint           NOT NULL,
	attempt  integer          NOT NULL DEFAULT 0,
	epoch    integer,
	round    integer,
	name     text             NOT NULL,
	value    double precision
);
CREATE INDEX metrics_trial ON metrics (trial_id, name);

-- One statement-level trigger (transition table), not one per row, so
-- deleting a 100,000-trial grid is one join rather than 100,000 lookups.
CREATE FUNCTION expgrid_trials_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM metrics m USING deleted_trials o WHERE m.trial_id = o.id;
	RETURN NULL;
END $$;
CREATE TRIGGER trials_delete_metrics AFTER DELETE ON trials
	REFERENCING OLD TABLE AS deleted_trials
	FOR EACH STATEMENT EXECUTE FUNCTION expgrid_trials_deleted();

-- Co-verification: what each paradigm computed at each layer ...
CREATE TABLE layer_outputs (
	trial_id      bigint  NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
	layer         integer NOT NULL,              -- 0-based, network order
	name          text    NOT NULL,              -- dense1, relu1, ...
	source        text    NOT NULL
	              CHECK (source IN ('software', 'design', 'hardware')),
	n             integer,                       -- number of values
	checksum      text,
	est_cycles    bigint,                        -- hardware only
	est_energy_nj double precision,              -- hardware only
	data          bytea,                         -- optional raw values
	PRIMARY KEY (trial_id, layer, source)
);

-- ... and how far each pair of paradigms agrees there.
CREATE TABLE layer_similarity (
	trial_id   bigint  NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
	layer      integer NOT NULL,
	name       text    NOT NULL,
	pair       text    NOT NULL
	           CHECK (pair IN ('software-design', 'design-hardware',
	                           'software-hardware')),
	s_tol      double precision,   -- share of values within tolerance
	s_bit      double precision,   -- share of bit-exact values
	max_abs    double precision,
	rel_l2     double precision,
	top1_agree double precision,   -- final layer only
	PRIMARY KEY (trial_id, layer, pair)
);

CREATE TABLE agents (
	id           bigserial PRIMARY KEY,
	name         text        NOT NULL UNIQUE,
	role         text        NOT NULL CHECK (role IN ('worker', 'hwagent')),
	capabilities jsonb       NOT NULL DEFAULT '[]',
	address      text,
	state        text        NOT NULL DEFAULT 'connected'
	             CHECK (state IN ('connected', 'disconnected')),
	connected_at timestamptz NOT NULL DEFAULT now(),
	last_seen    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE boards (
	id         bigserial PRIMARY KEY,
	agent_id   bigint      NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
	name       text        NOT NULL,
	type       text        NOT NULL,
	backend    text        NOT NULL CHECK (backend IN ('sim', 'exec')),
	state      text        NOT NULL DEFAULT 'idle'
	           CHECK (state IN ('idle', 'reserved', 'running')),
	health     text        NOT NULL DEFAULT 'unknown'
	           CHECK (health IN ('good', 'unknown', 'bad', 'maintenance')),
	last_check timestamptz,
	last_error text,
	CONSTRAINT boards_agent_name UNIQUE (agent_id, name)
);

-- One row per trial: the grid, the state, the parameters users filter on
-- most as typed columns, and the final metrics as typed columns.  The full
-- params and metrics stay available as jsonb for anything not listed.
CREATE VIEW trial_summary AS
SELECT
	t.id                                             AS trial_id,
	t.grid_id,
	g.name                                           AS grid_name,
	t.idx,
	t.key,
	t.kind,
	t.target,
	t.state,
	t.attempts,
	(t.params ->> 'seed')::bigint                    AS seed,
	t.params #>> '{dataset,name}'                    AS dataset,
	t.params #>> '{model,arch}'                      AS arch,
	t.params #>> '{model,activation}'                AS activation,
	t.params #> '{model,hidden}'                     AS hidden,
	t.params #>> '{init,scheme}'                     AS init_scheme,
	(t.params #>> '{init,scale}')::double precision  AS init_scale,
	t.params #>> '{train,algo}'                      AS algo,
	t.params #>> '{train,loss}'                      AS loss,
	t.params #>> '{train,optimizer}'                 AS optimizer,
	(t.params #>> '{train,lr}')::double precision    AS lr,
	(t.params #>> '{train,batch}')::integer          AS batch,
	(t.params #>> '{train,epochs}')::integer         AS epochs,
	(t.params #>> '{prune,rate}')::double precision  AS prune_rate,
	(t.params #>> '{hls,word_bits}')::integer        AS word_bits,
	(t.params #>> '{hls,int_bits}')::integer         AS int_bits,
	(r.metrics ->> 'train_acc')::double precision    AS train_acc,
	(r.metrics ->> 'test_acc')::double precision     AS test_acc,
	(r.metrics ->> 'train_loss')::double precision   AS train_loss,
	(r.metrics ->> 'test_loss')::double precision    AS test_loss,
	(r.metrics ->> 'sparsity')::double precision     AS sparsity,
	(r.metrics ->> 'align_repr')::double precision   AS align_repr,
	(r.metrics ->> 'align_grad')::double precision   AS align_grad,
	(r.metrics ->> 'best_epoch')::integer            AS best_epoch,
	r.wall_s,
	r.agent,
	t.params,
	r.metrics,
	t.last_error,
	t.created_at,
	t.finished_at
FROM trials t
JOIN grids g ON g.id = t.grid_id
LEFT JOIN results r ON r.trial_id = t.id;

-- Per grid, layer and pair of paradigms: how closely software, HLS design
-- and hardware agree, over every trial that reported that layer.
CREATE VIEW paradigm_comparison AS
SELECT
	t.grid_id,
	s.layer,
	s.name,
	s.pair,
	count(*)          AS trials,
	avg(s.s_tol)      AS s_tol_mean,
	min(s.s_tol)      AS s_tol_min,
	avg(s.s_bit)      AS s_bit_mean,
	min(s.s_bit)      AS s_bit_min,
	max(s.max_abs)    AS max_abs,
	avg(s.rel_l2)     AS rel_l2_mean,
	max(s.rel_l2)     AS rel_l2_max,
	avg(s.top1_agree) AS top1_agree_mean
FROM layer_similarity s
JOIN trials t ON t.id = s.trial_id
GROUP BY t.grid_id, s.layer, s.name, s.pair;
