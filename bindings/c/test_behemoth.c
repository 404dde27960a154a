/* test_behemoth.c: the C API through the installed library (pkg-config behemoth).
 *
 * Core calls, every error path a C caller can reach (NULLs, malformed JSON, unknown keys, absurd
 * counts, missing and foreign files, too-small buffers), and the dataset cycle generate -> info ->
 * arrays -> save -> load -> decode -> export/import -> free. Prints "N passed, M failed"; exits 1 on
 * any failure. A crash (a trap in the library) is a failure too: the process dies with a signal.
 */
#define _POSIX_C_SOURCE 200809L
#include <behemoth.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed = 0, failed = 0;

static void check(int ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL line %d: %s\n      bh_last_error: \"%s\"\n", line, what, bh_last_error());
    }
}
#define CHECK(cond) check((cond) ? 1 : 0, #cond, __LINE__)

/* Runs a call, checks its status, and (for failures) that bh_last_error() says something. */
static void check_status(int32_t got, int32_t want, const char *call, int line) {
    char what[512];
    const char *msg = bh_last_error();
    int ok = got == want && (want == BH_OK ? msg[0] == '\0' : msg[0] != '\0');
    snprintf(what, sizeof what, "%s -> %d (%s), expected %d (%s)", call, (int)got, bh_status_str(got), (int)want,
             bh_status_str(want));
    check(ok, what, line);
}
#define CHECK_STATUS(call, want) check_status((call), (want), #call, __LINE__)

/* A failure whose code may be one of two (e.g. a damaged file: BH_ERR_FORMAT or BH_ERR_IO). */
static void check_either(int32_t got, int32_t a, int32_t b, const char *call, int line) {
    char what[512];
    snprintf(what, sizeof what, "%s -> %d (%s), expected %d or %d", call, (int)got, bh_status_str(got), (int)a, (int)b);
    check((got == a || got == b) && bh_last_error()[0] != '\0', what, line);
}
#define CHECK_EITHER(call, a, b) check_either((call), (a), (b), #call, __LINE__)

static int contains(const char *s, const char *part) { return s != NULL && strstr(s, part) != NULL; }

/* A non-NULL value that is not a valid handle: out-parameters must be reset to NULL on failure. */
static char sentinel_storage;
#define SENTINEL ((bh_dataset *)(void *)&sentinel_storage)

/* Reads an integer array of either dtype into a new int64_t array (the caller frees it). */
static int64_t *read_ints(const bh_dataset *ds, const char *name, int64_t *n) {
    int64_t count = 0;
    *n = 0;
    if (bh_dataset_array_i64(ds, name, NULL, 0, &count) == BH_OK) {
        int64_t *out = malloc((size_t)(count > 0 ? count : 1) * sizeof *out);
        if (out && bh_dataset_array_i64(ds, name, out, count, &count) == BH_OK) { *n = count; return out; }
        free(out);
        return NULL;
    }
    if (bh_dataset_array_i32(ds, name, NULL, 0, &count) == BH_OK) {
        int32_t *tmp = malloc((size_t)(count > 0 ? count : 1) * sizeof *tmp);
        int64_t *out = malloc((size_t)(count > 0 ? count : 1) * sizeof *out);
        if (tmp && out && bh_dataset_array_i32(ds, name, tmp, count, &count) == BH_OK) {
            for (int64_t i = 0; i < count; i++) out[i] = tmp[i];
            free(tmp);
            *n = count;
            return out;
        }
        free(tmp);
        free(out);
    }
    return NULL;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n;
}

static void *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *data = size > 0 ? malloc((size_t)size) : NULL;
    *n = data && fread(data, 1, (size_t)size, f) == (size_t)size ? (size_t)size : 0;
    fclose(f);
    return data;
}

static void test_library(void) {
    CHECK(strcmp(bh_version(), BH_VERSION) == 0);
    CHECK(bh_abi_version() == BH_ABI_VERSION);
    for (int32_t s = BH_OK; s <= BH_ERR_INTERNAL; s++) CHECK(bh_status_str(s) != NULL && bh_status_str(s)[0] != '\0');
    CHECK(strcmp(bh_status_str(BH_ERR_FORMAT), "bad file format") == 0);
    CHECK(strcmp(bh_status_str(12345), "unknown status") == 0);
    CHECK(strcmp(bh_status_str(-1), "unknown status") == 0);

    int32_t before = bh_get_num_threads();
    CHECK_STATUS(bh_set_num_threads(0), BH_ERR_INVALID);
    CHECK(contains(bh_last_error(), "n = 0"));
    CHECK_STATUS(bh_set_num_threads(1025), BH_ERR_INVALID);
    CHECK_STATUS(bh_set_num_threads(-2147483647 - 1), BH_ERR_INVALID);
    CHECK(bh_get_num_threads() == before);
    CHECK_STATUS(bh_set_num_threads(2), BH_OK);
    CHECK(bh_get_num_threads() == 2);
    CHECK_STATUS(bh_set_num_threads(before), BH_OK);

    char *json = NULL;
    CHECK_STATUS(bh_runtime_info(NULL), BH_ERR_INVALID);
    CHECK_STATUS(bh_runtime_info(&json), BH_OK);
    CHECK(json != NULL && json[0] == '{' && contains(json, "\"blas_core\""));
    bh_string_free(json);
    bh_string_free(NULL);
    bh_dataset_free(NULL);
}

