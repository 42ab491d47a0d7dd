/* test_common.c - errors, JSON writer, value tree, hashing. */
#include "common/err.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/value.h"
#include "tests/harness.h"

EG_TEST(err_names_and_messages)
{
	EG_CHECK_STR(eg_err_name(EG_OK), "OK");
	EG_CHECK_STR(eg_err_name(EG_ENOMEM), "NOMEM");
	EG_CHECK_STR(eg_strerror(EG_EPARSE), "syntax error");
	EG_CHECK_STR(eg_err_name(-9999), "UNKNOWN");
	EG_CHECK(EG_ENOMEM < 0 && EG_ESTATE < EG_ENOMEM);
	EG_CHECK_INT(eg_err_from_errno(2 /* ENOENT */), EG_ENOENT);
}

EG_TEST(diag_prefix_keeps_detail)
{
	eg_diag d = {{0}};
	int rc = eg_diag_set(&d, EG_ERANGE, "lr must be > 0");

	EG_CHECK_INT(rc, EG_ERANGE);
	eg_diag_prefix(&d, rc, "grid.yaml:3:7");
	EG_CHECK_STR(d.msg, "grid.yaml:3:7: lr must be > 0");
	EG_CHECK_STR(eg_diag_msg(NULL, EG_ENOENT), "no such file or directory");
}

EG_TEST(json_escapes_and_nonfinite)
{
	eg_buf b = EG_BUF_INIT;
	eg_json j;

	eg_json_init(&j, &b);
	eg_json_obj_begin(&j);
	eg_json_key(&j, "s");
	eg_json_str(&j, "a\"b\\c\n\x01\xc3\xa9");
	eg_json_key(&j, "nan");
	eg_json_num(&j, NAN);
	eg_json_key(&j, "inf");
	eg_json_num(&j, -INFINITY);
	eg_json_key(&j, "l");
	eg_json_arr_begin(&j);
	eg_json_int(&j, -3);
	eg_json_num(&j, 1.0);
	eg_json_num(&j, 0.1);
	eg_json_bool(&j, true);
	eg_json_null(&j);
	eg_json_arr_end(&j);
	eg_json_obj_end(&j);
	EG_CHECK(!eg_buf_failed(&b));
	EG_CHECK_STR(eg_buf_str(&b),
		     "{\"s\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\",\"nan\":null,"
		     "\"inf\":null,\"l\":[-3,1,0.1,true,null]}");
	eg_buf_free(&b);
}

EG_TEST(json_doubles_round_trip)
{
	static const double xs[] = {0.1, 1e-300, 123456.789, 1.0 / 3, 2e22,
				    -5e-324, 9007199254740993.0};
	char tmp[40];

	for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]); i++) {
		eg_json_fmt_double(tmp, sizeof(tmp), xs[i]);
		EG_CHECK_MSG(strtod(tmp, NULL) == xs[i], "%s", tmp);
	}
	eg_json_fmt_double(tmp, sizeof(tmp), 0.001);
	EG_CHECK_STR(tmp, "0.001");
	eg_json_fmt_double(tmp, sizeof(tmp), 10.0);
	EG_CHECK_STR(tmp, "10");
	eg_json_fmt_double(tmp, sizeof(tmp), -0.0);
	EG_CHECK_STR(tmp, "0");
}

EG_TEST(value_paths_and_equality)
{
	eg_val *a = eg_val_map(), *b = eg_val_map();
	eg_buf out = EG_BUF_INIT;

	EG_CHECK_OK(eg_val_set_path(a, "train.lr", eg_val_float(1.0)));
	EG_CHECK_OK(eg_val_set_path(a, "model.hidden", eg_val_list()));
	EG_CHECK_OK(eg_val_push(eg_val_get_path(a, "model.hidden"), eg_val_int(8)));
	EG_CHECK_OK(eg_val_set_path(b, "model.hidden", eg_val_list()));
	EG_CHECK_OK(eg_val_push(eg_val_get_path(b, "model.hidden"), eg_val_float(8.0)));
	EG_CHECK_OK(eg_val_set_path(b, "train.lr", eg_val_int(1)));
	EG_CHECK(eg_val_equal(a, b));
	EG_CHECK_NEAR(eg_val_get_num(a, "train.lr", 0), 1.0, 0);
	EG_CHECK_INT(eg_val_get_int(a, "train.epochs", 7), 7);
	EG_CHECK_INT(eg_val_set_path(a, "train.lr.x", eg_val_int(1)), EG_ETYPE);
	eg_val_sort_keys(a);
	eg_val_to_json(a, &out);
	EG_CHECK_STR(eg_buf_str(&out), "{\"model\":{\"hidden\":[8]},\"train\":{\"lr\":1}}");
	EG_CHECK(eg_val_del_path(a, "train.lr"));
	EG_CHECK(!eg_val_equal(a, b));
	eg_val *c = eg_val_copy(b);
	EG_CHECK(eg_val_equal(c, b));
	eg_val_free(a);
	eg_val_free(b);
	eg_val_free(c);
	eg_buf_free(&out);
}

EG_TEST(sha256_known_answer)
{
	char hex[65], key[EG_KEY_HEX + 1];

	EG_CHECK_OK(eg_hash_sha256_hex("abc", 3, hex));
	EG_CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	EG_CHECK_OK(eg_hash_key_hex("abc", 3, key));
	EG_CHECK_STR(key, "ba7816bf8f01cfea414140de5dae2223");
}

EG_TEST_MAIN({"err_names_and_messages", err_names_and_messages, 0},
	     {"diag_prefix_keeps_detail", diag_prefix_keeps_detail, 0},
	     {"json_escapes_and_nonfinite", json_escapes_and_nonfinite, 0},
	     {"json_doubles_round_trip", json_doubles_round_trip, 0},
	     {"value_paths_and_equality", value_paths_and_equality, 0},
	     {"sha256_known_answer", sha256_known_answer, 0})
