-- 0002_artifacts.sql - what one trial hands to another, and the index that
-- lets a grid hold trials of more than one target.
--
-- Two-stage trials (docs/coverify.md, "On the cluster"): a coverify trial
-- whose grid targets `fpga:<type>` depends on a companion `train` trial
-- (target cpu, inserted with it at submit).  The train trial's result
-- carries its trained network; the coordinator keeps it here, out of
-- `results`, because it is an input of another trial rather than a result
-- anyone queries, and hands it to the dependent trial inside its ASSIGN
-- params.  `data` is the tree trials/coverify.h describes (format,
-- layers with base64 little-endian float32 weights).

CREATE TABLE artifacts (
	trial_id   bigint      NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
	name       text        NOT NULL,               -- 'network'
	data       jsonb       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (trial_id, name)
);

-- The scheduler asks "has grid G a pending trial for target T?" for grids
-- whose own target is not T (companion train trials of an fpga grid run on
-- cpu workers); this answers it with one index probe.
CREATE INDEX trials_pending_grid ON trials (grid_id, target, id)
	WHERE state = 'pending';
