/*
 * net.h - a feed-forward network and its training step: dense layers on
 * cblas_sgemm, conv + max-pool layers (conv.h), block-circulant layers
 * (circulant.h), activations, losses, initialization, SGD with momentum and
 * weight decay or Adam, the training algorithms of PAPERS.md §2 (BP, FA,
 * DFA, BDFA, hybrid) and the masks, snapshots and magnitude pruning of the
 * lottery-ticket experiments (PAPERS.md §3).
 *
 * Layout: activations are row-major batch x features (one example a row);
 * a dense layer with n_in inputs and n_out outputs stores W as n_out x n_in
 * row-major, so forward is A = H W^T (+ b).  All memory - weights, optimizer
 * state, feedback matrices and the scratch for a batch of up to
 * `config.batch` examples - is allocated by eg_net_create; the training and
 * evaluation calls allocate nothing.
 *
 * Determinism: for a given config (seed included) and OpenBLAS thread
 * count, every call gives bit-identical results.
 *
 * Threading: an eg_net is used by one thread at a time; OpenBLAS may use
 * several threads inside each call (set with openblas_set_num_threads by
 * the caller).
 *
 * Architecture (layers numbered l = 0 .. L-1 in network order, L =
 * n_conv + n_hidden + 1 <= EG_NET_MAX_LAYERS):
 *   - n_conv conv layers first (a CNN; the input is then an in_c x in_h x
 *     in_w image, NCHW): each is a "same" convolution (stride 1, zero
 *     padding kernel / 2, so odd kernels keep H x W), a per-filter bias,
 *     the activation, then a pool x pool max-pool with stride pool (none
 *     for pool 1).  The last conv layer's output volume, flattened in CHW
 *     order, is the input of the first fully-connected layer.
 *   - n_hidden fully-connected hidden layers with the activation; with
 *     circulant_block = k > 1 EVERY hidden fully-connected layer is
 *     block-circulant with k x k blocks (inputs padded to a multiple of k);
 *     k = 0 or 1 means dense (a 1 x 1 circulant block is a dense weight).
 *   - the output layer: always dense and linear (it is small, and its
 *     exact gradient is what DFA projects).
 * Biases (model.bias) live in the net, one per output unit of dense and
 * circulant layers and one per filter of conv layers; they are never
 * pruned or masked and count in params_total.
 *
 * Algorithms through the layer kinds: BP everywhere.  DFA/BDFA: each hidden
 * layer l gets B_l e with B_l of (layer l's output length) x K; for a conv
 * layer that is its whole output volume AFTER pooling (C x H' x W'), which
 * the max-pool backward then routes to the chosen positions before the
 * activation derivative is applied.  FA needs B_l to stand in for W_{l+1}^T
 * and is only defined here for fully-connected stacks (dense or
 * circulant): eg_net_create refuses FA with conv layers (EG_EINVAL).
 * EG_ALGO_HYBRID needs conv layers: with EG_HYBRID_CONV_DFA the conv
 * layers learn by DFA and the fully-connected hidden layers by BP; with
 * EG_HYBRID_FC_DFA the fully-connected hidden layers by DFA and the conv
 * layers by BP of the error those DFA layers produce.  The output layer
 * always uses its true gradient.
 *
 * Masks (lottery tickets): a layer's mask has one 0/1 float per stored
 * weight (biases are never masked).  Masks are allocated on first use (by
 * eg_net_prune or eg_net_set_mask, outside the training loop); without
 * them every weight is live.  A masked weight is exactly zero and stays so:
 * its gradient is multiplied by the mask before the optimizer, and its
 * optimizer state is zeroed when it is masked, so neither momentum, Adam
 * nor weight decay can move it.
 */
#ifndef EG_NET_H
#define EG_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EG_NET_MAX_LAYERS 16

typedef enum eg_act {
	EG_ACT_RELU, EG_ACT_SIN, EG_ACT_TANH, EG_ACT_SIGMOID, EG_ACT_LINEAR
} eg_act;

typedef enum eg_loss {
	EG_LOSS_XENT,  /* softmax cross-entropy */
	EG_LOSS_MSE,   /* mean_k (z_k - onehot_k)^2 */
	EG_LOSS_HINGE  /* sum_{i != y} max(0, 1 + z_i - z_y) */
} eg_loss;

