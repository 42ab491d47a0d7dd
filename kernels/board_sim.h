/*
 * board_sim.h - the `sim` board backend: a bit-accurate fixed-point
 * datapath of a dense network (the "hardware" paradigm of PAPERS.md §5),
 * with a cycle and energy model, fault injection and a hang switch.
 *
 * A board is created from a board-type configuration (its own ap_fixed
 * types, as the bitstream was built, and its cost model), then a network
 * is loaded into it: the weights and biases are quantized once, at load
 * time, to the board's types and kept in board memory, as a real board
 * keeps them in BRAM.  Inference streams one example at a time through
 * the layers, in network order, and returns every layer's output as raw
 * codes of the board's activation type (and optionally as values), packed
 * exactly like kernels/qdense.h packs the design model's outputs: layer j
 * (dense 0, act 0, dense 1, ..., dense L-1; activation layers included,
 * the numbering of coverify.fault.layer) is an n x width row-major block.
 *
 * Arithmetic contract (what makes design vs hardware bit-exact): the
 * accumulator starts at the bias code assigned to the accumulator type,
 * each exact product w * x is added in input order and the sum assigned to
 * the accumulator type after every addition, the dense output is the
 * accumulator assigned to the activation type, relu and linear act on
 * codes and tanh, sigmoid and sin are the ideal function of the code's
 * value, correctly quantized.  The datapath is written here, independently
 * of qdense.c, on the same eg_fx primitives, so that the design-vs-board
 * test compares two implementations of one specification.
 *
 * Cost model (per inference, i.e. per example; P = parallelism):
 *   dense layer, rows x cols:  macs = rows * cols,
 *       cycles = ceil(macs / P),
 *       accesses = rows * cols (weights) + rows (biases, if any)
 *                + cols (inputs) + rows (outputs written);
 *   activation layer, width w: macs = 0, cycles = ceil(w / P),
 *       accesses = 2 * w (read and write back);
 *   energy_nj = (pj_per_mac * macs + pj_per_access * accesses) / 1000.
 *   block-circulant layer, rows x cols in k x k blocks (p = ceil(rows/k),
 *       q = ceil(cols/k); PAPERS.md §4), computed in the frequency domain
 *       with the weight spectra stored: macs = 4 p q (k/2 + 1) (complex
 *       multiply-accumulates of the real-input spectra) + (p + q) k log2 k
 *       (q forward and p inverse real FFTs of length k, half the
 *       2 k log2 k real multiplies of a complex radix-2 FFT),
 *       cycles = ceil(macs / P), accesses = p q (k + 2) (the spectra,
 *       k/2 + 1 complex words per block) + rows (biases, if any) + cols
 *       + rows.
 * Cycles are linear in MACs at a fixed parallelism (no pipeline fill or
 * per-layer latency is modelled), so doubling the MACs of a layer doubles
 * its cycles when P divides both counts.  hls4ml's reuse factor R of a
 * layer corresponds to P = macs / R.
 *
 * A block-circulant layer is loaded as its dense expansion (eg_circ_expand)
 * plus its block size: the datapath multiplies by the expanded matrix in
 * fixed point (the same function, so the design model of the expansion is
 * its bit-exact reference), while the cost model charges the FFT-based
 * datapath above.  The load checks that the matrix is block-circulant.
 *
 * Faults (coverify.fault): on every run, each output code of layer
 * `fault.layer` is hit with probability `rate` (a deterministic
 * xoshiro256** stream seeded by `fault.seed`, reseeded at every run, one
 * draw per element in packed order; rate 1 hits every element without
 * drawing): bitflip toggles bit `bit`, stuck0 clears it, stuck1 sets it,
 * and the code is sign-extended from the word again.  The faulty codes
 * feed the following layers, as they would on a board.  Faults apply to
 * the health check too: a stuck bit does not care which network runs.
 *
 * Hang: with the hang switch on, eg_board_sim_run computes nothing and
 * sleeps (in 5 ms steps) until *cancel becomes non-zero, then returns
 * EG_ECANCELLED: the watchdog's test subject.  With hang on and a NULL
 * cancel flag it never returns; a caller that may hang a board must pass
 * a flag.
 *
 * Health (level 1 of the hardware paradigm): a fixed tiny network (4
 * inputs, 3 relu hidden units, 2 outputs, biases, 2 examples, weights
 * chosen to need rounding) runs on the board's datapath with the board's
 * own types, and its codes are compared bit for bit with the design
 * model's codes for the types the board type DECLARES.  A board whose
 * configured types differ from its declaration (a corrupted board
 * config), a datapath bug or a fault on layers 0..2 fails it.
 *
 * Memory: the board owns its configuration, the quantized network and a
 * scratch row; callers own inputs and outputs.  Nothing is allocated by
 * eg_board_sim_run or eg_board_sim_health.  A board is used by one thread
 * at a time, except for the cancel flag, which another thread may set.
 */
#ifndef EG_BOARD_SIM_H
#define EG_BOARD_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "kernels/net.h"
#include "kernels/qdense.h"

/* A board type's configuration. */
typedef struct eg_board_config {
	eg_qdense_types types; /* weight, bias, activation, accumulator */
	int parallelism;       /* MACs (and activation elements) per cycle */
	double clock_mhz;      /* > 0 */
	double pj_per_mac;     /* >= 0 */
	double pj_per_access;  /* >= 0, one word read or written */
} eg_board_config;

/* Defaults of the cost model: 64 MACs per cycle at 200 MHz, 1 pJ per MAC,
 * 5 pJ per memory access (orders of magnitude of a 16-bit DSP MAC and a
 * BRAM word on a 28 nm FPGA). */
