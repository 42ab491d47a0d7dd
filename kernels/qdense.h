/*
 * qdense.h - the fixed-point design model of a stack of dense layers (the
 * "design" paradigm of PAPERS.md §5) and its float reference (the
 * "software" paradigm), both returning every layer's output.
 *
 * A network is L dense layers; every layer but the last is followed by the
 * hidden activation.  Its per-layer outputs are numbered in network order,
 * activation layers included - dense 0, act 0, dense 1, act 1, ...,
 * dense L-1 - so there are 2L - 1 of them, the numbering DESIGN.md uses
 * for coverify layers and coverify.fault.layer.  Output j of a batch of n
 * examples is an n x width row-major block (width = rows of dense j / 2),
 * and the blocks are packed in order into one caller-owned array; see
 * eg_qdense_output_offset.
 *
 * Types (eg_qdense_types).  The hls.* parameters map onto them as follows:
 * hls.word_bits / hls.int_bits / hls.round / hls.overflow give the weight,
 * bias and activation types (ap_fixed<word_bits, int_bits, round, overflow>
 * each); hls.accum_bits / hls.accum_int_bits with the same round and
 * overflow give the accumulator.  The network input is quantized to the
 * activation type.
 *
 * Arithmetic, as the HLS C model computes `acc = b; for k: acc += w[k] *
 * x[k]; y = acc;`:
 *   - the accumulator starts at the bias assigned to the accumulator type
 *     (0 without biases);
 *   - each product w * x is exact (F_w + F_a fraction bits, __int128), and
 *     the sum acc + w * x is assigned to the accumulator type after EVERY
 *     addition, rounding and overflowing there, because acc is declared
 *     ap_fixed<accum> and `acc += p` is `acc = acc + p`;
 *   - the dense output is the accumulator assigned to the activation type
 *     (hls4ml's result type), so every per-layer output, dense or
 *     activation, is a code of the activation type;
 *   - relu (max(code, 0)) and linear (the code itself) act exactly on
 *     codes; tanh, sigmoid and sin are evaluated in double on the code's
 *     exact value and the result is quantized to the activation type.  Real
 *     HLS uses a lookup table or CORDIC there, so for those three the model
 *     is "the ideal function, correctly quantized", not a given core.
 *
 * The float reference computes exactly what eg_net's forward pass does
 * (cblas_sgemm, then the bias and activation in float) and stores each
 * float output widened to double.
 *
 * Memory: the BLAS convention.  The caller owns every buffer; the scratch
 * a call needs is queried first (bytes, any alignment of malloc's);
 * nothing is allocated inside.  Weights are quantized on every call (a
 * pass over rows x cols, small next to the n x rows x cols MACs).
 * Thread-safe for distinct output and scratch buffers; the float reference
 * may use OpenBLAS threads inside.
 */
#ifndef EG_QDENSE_H
#define EG_QDENSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "kernels/fixed.h"
#include "kernels/net.h"

typedef struct eg_qdense_layer {
	int rows;       /* outputs of the layer */
	int cols;       /* inputs: the previous layer's rows */
	const float *w; /* rows x cols row-major, borrowed */
	const float *b; /* rows entries, or NULL for no bias; borrowed */
} eg_qdense_layer;

typedef struct eg_qdense_types {
	eg_fx_type weight, bias, act, accum;
} eg_qdense_types;

/* Builds the four types from the hls.* parameters (names as in fixed.h);
 * errors name the parameter. */
int eg_qdense_types_hls(int word_bits, int int_bits, const char *round,
			const char *overflow, int accum_bits,
			int accum_int_bits, eg_qdense_types *out,
			eg_diag *d);

/* Fills layers[0 .. n_hidden] from a network's eg_net_layer views (the
 * pointers stay owned by net and valid while it lives); EG_ERANGE if
 * `max` is too small. */
int eg_qdense_from_net(eg_net *net, eg_qdense_layer *layers, int max,
		       int *n_layers);

/* Checks that the stack chains (cols of layer l = rows of layer l - 1),
 * every size is positive and every weight pointer set. */
int eg_qdense_check(const eg_qdense_layer *layers, int n_layers, eg_diag *d);

/* 2 * n_layers - 1. */
static inline int eg_qdense_output_count(int n_layers)
{
	return 2 * n_layers - 1;
}

/* Where output j (0 .. 2L - 2) of a batch of n starts in the packed array,
 * in elements; *len (may be NULL) receives n * width. */
size_t eg_qdense_output_offset(const eg_qdense_layer *layers, int n_layers,
			       size_t n, int j, size_t *len);
/* Elements of the whole packed array. */
size_t eg_qdense_outputs_len(const eg_qdense_layer *layers, int n_layers,
			     size_t n);

/* Scratch bytes of eg_qdense_forward for a batch of n. */
size_t eg_qdense_scratch_size(const eg_qdense_layer *layers, int n_layers,
			      size_t n);

/*
 * The fixed-point forward pass of n examples x (n x cols of layer 0,
 * row-major): codes receives every output as raw codes of ty->act, values
 * (may be NULL) the same as doubles (eg_fx_value).  `act` is the hidden
 * activation.  Both arrays hold eg_qdense_outputs_len elements.
 * EG_EINVAL for a bad stack or a scratch smaller than
 * eg_qdense_scratch_size (detail in d).
 */
int eg_qdense_forward(const eg_qdense_types *ty, eg_act act,
		      const eg_qdense_layer *layers, int n_layers,
		      const float *x, size_t n, void *scratch,
		      size_t scratch_size, int64_t *codes, double *values,
		      eg_diag *d);

/* Scratch bytes of eg_qdense_float_forward for a batch of n. */
size_t eg_qdense_float_scratch_size(const eg_qdense_layer *layers,
				    int n_layers, size_t n);

/* The float reference: the same outputs, computed in float as eg_net
 * does, into out (eg_qdense_outputs_len doubles).  n <= INT_MAX. */
int eg_qdense_float_forward(eg_act act, const eg_qdense_layer *layers,
			    int n_layers, const float *x, size_t n,
			    void *scratch, size_t scratch_size, double *out,
			    eg_diag *d);

#endif