static void test_generate_errors(void) {
    bh_dataset *ds = SENTINEL;
    CHECK_STATUS(bh_dataset_generate(NULL, &ds), BH_ERR_INVALID);
    CHECK(ds == NULL);
    CHECK(contains(bh_last_error(), "NULL"));
    CHECK_STATUS(bh_dataset_generate("{}", NULL), BH_ERR_INVALID);

    const char *malformed[] = {"{", "{\"preset\": }", "[1, 2]", "null", "\"tiny\"",
                               "{\"preset\": 7}", "{\"preset\": \"no-such-preset\"}",
                               "{\"preset\": \"tiny\", \"subjects\": -5}",
                               "{\"preset\": \"tiny\", \"subjects\": 1.5}",
                               "{\"preset\": \"tiny\", \"subjects\": 1e400}",
                               "{\"preset\": \"tiny\", \"subjects\": 100000000000000000000000000000}",
                               "\xff\xfe"};
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
        ds = SENTINEL;
        int32_t s = bh_dataset_generate(malformed[i], &ds);
        char what[256];
        snprintf(what, sizeof what, "generate(%s) -> %d, expected BH_ERR_INVALID and a NULL handle", malformed[i], (int)s);
        check(s == BH_ERR_INVALID && ds == NULL && bh_last_error()[0] != '\0', what, __LINE__);
    }
    ds = SENTINEL;
    CHECK_STATUS(bh_dataset_generate("{\"preset\": \"tiny\", \"no_such_key\": 1}", &ds), BH_ERR_INVALID);
    CHECK(ds == NULL && contains(bh_last_error(), "no_such_key"));

    /* absurd sizes: refused with a status, never a crash or an attempt to allocate */
    const char *absurd[] = {"{\"preset\": \"tiny\", \"subjects\": 1000000000000}",
                            "{\"preset\": \"tiny\", \"relations\": 1000000000000}",
                            "{\"preset\": \"tiny\", \"objects\": 1000000000000}",
                            "{\"preset\": \"tiny\", \"repeats\": 1000000000000}"};
    for (size_t i = 0; i < sizeof absurd / sizeof *absurd; i++) {
        ds = SENTINEL;
        int32_t s = bh_dataset_generate(absurd[i], &ds);
        char what[256];
        snprintf(what, sizeof what, "generate(%s) -> %d, expected an error and a NULL handle", absurd[i], (int)s);
        check(s != BH_OK && ds == NULL && bh_last_error()[0] != '\0', what, __LINE__);
    }
}

static void test_file_errors(const char *dir, const char *saved) {
    char path[1024];
    bh_dataset *ds = SENTINEL;
    CHECK_STATUS(bh_dataset_load(NULL, &ds), BH_ERR_INVALID);
    CHECK(ds == NULL);
    CHECK_STATUS(bh_dataset_load(saved, NULL), BH_ERR_INVALID);

    snprintf(path, sizeof path, "%s/missing.h5", dir);
    ds = SENTINEL;
    CHECK_STATUS(bh_dataset_load(path, &ds), BH_ERR_IO);
    CHECK(ds == NULL && contains(bh_last_error(), "missing.h5"));

    snprintf(path, sizeof path, "%s/text.h5", dir);
    CHECK(write_file(path, "not an HDF5 file\n", 17));
    ds = SENTINEL;
    CHECK_EITHER(bh_dataset_load(path, &ds), BH_ERR_FORMAT, BH_ERR_IO);
    CHECK(ds == NULL);

    ds = SENTINEL;
    CHECK_EITHER(bh_dataset_load(dir, &ds), BH_ERR_FORMAT, BH_ERR_IO); /* a folder */
    CHECK(ds == NULL);

    size_t n = 0;
    char *data = read_file(saved, &n);
    CHECK(data != NULL && n > 0);
    if (data) {
        snprintf(path, sizeof path, "%s/truncated.h5", dir);
        CHECK(write_file(path, data, n / 2));
        ds = SENTINEL;
        CHECK_EITHER(bh_dataset_load(path, &ds), BH_ERR_FORMAT, BH_ERR_IO);
        CHECK(ds == NULL);
        free(data);
    }

    ds = SENTINEL;
    CHECK_STATUS(bh_dataset_import_reference(NULL, &ds), BH_ERR_INVALID);
    CHECK(ds == NULL);
    snprintf(path, sizeof path, "%s/no-such-folder", dir);
    ds = SENTINEL;
    CHECK_EITHER(bh_dataset_import_reference(path, &ds), BH_ERR_IO, BH_ERR_FORMAT);
    CHECK(ds == NULL);
}