typedef enum eg_init {
	EG_INIT_HE,     /* N(0, 2 / fan_in) */
	EG_INIT_GLOROT, /* N(0, 2 / (fan_in + fan_out)) */
	EG_INIT_LECUN,  /* N(0, 1 / fan_in) */
	EG_INIT_NORMAL  /* first layer N(0, init_scale^2), later ones LeCun */
} eg_init;

typedef enum eg_algo {
	EG_ALGO_BP, EG_ALGO_FA, EG_ALGO_DFA, EG_ALGO_BDFA,
	EG_ALGO_HYBRID /* per layer kind, see eg_hybrid; needs conv layers */
} eg_algo;

typedef enum eg_hybrid {
	EG_HYBRID_CONV_DFA, /* conv layers by DFA, fully-connected by BP */
	EG_HYBRID_FC_DFA    /* fully-connected hidden layers by DFA, conv by BP */
} eg_hybrid;

/* One conv layer of a CNN: `filters` output channels, a kernel x kernel
 * "same" convolution, then a pool x pool max-pool (1 = none). */
typedef struct eg_net_conv {
	int filters, kernel, pool;
} eg_net_conv;

typedef enum eg_layer_kind {
	EG_LAYER_DENSE, EG_LAYER_CIRCULANT, EG_LAYER_CONV
} eg_layer_kind;

/* How eg_net_prune ranks weights: within each layer, or across all the
 * hidden (non-output) layers at once; the output layer always has its own
 * rate. */
typedef enum eg_prune_scope { EG_PRUNE_LAYER, EG_PRUNE_GLOBAL } eg_prune_scope;

typedef enum eg_feedback {
	EG_FB_DEFAULT, /* normal for FA/DFA, binary for BDFA */
	EG_FB_UNIFORM,
	EG_FB_NORMAL,
	EG_FB_BINARY
} eg_feedback;

/* SGD: v = momentum v + (g + weight_decay w); w -= lr v.
 * Adam: standard, with bias correction; weight decay is L2 added to the
 * gradient (not decoupled AdamW).  Biases get no weight decay. */
typedef enum eg_optim { EG_OPT_SGD, EG_OPT_ADAM } eg_optim;

typedef struct eg_net_config {
	int n_in;                 /* input features */
	int n_hidden;             /* hidden layers, 0 .. EG_NET_MAX_LAYERS - 1 */
	int hidden[EG_NET_MAX_LAYERS];
	int n_out;                /* classes */
	eg_act act;               /* of every hidden layer; the output is linear */
	bool bias;
	eg_init init;
	double init_scale;        /* multiplies the FIRST layer's deviation */
	eg_loss loss;
	eg_algo algo;
	eg_feedback feedback;
	double feedback_scale;    /* deviation of the feedback entries (binary:
				     exactly +-scale); 0 = automatic: FA the
				     init deviation of the W it replaces,
				     DFA/BDFA 1/sqrt(n_out) (see net.c) */
	eg_optim optim;
	double lr, momentum, weight_decay;
	double adam_beta1, adam_beta2, adam_eps; /* 0 = 0.9, 0.999, 1e-8 */
	int batch;                /* largest batch any call will pass */
	uint64_t seed;            /* weights and feedback matrices */
	/* Kernels II (zero = a dense MLP as above). */
	int n_conv;               /* conv layers before the hidden ones */
	eg_net_conv conv[EG_NET_MAX_LAYERS];
	int in_c, in_h, in_w;     /* image shape, needed with conv layers:
				     in_c * in_h * in_w must equal n_in */
	int circulant_block;      /* 0 (dense) or a power of two; 1 = dense */
	eg_hybrid hybrid;         /* with algo EG_ALGO_HYBRID */
} eg_net_config;

typedef struct eg_net eg_net;

/* Fills `c` with the defaults (relu, bias, he, scale 1, xent, bp, sgd,
 * lr 0.01, batch 128); the caller then sets sizes and what differs. */
void eg_net_config_default(eg_net_config *c);

/* Validates `c` (EG_EINVAL / EG_ERANGE with a message naming the field)
 * and allocates everything the network will need. */
int eg_net_create(const eg_net_config *c, eg_net **out, eg_diag *d);
void eg_net_free(eg_net *net);
const eg_net_config *eg_net_config_of(const eg_net *net);

