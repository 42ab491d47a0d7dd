/*
 * coverify.h - the co-verification trial's pieces that a board farm needs:
 * the trained network as data, and stage 2 of `kind: coverify` with the
 * hardware paradigm supplied by the caller.
 *
 * On the cluster a coverify trial is the second stage of a two-stage
 * dependency (docs/coverify.md, "On the cluster"): a train trial on a cpu
 * worker trains the network and returns it in its result as `network`
 * (eg_coverify_network_export, asked for by the coordinator with the
 * internal parameter `export_network: true`); the hardware agent that owns
 * a board of the grid's type gets the network inside the coverify trial's
 * ASSIGN params, rebuilds it (eg_coverify_network_import into a network
 * made from the same model.* and init.* parameters) and runs stage 2
 * through eg_coverify_run_network, computing the software and design
 * outputs itself and the hardware outputs on its board through a
 * eg_coverify_hw_fn.  `expgrid run --local` runs the same stage 2 with a
 * fresh sim board per trial (eg_coverify_hw_sim).
 *
 * Network format (a value tree, so it travels as msgpack and is stored as
 * jsonb): {"format": "f32le-base64", "layers": [{"kind": "dense" |
 * "circulant" | "conv", "nw": N, "w": "<base64>", "nb": M, "b":
 * "<base64>" | null}, ...]} where w and b are the layer's stored parameters
 * (eg_net_params' layout) as little-endian IEEE binary32, base64 (RFC 4648,
 * with padding).  Base64 keeps a 784-128-64-10 MLP (~110,000 floats) at
 * about 600 KB, far below the 16 MiB frame limit, and bit-exact.
 *
 * Threading: eg_coverify_run_network may run in several threads of one
 * process at once (a hardware agent runs one job per board); it serializes
 * the dataset cache internally.  Everything else follows trials.h.
 */
#ifndef EG_TRIALS_COVERIFY_H
#define EG_TRIALS_COVERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/value.h"
#include "kernels/board_sim.h"
#include "kernels/net.h"
#include "kernels/qdense.h"
#include "trials/trials.h"

/*
 * One hardware run, filled by eg_coverify_run_network (the "in" fields and
 * the output arrays, sized for the network) and by the backend (the "out"
 * fields).  The arrays are packed like kernels/qdense.h packs them.
 */
typedef struct eg_coverify_hw {
	/* in */
	eg_act act;
	const eg_qdense_layer *layers; /* the dense stack (circulant layers
					  expanded), borrowed */
	int n_layers;
	const int *blocks;             /* circulant block size per layer, 0 */
	const eg_qdense_types *types;  /* the trial's hls.* (the design's) */
	const eg_board_fault *fault;   /* coverify.fault, or NULL */
	const float *x;                /* n probes x layers[0].cols */
	size_t n;
	const volatile int *cancel;
	/* out: caller-allocated arrays the backend fills */
	int64_t *codes;                /* outputs_len codes */
	double *values;                /* outputs_len values */
	uint64_t *overflows;           /* per output layer (zeroed) */
	eg_board_est *est;             /* per output layer (zeroed) */
	/* out: set by the backend */
	eg_board_est total;
	double clock_mhz;              /* for est_latency_us; 0 = unknown */
	bool health_ok;                /* its known-answer check passed */
	eg_val *board;                 /* a summary map (backend, name,
					  health, ...); the caller takes it */
} eg_coverify_hw;

/* Computes the hardware outputs of hw->x; EG_OK or an error with detail in
 * d (the trial then fails with that message). */
typedef int (*eg_coverify_hw_fn)(void *ud, eg_coverify_hw *hw, eg_diag *d);

/* The in-process backend of `run --local`: a fresh sim board with the
 * trial's hls.* types and the default cost model, coverify.fault injected,
 * checked against the design model of the same types.  ud is unused. */
int eg_coverify_hw_sim(void *ud, eg_coverify_hw *hw, eg_diag *d);

/*
 * Stage 2 of a coverify trial on a network given as data (see above):
 * params are the trial's canonical params, network the tree made by
 * eg_coverify_network_export.  The result has "metrics" (the network's
 * final train/test metrics recomputed from the weights, plus the coverify
 * metrics of docs/coverify.md), "layers", "outputs" and "board", like
 * `run --local` minus the training curve.
 */
int eg_coverify_run_network(const eg_val *params, const eg_val *network,
			    eg_coverify_hw_fn hw, void *ud,
			    const eg_trial_hooks *hooks, eg_val **result,
			    eg_diag *d);

/* Adds "network" (the format above) to the map `result`. */
int eg_coverify_network_export(eg_net *net, eg_val *result, eg_diag *d);
/* Copies the weights of `network` into `net`, which must have the same
 * layers (kind and sizes); EG_EINVAL / EG_ECORRUPT naming the layer. */
int eg_coverify_network_import(const eg_val *network, eg_net *net,
			       eg_diag *d);

#endif
