/*
 * net.h - a feed-forward network and its training step: dense layers on
 * cblas_sgemm, activations, losses, initialization, SGD with momentum and
 * weight decay or Adam, and the four training algorithms of PAPERS.md §2
 * (BP, FA, DFA, BDFA).
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
 * Extension: the Kernels II issue adds conv/pool layers, block-circulant
 * layers, pruning masks and fixed-point inference behind this same
 * interface (new fields at the end of eg_net_config, new functions).
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

typedef enum eg_algo { EG_ALGO_BP, EG_ALGO_FA, EG_ALGO_DFA, EG_ALGO_BDFA } eg_algo;

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
 * overwrites the batch scratch but not the gradients eg_net_grads shows. */
int eg_net_diagnostics(eg_net *net, const float *x, const int32_t *y,
		       size_t n, eg_net_diag *out);

/* Weights stored (weights and biases) and how many are non-zero. */
size_t eg_net_params_total(const eg_net *net);
size_t eg_net_params_nonzero(const eg_net *net);

/* Direct access to layer l's parameters (0 = first hidden layer, n_hidden =
 * output layer), for tests and later for pruning and quantization: W is
 * rows x cols row-major (rows = n_out of the layer), b has rows entries or
 * is NULL without biases.  The gradients of the last train_batch call are
 * available through eg_net_grads with the same layout. */
int eg_net_layer(eg_net *net, int l, float **w, float **b, int *rows,
		 int *cols);
int eg_net_grads(eg_net *net, int l, float **dw, float **db);

/* Hidden layer l's fixed feedback matrix (0 .. n_hidden - 1) of an FA,
 * DFA or BDFA net, row-major rows x cols, owned by the net: for FA it
 * stands in for W_{l+1}^T (hidden[l] x the next layer's width), for
 * DFA/BDFA it maps the output error to layer l (hidden[l] x n_out).  The incoming error of layer l is
 * delta_{l+1} B^T (FA) or e B^T (DFA, BDFA) in the batch-row layout.
 * EG_ERANGE for a BP net or an l out of range.  See net.c for the
 * automatic feedback_scale. */
int eg_net_feedback(eg_net *net, int l, float **B, int *rows, int *cols);

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
