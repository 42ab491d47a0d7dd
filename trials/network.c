/*
 * network.c - a trained network as data (trials/coverify.h): the stored
 * parameters of every layer as little-endian binary32 in base64, so that a
 * train trial's network reaches a hardware agent bit for bit through
 * msgpack frames and jsonb.
 *
 * The network's shape is not in the data: the importer builds the network
 * from the same model.* parameters and checks each layer's kind and
 * parameter counts against what arrived, so a network from a different
 * configuration is refused rather than silently misread.  Base64 is
 * libsodium's (RFC 4648, original alphabet, padded).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "trials/coverify.h"

#define FORMAT "f32le-base64"

static const char *const kind_names[] = {"dense", "circulant", "conv"};

static const char *kind_name(eg_layer_kind k)
{
	return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0])
		       ? kind_names[k]
		       : "?";
}

/* n floats as little-endian bytes in base64, as a new string value. */
static eg_val *encode(const float *x, size_t n)
{
	size_t blen = n * 4, b64len = sodium_base64_ENCODED_LEN(
				     blen, sodium_base64_VARIANT_ORIGINAL);
	unsigned char *bytes = malloc(blen ? blen : 1);
	char *b64 = malloc(b64len);
	eg_val *v = NULL;

	if (bytes != NULL && b64 != NULL) {
		for (size_t i = 0; i < n; i++) {
			uint32_t u;

			memcpy(&u, &x[i], 4);
			bytes[4 * i] = (unsigned char)u;
			bytes[4 * i + 1] = (unsigned char)(u >> 8);
			bytes[4 * i + 2] = (unsigned char)(u >> 16);
			bytes[4 * i + 3] = (unsigned char)(u >> 24);
		}
		sodium_bin2base64(b64, b64len, bytes, blen,
				  sodium_base64_VARIANT_ORIGINAL);
		v = eg_val_str(b64);
	}
	free(bytes);
	free(b64);
	return v;
}

/* Decodes exactly n floats from the base64 string v into x. */
static int decode(const eg_val *v, float *x, size_t n, int layer,
		  const char *what, eg_diag *d)
{
	const char *s = eg_val_as_str(v);
	unsigned char *bytes;
	size_t got = 0;
	const char *end = NULL;
	int rc = EG_OK;

	if (s == NULL)
		return eg_diag_set(d, EG_ETYPE, "network layer %d: %s is not a "
				   "string", layer, what);
	bytes = malloc(n * 4 + 1);
	if (bytes == NULL)
		return eg_diag_set(d, EG_ENOMEM, "out of memory");
	if (sodium_base642bin(bytes, n * 4 + 1, s, strlen(s), NULL, &got, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    *end != '\0' || got != n * 4) {
		rc = eg_diag_set(d, EG_ECORRUPT, "network layer %d: %s holds "
				 "%zu bytes of valid base64, expected %zu",
				 layer, what, got, n * 4);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t u = (uint32_t)bytes[4 * i] |
			     (uint32_t)bytes[4 * i + 1] << 8 |
			     (uint32_t)bytes[4 * i + 2] << 16 |
			     (uint32_t)bytes[4 * i + 3] << 24;

		memcpy(&x[i], &u, 4);
	}
out:
	free(bytes);
	return rc;
}

int eg_coverify_network_export(eg_net *net, eg_val *result, eg_diag *d)
{
	eg_val *nw = eg_val_map(), *layers = eg_val_list();
	int L = eg_net_layers(net), rc;

	rc = nw != NULL && layers != NULL ? EG_OK : EG_ENOMEM;
	if (rc == EG_OK)
		rc = eg_val_set_str(nw, "format", FORMAT);
	if (rc == EG_OK) {
		rc = eg_val_set(nw, "layers", layers);
		layers = NULL;
	}
	for (int l = 0; rc == EG_OK && l < L; l++) {
		eg_net_layer_desc desc;
		eg_val *row;
		float *w, *b;
		size_t n_w, n_b;

		rc = eg_net_layer_info(net, l, &desc);
		if (rc == EG_OK)
			rc = eg_net_params(net, l, &w, &n_w, &b, &n_b);
		if (rc != EG_OK)
			break;
		row = eg_val_map();
		rc = eg_val_push(eg_val_get(nw, "layers"), row);
		if (rc == EG_OK)
			rc = eg_val_set_str(row, "kind", kind_name(desc.kind));
		if (rc == EG_OK)
			rc = eg_val_set_int(row, "nw", (int64_t)n_w);
		if (rc == EG_OK)
			rc = eg_val_set(row, "w", encode(w, n_w));
		if (rc == EG_OK)
			rc = eg_val_set_int(row, "nb", (int64_t)n_b);
		if (rc == EG_OK)
			rc = eg_val_set(row, "b", n_b > 0 ? encode(b, n_b)
							  : eg_val_null());
	}
	if (rc == EG_OK) {
		rc = eg_val_set(result, "network", nw);
		nw = NULL;
	}
	eg_val_free(layers);
	eg_val_free(nw);
	if (rc != EG_OK)
		return eg_diag_set(d, rc, "network export: %s", eg_strerror(rc));
	return EG_OK;
}

int eg_coverify_network_import(const eg_val *network, eg_net *net,
			       eg_diag *d)
{
	const eg_val *layers = eg_val_get(network, "layers");
	const char *format = eg_val_get_str(network, "format", "");
	int L = eg_net_layers(net);

	if (strcmp(format, FORMAT) != 0)
		return eg_diag_set(d, EG_EINVAL, "network: format '%s', expected "
				   "'%s'", format, FORMAT);
	if (eg_val_type_of(layers) != EG_VAL_LIST ||
	    eg_val_len(layers) != (size_t)L)
		return eg_diag_set(d, EG_EINVAL, "network: %zu layers, the "
				   "model has %d", eg_val_len(layers), L);
	for (int l = 0; l < L; l++) {
		const eg_val *row = eg_val_at(layers, (size_t)l);
		eg_net_layer_desc desc;
		float *w, *b;
		size_t n_w, n_b;
		int rc = eg_net_layer_info(net, l, &desc);

		if (rc == EG_OK)
			rc = eg_net_params(net, l, &w, &n_w, &b, &n_b);
		if (rc != EG_OK)
			return eg_diag_set(d, rc, "network layer %d: %s", l,
					   eg_strerror(rc));
		if (strcmp(eg_val_get_str(row, "kind", ""),
			   kind_name(desc.kind)) != 0 ||
		    eg_val_get_int(row, "nw", -1) != (int64_t)n_w ||
		    eg_val_get_int(row, "nb", -1) != (int64_t)n_b)
			return eg_diag_set(d, EG_EINVAL, "network layer %d: %s "
					   "with %lld weights and %lld biases, "
					   "the model has %s with %zu and %zu",
					   l, eg_val_get_str(row, "kind", "?"),
					   (long long)eg_val_get_int(row, "nw", -1),
					   (long long)eg_val_get_int(row, "nb", -1),
					   kind_name(desc.kind), n_w, n_b);
		rc = decode(eg_val_get(row, "w"), w, n_w, l, "w", d);
		if (rc == EG_OK && n_b > 0)
			rc = decode(eg_val_get(row, "b"), b, n_b, l, "b", d);
		if (rc != EG_OK)
			return rc;
	}
	eg_net_params_changed(net);
	return EG_OK;
}