#define EG_BOARD_DEFAULT_PARALLELISM 64
#define EG_BOARD_DEFAULT_CLOCK_MHZ 200.0
#define EG_BOARD_DEFAULT_PJ_MAC 1.0
#define EG_BOARD_DEFAULT_PJ_ACCESS 5.0

/* Fills the cost model with the defaults above; `types` is left alone. */
void eg_board_config_default(eg_board_config *c);

typedef enum eg_board_fault_kind {
	EG_BOARD_FAULT_BITFLIP,
	EG_BOARD_FAULT_STUCK0,
	EG_BOARD_FAULT_STUCK1
} eg_board_fault_kind;

typedef struct eg_board_fault {
	int layer;                /* output layer j, 0-based (see above) */
	eg_board_fault_kind kind;
	int bit;                  /* 0 = lsb .. activation W - 1 = sign */
	double rate;              /* (0, 1] */
	uint64_t seed;
} eg_board_fault;

/* "bitflip", "stuck0", "stuck1" (EG_EINVAL otherwise). */
int eg_board_fault_kind_parse(const char *name, eg_board_fault_kind *out,
			      eg_diag *d);

/* Cost of one inference, per layer or in total. */
typedef struct eg_board_est {
	uint64_t macs;
	uint64_t accesses;
	uint64_t cycles;
	double energy_nj;
} eg_board_est;

typedef struct eg_board_sim eg_board_sim;

/* Validates the configuration (types through eg_fx_type_init, positive
 * parallelism and clock, non-negative energies) and creates an empty
 * board. */
int eg_board_sim_create(const eg_board_config *cfg, eg_board_sim **out,
			eg_diag *d);
void eg_board_sim_free(eg_board_sim *b); /* accepts NULL */
const eg_board_config *eg_board_sim_config(const eg_board_sim *b);

/* Loads a dense stack (checked by eg_qdense_check) with hidden activation
 * `act`, replacing any previous network: quantizes and copies the weights
 * and biases into board memory (the layer arrays are not kept).  blocks
 * (may be NULL: all dense) gives each layer's circulant block size k, a
 * power of two, or 0 / 1 for a dense layer; EG_EINVAL if a layer's matrix
 * is not block-circulant with its k. */
int eg_board_sim_load(eg_board_sim *b, eg_act act,
		      const eg_qdense_layer *layers, int n_layers,
		      const int *blocks, eg_diag *d);

/* Output layers of the loaded network (2L - 1; 0 if none is loaded), and
 * elements of the packed output arrays for a batch of n. */
int eg_board_sim_output_count(const eg_board_sim *b);
size_t eg_board_sim_outputs_len(const eg_board_sim *b, size_t n);
/* Offset (elements) of output j in the packed arrays of a batch of n;
 * *len (may be NULL) receives n * width. */
size_t eg_board_sim_output_offset(const eg_board_sim *b, size_t n, int j,
				  size_t *len);

/* "dense<i>" for even j, the activation's name and i for odd j ("relu0"),
 * where i = j / 2. */
void eg_board_layer_name(eg_act act, int j, char *buf, size_t len);

/* Sets (f != NULL) or clears (f == NULL) the injected fault.  EG_ERANGE
 * for a bit outside the activation word or a rate outside (0, 1]; a layer
 * beyond the loaded network is reported by eg_board_sim_run. */
int eg_board_sim_set_fault(eg_board_sim *b, const eg_board_fault *f,
			   eg_diag *d);
void eg_board_sim_set_hang(eg_board_sim *b, bool hang);

/*
 * Runs n examples x (n x cols of layer 0, row-major, float) through the
 * loaded network.  codes receives eg_board_sim_outputs_len(b, n) codes of
 * the activation type, values (may be NULL) the same as doubles.
 * overflows (may be NULL) receives, per output layer, the number of
 * assignments that overflowed (accumulator steps and output assignments:
 * the board's overflow counters).  cancel (may be NULL) is checked
 * between examples.  EG_ESTATE without a network, EG_ERANGE for a fault
 * layer beyond it, EG_ECANCELLED when cancelled.
 */
int eg_board_sim_run(eg_board_sim *b, const float *x, size_t n,
		     const volatile int *cancel, int64_t *codes,
		     double *values, uint64_t *overflows, eg_diag *d);

/* The cost model of the loaded network: per_layer (may be NULL) receives
 * eg_board_sim_output_count entries, total the sum. */
int eg_board_sim_estimate(const eg_board_sim *b, eg_board_est *per_layer,
			  eg_board_est *total);

/* The known-answer health check against the design model of `declared`
 * (the board type's declared types; NULL = the board's own, which then
 * tests the datapath and faults but not the configuration).  EG_OK when
 * every code matches, EG_ECORRUPT with the first mismatch in d otherwise.
 * Does not disturb the loaded network. */
int eg_board_sim_health(eg_board_sim *b, const eg_qdense_types *declared,
			eg_diag *d);

/* The known-answer network itself (for tests and for the documentation):
 * EG_BOARD_KAT_N examples of EG_BOARD_KAT_IN inputs, and its expected
 * codes for `types` from the design model (qdense), packed as above:
 * out holds EG_BOARD_KAT_CODES codes. */
#define EG_BOARD_KAT_N 2
#define EG_BOARD_KAT_IN 4
#define EG_BOARD_KAT_CODES (EG_BOARD_KAT_N * (3 + 3 + 2))
int eg_board_kat_expected(const eg_qdense_types *types, int64_t *out,
			  eg_diag *d);
/* The known-answer network's float layers (2, relu between them, static
 * storage) and its EG_BOARD_KAT_N x EG_BOARD_KAT_IN inputs, for backends
 * that run the check on another datapath (the hwagent's exec boards). */
void eg_board_kat_network(eg_qdense_layer layers[2], const float **x);

#endif