/* One optimizer step on a batch of `n` (1 .. config.batch) examples: x is
 * n x n_in, y the labels.  Returns the batch's mean loss before the step in
 * *loss (may be NULL).  EG_EDIVERGED if the loss is not finite; then no
 * parameter or optimizer state is changed.  EG_EINVAL for n out of range or
 * a label outside 0 .. n_out - 1. */
int eg_net_train_batch(eg_net *net, const float *x, const int32_t *y, int n,
		       double *loss);

/* One epoch over `n` examples in the order `order` (a permutation of
 * 0..n-1 the caller shuffles; NULL = as stored), in batches of
 * config.batch.  *cancel, if not NULL, is checked between batches
 * (EG_ECANCELLED).  *loss receives the mean training loss over the epoch. */
int eg_net_train_epoch(eg_net *net, const float *x, const int32_t *y,
		       size_t n, const int32_t *order,
		       const volatile int *cancel, double *loss);

/* Mean loss and accuracy over n examples (forward only, in batches). */
int eg_net_evaluate(eg_net *net, const float *x, const int32_t *y, size_t n,
		    double *loss, double *acc);

/* Logits of n examples into out (n x n_out). */
int eg_net_predict(eg_net *net, const float *x, size_t n, float *out);

/* PAPERS.md §1 diagnostics over n examples (at most a few thousand):
 * in-class alignment of the first hidden representation r_i = phi(W1 x_i)
 * and of the per-example gradients of W1 (never materialized: the
 * Frobenius product of rank-one gradients is (d_i . d_j)(x_i . x_j)), and
 * ||grad W1|| / ||W1|| of the mean loss over the n examples (true
 * gradients, whatever the training algorithm).  A model without a hidden
 * layer reports NaN alignments. */
typedef struct eg_net_diag {
	double align_repr;
	double align_grad;
	double grad_ratio_w1;
} eg_net_diag;

/* Classes with fewer than two examples (or only zero vectors) are left
 * out of the mean.  Allocates and frees its own scratch (the class order,
 * two n_in x hidden[0] matrices): it is not part of the training loop.  It
 * overwrites the batch scratch but not the gradients eg_net_grads shows.
 * Defined for all-dense MLPs; a net with conv or circulant layers gets NaN
 * for all three (and EG_OK). */
int eg_net_diagnostics(eg_net *net, const float *x, const int32_t *y,
		       size_t n, eg_net_diag *out);

/* Weights stored (weights and biases) and how many are non-zero. */
size_t eg_net_params_total(const eg_net *net);
size_t eg_net_params_nonzero(const eg_net *net);
/* What the same network would store with dense fully-connected layers
 * (weights and biases): params_dense / params_total is the compression
 * metric, 1 for a net without circulant layers. */
size_t eg_net_params_dense(const eg_net *net);

/* Number of layers L (conv, hidden and output). */
int eg_net_layers(const eg_net *net);

typedef struct eg_net_layer_desc {
	eg_layer_kind kind;
	size_t weights;       /* stored weights (mask length) */
	size_t biases;        /* 0 without biases */
	size_t dense_weights; /* of the dense layer it stands for */
	int in_len, out_len;  /* features per example in and out (after pool) */
	bool frozen;
} eg_net_layer_desc;
int eg_net_layer_info(const eg_net *net, int l, eg_net_layer_desc *out);

/* Layer l's stored parameters whatever its kind (dense: rows x cols
 * row-major; conv: F x C x K x K; circulant: circulant.h's p * q * k
 * layout), owned by the net.  After writing weights through this pointer
 * call eg_net_params_changed (it re-applies masks and refreshes the cached
 * spectra of circulant layers). */
int eg_net_params(eg_net *net, int l, float **w, size_t *nw, float **b,
		  size_t *nb);
void eg_net_params_changed(eg_net *net);

/* Direct access to a DENSE layer l's parameters (0 = first layer, L - 1 =
 * the output layer; for an MLP without conv layers 0 = the first hidden
 * layer and n_hidden the output layer), for tests and quantization: W is
 * rows x cols row-major (rows = n_out of the layer), b has rows entries or
 * is NULL without biases.  EG_ENOTSUP for a conv or circulant layer (use
 * eg_net_params).  The gradients of the last train_batch call are
 * available through eg_net_grads in the stored layout (any layer kind). */
int eg_net_layer(eg_net *net, int l, float **w, float **b, int *rows,
		 int *cols);