static void test_dataset(const char *dir) {
    char path[1024], saved[1024], refdir[1024];
    bh_dataset *ds = NULL;
    CHECK_STATUS(bh_dataset_generate("{\"preset\": \"tiny\"}", &ds), BH_OK);
    CHECK(ds != NULL);
    if (!ds) return;

    /* info */
    char *info = NULL;
    CHECK_STATUS(bh_dataset_info(ds, &info), BH_OK);
    CHECK(info != NULL && info[0] == '{' && contains(info, "\"arrays\"") && contains(info, "\"facts\""));
    bh_string_free(info);
    CHECK_STATUS(bh_dataset_info(NULL, &info), BH_ERR_INVALID);
    CHECK_STATUS(bh_dataset_info(ds, NULL), BH_ERR_INVALID);

    /* arrays: size query, too small, exact, errors */
    int64_t count = -1;
    CHECK_STATUS(bh_dataset_array_i32(ds, "facts", NULL, 0, &count), BH_OK);
    CHECK(count > 0 && count % 4 == 0);
    int64_t n_facts = count;
    int32_t *facts = calloc((size_t)n_facts + 1, sizeof *facts);
    count = -1;
    CHECK_STATUS(bh_dataset_array_i32(ds, "facts", facts, n_facts - 1, &count), BH_ERR_BUFFER_TOO_SMALL);
    CHECK(count == n_facts);
    CHECK(facts[0] == 0 && facts[1] == 0); /* nothing copied */
    facts[n_facts] = 12345;
    CHECK_STATUS(bh_dataset_array_i32(ds, "facts", facts, n_facts + 1, &count), BH_OK);
    CHECK(count == n_facts && facts[n_facts] == 12345); /* nothing written past the data */
    CHECK_STATUS(bh_dataset_array_i32(ds, "facts", NULL, 4, &count), BH_ERR_INVALID);
    CHECK_STATUS(bh_dataset_array_i32(ds, "facts", facts, -1, &count), BH_ERR_INVALID);
    CHECK_STATUS(bh_dataset_array_i32(ds, "facts", facts, n_facts, NULL), BH_ERR_INVALID);
    CHECK_STATUS(bh_dataset_array_i32(ds, NULL, facts, n_facts, &count), BH_ERR_INVALID);
    CHECK_STATUS(bh_dataset_array_i32(NULL, "facts", facts, n_facts, &count), BH_ERR_INVALID);
    CHECK_STATUS(bh_dataset_array_i32(ds, "no/such/array", NULL, 0, &count), BH_ERR_INVALID);
    CHECK(contains(bh_last_error(), "no/such/array"));
    int64_t wide[4];
    CHECK(bh_dataset_array_i64(ds, "facts", wide, 4, &count) != BH_OK); /* wrong dtype */
    CHECK(bh_last_error()[0] != '\0');

    /* tokens, offsets, the first sentence */
    int64_t n_tokens = 0, n_offsets = 0;
    int64_t *tokens64 = read_ints(ds, "tokens", &n_tokens);
    int64_t *offsets = read_ints(ds, "offsets", &n_offsets);
    CHECK(tokens64 != NULL && n_tokens > 0);
    CHECK(offsets != NULL && n_offsets > 1 && offsets[0] == 0 && offsets[1] > 0 && offsets[1] <= n_tokens);
    char *first = NULL;
    if (tokens64 && offsets && n_offsets > 1 && offsets[1] <= n_tokens) {
        int64_t len = offsets[1];
        int32_t *sentence = malloc((size_t)len * sizeof *sentence);
        for (int64_t i = 0; i < len; i++) sentence[i] = (int32_t)tokens64[i];
        CHECK_STATUS(bh_dataset_decode(ds, sentence, len, &first), BH_OK);
        CHECK(first != NULL && strncmp(first, " SS ", 4) == 0 && contains(first, " RR ") && contains(first, " OO "));
        /* a word is " " + its 4-digit id */
        char *word = NULL;
        CHECK_STATUS(bh_dataset_decode(ds, &sentence[1], 1, &word), BH_OK);
        char expect[16];
        snprintf(expect, sizeof expect, " %04d", (int)sentence[1]);
        CHECK(word != NULL && strcmp(word, expect) == 0);
        bh_string_free(word);
        char *text = NULL;
        CHECK_STATUS(bh_dataset_decode(ds, NULL, 3, &text), BH_ERR_INVALID);
        CHECK(text == NULL);
        CHECK_STATUS(bh_dataset_decode(ds, sentence, -1, &text), BH_ERR_INVALID);
        CHECK_STATUS(bh_dataset_decode(ds, sentence, len, NULL), BH_ERR_INVALID);
        CHECK_STATUS(bh_dataset_decode(NULL, sentence, len, &text), BH_ERR_INVALID);
        int32_t bad[2] = {-1, 2147483647};
        CHECK_STATUS(bh_dataset_decode(ds, &bad[0], 1, &text), BH_ERR_INVALID);
        CHECK_STATUS(bh_dataset_decode(ds, &bad[1], 1, &text), BH_ERR_INVALID);
        CHECK(text == NULL);
        CHECK_STATUS(bh_dataset_decode(ds, NULL, 0, &text), BH_OK);
        CHECK(text != NULL && text[0] == '\0');
        bh_string_free(text);
        free(sentence);
    }

    /* save, load, compare */
    snprintf(saved, sizeof saved, "%s/tiny.h5", dir);
    CHECK_STATUS(bh_dataset_save(ds, saved), BH_OK);
    CHECK_STATUS(bh_dataset_save(NULL, saved), BH_ERR_INVALID);
    CHECK_STATUS(bh_dataset_save(ds, NULL), BH_ERR_INVALID);
    snprintf(path, sizeof path, "%s/no/such/dir/x.h5", dir);
    CHECK_STATUS(bh_dataset_save(ds, path), BH_ERR_IO);
    bh_dataset *again = SENTINEL;
    CHECK_STATUS(bh_dataset_load(saved, &again), BH_OK);
    CHECK(again != NULL && again != SENTINEL);
    if (again && again != SENTINEL) {
        int32_t *facts2 = calloc((size_t)n_facts, sizeof *facts2);
        CHECK_STATUS(bh_dataset_array_i32(again, "facts", facts2, n_facts, &count), BH_OK);
        CHECK(count == n_facts && memcmp(facts, facts2, (size_t)n_facts * sizeof *facts) == 0);
        free(facts2);
        int64_t n2 = 0;
        int64_t *tokens2 = read_ints(again, "tokens", &n2);
        CHECK(tokens2 != NULL && n2 == n_tokens && tokens64 &&
              memcmp(tokens64, tokens2, (size_t)n2 * sizeof *tokens2) == 0);
        free(tokens2);
        bh_dataset_free(again);
    }
    test_file_errors(dir, saved);

    /* the official generator's folder: export, then import */
    snprintf(refdir, sizeof refdir, "%s/reference", dir);
    CHECK_STATUS(bh_dataset_export_reference(ds, refdir), BH_OK);
    CHECK_STATUS(bh_dataset_export_reference(NULL, refdir), BH_ERR_INVALID);
    CHECK_STATUS(bh_dataset_export_reference(ds, NULL), BH_ERR_INVALID);
    snprintf(path, sizeof path, "%s/reference/metadata/tokenizer.json", dir);
    size_t tok_size = 0;
    void *tok = read_file(path, &tok_size);
    CHECK(tok != NULL && tok_size > 0);
    free(tok);
    bh_dataset *imported = SENTINEL;
    CHECK_STATUS(bh_dataset_import_reference(refdir, &imported), BH_OK);
    CHECK(imported != NULL && imported != SENTINEL);
    if (imported && imported != SENTINEL) {
        CHECK_STATUS(bh_dataset_array_i32(imported, "facts", NULL, 0, &count), BH_OK);
        CHECK(count == n_facts);
        bh_dataset_free(imported);
    }

    bh_string_free(first);
    free(tokens64);
    free(offsets);
    free(facts);
    bh_dataset_free(ds);
}

int main(void) {
    char dir[] = "/tmp/behemoth-c-test-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    printf("libbehemoth %s (ABI %u)\n", bh_version(), (unsigned)bh_abi_version());
    test_library();
    test_generate_errors();
    test_dataset(dir);

    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", dir);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