int eg_net_grads(eg_net *net, int l, float **dw, float **db);

/* Hidden layer l's fixed feedback matrix (0 .. L - 2) of an FA, DFA, BDFA
 * or hybrid net, row-major rows x cols, owned by the net: for FA it
 * stands in for W_{l+1}^T (hidden[l] x the next layer's width), for
 * DFA/BDFA it maps the output error to layer l (layer l's output length x
 * n_out).  A BP layer of a hybrid net has none.  The incoming error of layer l is
 * delta_{l+1} B^T (FA) or e B^T (DFA, BDFA) in the batch-row layout.
 * EG_ERANGE for a BP net or layer or an l out of range.  See net.c for the
 * automatic feedback_scale. */
int eg_net_feedback(eg_net *net, int l, float **B, int *rows, int *cols);

/*
 * Pruning and lottery tickets (PAPERS.md §3).  None of these is meant for
 * the training loop; the first call of eg_net_prune or eg_net_set_mask
 * allocates the masks (EG_ENOMEM possible), the others allocate nothing
 * except eg_net_prune's ranking scratch, freed before it returns.
 */

/* Layer l's mask (one 0/1 float per stored weight, owned by the net), or *mask =
 * NULL while the net has no masks (every weight live). */
int eg_net_mask(eg_net *net, int l, const float **mask);
/* Copies `mask` (0/1 per stored weight) into layer l's mask and zeroes
 * the weights and optimizer state it masks. */
int eg_net_set_mask(eg_net *net, int l, const float *mask);
/*
 * Magnitude pruning of the SURVIVING weights: in every hidden layer (scope
 * EG_PRUNE_LAYER) or across all hidden layers together (EG_PRUNE_GLOBAL),
 * the round(rate * surviving) live weights of smallest |w| are masked
 * (ties: the lower layer, then the lower index, goes first); the output
 * layer loses round(output_rate * its surviving).  Masked weights and
 * their optimizer state become 0.  rate and output_rate in [0, 1).
 */
int eg_net_prune(eg_net *net, double rate, double output_rate,
		 eg_prune_scope scope, eg_diag *d);
/* Live weights / stored weights over every layer (biases excluded): the
 * lottery `remaining`.  Also the counts, if the pointers are not NULL. */
double eg_net_remaining(const eg_net *net, size_t *live, size_t *total);

/* Snapshots: every weight and bias in a caller-owned buffer of
 * eg_net_snapshot_len floats.  eg_net_restore copies them back, applies
 * the masks (so a pruned net restored to theta_0 is theta_0 * m), clears
 * the optimizer state (momentum, Adam moments and step count) and
 * refreshes circulant spectra. */
size_t eg_net_snapshot_len(const eg_net *net);
void eg_net_snapshot(const eg_net *net, float *buf);
void eg_net_restore(eg_net *net, const float *buf);
/* A fresh draw of every weight from the config's init distributions, with
 * the "reinit" stream of `seed` instead of "init", biases 0, masks applied
 * and optimizer state cleared: the random-reinitialization control. */
void eg_net_reinit(eg_net *net, uint64_t seed);
/* Clears momentum, Adam moments and the step count. */
void eg_net_reset_optimizer(eg_net *net);
/* A frozen layer keeps its weights and biases: no gradient, no update
 * (errors still flow through it to trainable layers below). */
int eg_net_set_frozen(eg_net *net, int l, bool frozen);

/* Loss and its gradient with respect to the logits z (n x k) for labels y,
 * for every loss of eg_loss: returns the mean loss and writes dz = dL/dz of
 * the mean (n x k).  Exposed for tests and for layers outside a net. */
double eg_loss_forward_backward(eg_loss loss, const float *z, const int32_t *y,
				int n, int k, float *dz);

/* Elementwise activation and its derivative with respect to the
 * pre-activation a: out = phi(a), dphi = phi'(a) (either may be NULL). */
void eg_act_apply(eg_act act, const float *a, size_t n, float *out,
		  float *dphi);

/* The PAPERS.md §1 alignment of n vectors g_i (rows of g, n x dim, ld =
 * row stride) in O(n * dim): n * sum_{i != j} <g_i, g_j> /
 * ((n - 1) * (sum_i ||g_i||)^2).  NaN for n < 2 or all-zero vectors. */
double eg_alignment(const float *g, int n, int dim, int ld);

#endif
