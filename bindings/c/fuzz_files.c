/* fuzz_files.c: damaged files against the loaders, each load isolated in a forked child.
 *
 * Makes one file of every type the library writes (dataset, model, checkpoint with optimizer
 * moments, edit result, LoRA adapter, trace, rank, prompt recording) through the C API, takes the four format version 1 fixtures, and then, for
 * each case, damages a copy of one of them (seeded: a case is reproducible from seed and index)
 * and loads it in a child process forked from this one (the library is loaded once), under an
 * address-space limit and an alarm. Damage: byte flips (random, near the start, on HDF5 metadata
 * signatures), truncations, zeroed ranges, and structural edits made with the HDF5 C API, which
 * leave every HDF5 checksum valid so only the library's own checks can catch them (datasets
 * deleted, reshaped, retyped, swapped or added; the spec's seed or another number changed; string
 * attributes stored variable-length; an extra root attribute; format_version; any attribute nudged).
 *
 * Loads: bh_dataset_load / bh_model_load / bh_adapter_load (then merged into the base model) /
 * bh_trainer_begin with "resume_from" + one step / bh_file_verify. A case passes if the file is refused with BH_ERR_FORMAT (and a message), or
 * loads and everything the API shows of it is byte-equal to the undamaged original: the info JSON,
 * every array and the decoded vocabulary (datasets), the info JSON and every tensor (models; after
 * resuming, the step report and every tensor after one step), the verify JSON. Format version 1 files
 * carry no checksums or digest, so a change to their data or text cannot be detected: for them a
 * load that differs is counted as "loaded-changed-v1" and passes; what is asserted is isolation
 * (no crash, hang or blow-up in the caller) and the status. Anything else fails: crash-signal,
 * hang (the alarm), other-status (neither BH_OK nor BH_ERR_FORMAT, or FORMAT without a message),
 * loaded-different, litter (a temporary file left behind). Failing files are saved under
 * WORK/failures/. Cases that match a known, reported library issue (KNOWN below) are listed and
 * counted as "known", not as failures, unless --strict.
 *
 *   fuzz_files --legacy DIR [--cases N] [--seed S] [--work DIR] [--only I] [--strict] [--verbose] [--alarm S]
 *   fuzz_files --legacy DIR --check TYPE[/LOADER] FILE [--no-fork]   (load one file as the cases do)
 *
 * WORK/originals is reused when present (HDF5 stamps times into files, so remade originals differ
 * in some bytes): with the same WORK, `--seed S --only I` replays case I byte for byte.
 *
 * Ends with "N passed, M failed"; exits 1 on any failure, 2 if the setup fails.
 */
#define _XOPEN_SOURCE 700
#include <behemoth.h>
#include <hdf5.h>

#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- options and small utilities ------------------------------------------------------------- */

static struct {
    long cases;
    uint64_t seed;
    const char *legacy;           /* folder with the format version 1 fixtures */
    const char *work;             /* scratch folder: originals/, case.h5, failures/ */
    long only;                    /* run one case (-1: all) */
    int strict, verbose, no_fork;
    unsigned alarm_seconds;
    uint64_t address_space_extra; /* RLIMIT_AS = what the harness maps + this */
    const char *check_type, *check_file;
} opt = {1200, 1, NULL, "build/fuzz", -1, 0, 0, 0, 10, (uint64_t)2 << 30, NULL, NULL};

static char case_path[4096], log_path[4096], tmp_dir[4096], fail_dir[4096];
static rlim_t child_as_limit;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_files: setup failed: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(2);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

static char *xstrdup(const char *s) {
    char *p = xmalloc(strlen(s) + 1);
    memcpy(p, s, strlen(s) + 1);
    return p;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = size >= 0 ? xmalloc((size_t)size) : NULL;
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) { free(data); data = NULL; }
    fclose(f);
    *n = data ? (size_t)size : 0;
    return data;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return fclose(f) == 0 && w == n;
}

static int copy_file(const char *from, const char *to) {
    size_t n;
    unsigned char *d = read_file(from, &n);
    int ok = d && write_file(to, d, n);
    free(d);
    return ok;
}

/* splitmix64: the only randomness; a case's generator is seeded from (seed, index). */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static uint64_t below(uint64_t *s, uint64_t n) { return n ? next_u64(s) % n : 0; }
static uint64_t case_state(uint64_t seed, long index) {
    uint64_t s = seed;
    return next_u64(&s) ^ (0xd1b54a32d192ed03ULL * (uint64_t)(index + 1));
}
/* Index into weights[0..n). */
static int pick(uint64_t *s, const int *weights, int n) {
    int total = 0;
    for (int i = 0; i < n; i++) total += weights[i];
    int r = (int)below(s, (uint64_t)total);
    for (int i = 0; i < n; i++) {
        if (r < weights[i]) return i;
        r -= weights[i];
    }
    return n - 1;
}

/* ---- snapshots: what the API shows of a loaded file, as named byte blobs ---------------------- */

typedef struct {
    char name[200];
    size_t n;
    unsigned char *data;
} blob;
typedef struct {
    blob *b;
    int n, cap;
} snapshot;

static void snap_add(snapshot *s, const char *name, const void *data, size_t n) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        blob *nb = realloc(s->b, (size_t)s->cap * sizeof *nb);
        if (!nb) die("out of memory");
        s->b = nb;
    }
    blob *b = &s->b[s->n++];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->n = n;
    b->data = xmalloc(n);
    if (n) memcpy(b->data, data, n);
}
static void snap_add_text(snapshot *s, const char *name, const char *text) { snap_add(s, name, text, strlen(text)); }
/* 1 if equal; otherwise 0 and names the first difference. */
static int snap_equal(const snapshot *want, const snapshot *got, char *why, size_t cap) {
    for (int i = 0; i < want->n; i++) {
        const blob *w = &want->b[i];
        if (i >= got->n || strcmp(w->name, got->b[i].name) != 0) {
            snprintf(why, cap, "%s: missing after the load", w->name);
            return 0;
        }
        const blob *g = &got->b[i];
        if (w->n != g->n || memcmp(w->data, g->data, w->n) != 0) {
            size_t at = 0;
            while (at < w->n && at < g->n && w->data[at] == g->data[at]) at++;
            int len = snprintf(why, cap, "%s differs (%zu vs %zu bytes, first difference at byte %zu)", w->name, w->n, g->n, at);
            if (strncmp(w->name, "bh_", 3) == 0 && len > 0 && (size_t)len < cap) {
                /* JSON: show both around the difference */
                size_t from = at > 40 ? at - 40 : 0;
                int wn = (int)((w->n < at + 40 ? w->n : at + 40) - from), gn = (int)((g->n < at + 40 ? g->n : at + 40) - from);
                snprintf(why + len, cap - (size_t)len, ": original ...%.*s... loaded ...%.*s...", wn, (const char *)w->data + from,
                         gn, (const char *)g->data + from);
            }
            return 0;
        }
    }
    if (got->n != want->n) {
        snprintf(why, cap, "%d items instead of %d", got->n, want->n);
        return 0;
    }
    return 1;
}

/* ---- file types, loaders and what is known of each original ---------------------------------- */

enum kind { K_DATASET, K_MODEL, K_CHECKPOINT, K_EDIT, K_ADAPTER, K_TRACE, K_RANK, K_ACTIVATIONS };
enum loader { L_LOAD, L_RESUME, L_VERIFY, N_LOADERS };
static const char *loader_names[N_LOADERS] = {"load", "resume", "verify"};

typedef struct {
    char path[256]; /* without the leading slash */
    H5T_class_t cls;
    size_t size;
    int sign;
    int rank;
    hsize_t dims[8];
    hsize_t count;
} dset_info;

typedef struct {
    char obj[256]; /* "/" or "/group" */
    char name[128];
    H5T_class_t cls;
    int vlen;
} attr_info;

typedef struct {
    const char *name; /* "dataset", "v1-model", ... */
    enum kind kind;
    int legacy;
    char original[4096];
    unsigned char *bytes;
    size_t size;
    dset_info *dsets;
    int ndsets;
    attr_info *attrs;
    int nattrs;
    char **groups; /* "/" and every group, for attribute and dataset additions */
    int ngroups;
    int (*pairs)[2]; /* datasets of the same type and shape, for swaps */
    int npairs;
    size_t *meta;    /* offsets of HDF5 metadata signatures (OHDR, TREE, HEAP, ...) */
    int nmeta;
    int loader_weight[N_LOADERS];
    int weight;      /* share of the cases */
    snapshot ref[N_LOADERS];
    bh_model *resume_model; /* a model of the checkpoint's config, cloned for each resume (adapters: the base model) */
    bh_dataset *resume_ds;
    char *resume_spec;      /* the checkpoint's training spec with resume_from = case_path */
} target;

#define N_TARGETS 12
static target targets[N_TARGETS] = {
    {.name = "dataset", .kind = K_DATASET, .weight = 20, .loader_weight = {80, 0, 20}},
    {.name = "model", .kind = K_MODEL, .weight = 16, .loader_weight = {80, 0, 20}},
    {.name = "checkpoint", .kind = K_CHECKPOINT, .weight = 22, .loader_weight = {40, 40, 20}},
    {.name = "edit", .kind = K_EDIT, .weight = 18, .loader_weight = {0, 0, 100}},
    {.name = "adapter", .kind = K_ADAPTER, .weight = 14, .loader_weight = {80, 0, 20}},
    {.name = "trace", .kind = K_TRACE, .weight = 8, .loader_weight = {0, 0, 100}},
    {.name = "rank", .kind = K_RANK, .weight = 6, .loader_weight = {0, 0, 100}},
    {.name = "activations", .kind = K_ACTIVATIONS, .weight = 6, .loader_weight = {0, 0, 100}},
    {.name = "v1-dataset", .kind = K_DATASET, .legacy = 1, .weight = 6, .loader_weight = {80, 0, 20}},
    {.name = "v1-model", .kind = K_MODEL, .legacy = 1, .weight = 5, .loader_weight = {80, 0, 20}},
    {.name = "v1-checkpoint", .kind = K_CHECKPOINT, .legacy = 1, .weight = 7, .loader_weight = {40, 40, 20}},
    {.name = "v1-edit", .kind = K_EDIT, .legacy = 1, .weight = 6, .loader_weight = {0, 0, 100}},
};

/* Strips `"key":value` (a number) from a one-line JSON report (timings differ between runs). */
static void strip_number_field(char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    char *p = strstr(json, pat);
    if (!p) return;
    char *e = p + strlen(pat);
    while (*e && *e != ',' && *e != '}') e++;
    if (*e == ',') e++;
    memmove(p, e, strlen(e) + 1);
}

static int32_t load_dataset(const target *t, const char *path, snapshot *s) {
    bh_dataset *ds = NULL;
    char *info = NULL;
    int32_t st = bh_dataset_load(path, &ds);
    if (st != BH_OK) return st;
    if (bh_dataset_info(ds, &info) == BH_OK) snap_add_text(s, "bh_dataset_info", info);
    else snap_add_text(s, "bh_dataset_info", "(failed)");
    /* the text of every token id (the special tokens' strings come from the file) */
    const char *vs = info ? strstr(info, "\"vocab_size\":") : NULL;
    long vocab = vs ? strtol(vs + strlen("\"vocab_size\":"), NULL, 10) : 0;
    bh_string_free(info);
    if (vocab > 0 && vocab <= 1000000) {
        int32_t *ids = xmalloc((size_t)vocab * sizeof *ids);
        char *text = NULL;
        for (long i = 0; i < vocab; i++) ids[i] = (int32_t)i;
        if (bh_dataset_decode(ds, ids, vocab, &text) == BH_OK) snap_add_text(s, "bh_dataset_decode", text);
        else snap_add_text(s, "bh_dataset_decode", "(failed)");
        bh_string_free(text);
        free(ids);
    }
    for (int i = 0; i < t->ndsets; i++) {
        const dset_info *d = &t->dsets[i];
        int64_t count = 0;
        char name[1100];
        snprintf(name, sizeof name, "array %s", d->path);
        int wide = d->size == 8;
        st = wide ? bh_dataset_array_i64(ds, d->path, NULL, 0, &count) : bh_dataset_array_i32(ds, d->path, NULL, 0, &count);
        if (st != BH_OK || count < 0) { snap_add_text(s, name, "(not available)"); continue; }
        size_t bytes = (size_t)count * (wide ? 8 : 4);
        void *buf = xmalloc(bytes);
        st = wide ? bh_dataset_array_i64(ds, d->path, buf, count, &count) : bh_dataset_array_i32(ds, d->path, buf, count, &count);
        if (st == BH_OK) snap_add(s, name, buf, bytes);
        else snap_add_text(s, name, "(not available)");
        free(buf);
    }
    bh_dataset_free(ds);
    return BH_OK;
}

static void add_tensors(const target *t, const bh_model *m, snapshot *s) {
    for (int i = 0; i < t->ndsets; i++) {
        const char *p = t->dsets[i].path;
        if (strncmp(p, "weights/", 8) != 0) continue;
        char name[1100];
        snprintf(name, sizeof name, "tensor %s", p + 8);
        int64_t count = 0;
        if (bh_model_tensor(m, p + 8, NULL, 0, &count) != BH_OK || count < 0) { snap_add_text(s, name, "(not available)"); continue; }
        float *buf = xmalloc((size_t)count * sizeof *buf);
        if (bh_model_tensor(m, p + 8, buf, count, &count) == BH_OK) snap_add(s, name, buf, (size_t)count * sizeof *buf);
        else snap_add_text(s, name, "(not available)");
        free(buf);
    }
}

static int32_t load_model(const target *t, const char *path, snapshot *s) {
    bh_model *m = NULL;
    char *info = NULL;
    int32_t st = bh_model_load(path, &m);
    if (st != BH_OK) return st;
    if (bh_model_info(m, &info) == BH_OK) snap_add_text(s, "bh_model_info", info);
    else snap_add_text(s, "bh_model_info", "(failed)");
    bh_string_free(info);
    add_tensors(t, m, s);
    bh_model_free(m);
    return BH_OK;
}

/* Loads an adapter, shows its info and merges it into a clone of the base model: the merged weights
   show every number the file holds. */
static int32_t load_adapter(const target *t, const char *path, snapshot *s) {
    bh_adapter *a = NULL;
    bh_model *m = NULL;
    char *info = NULL;
    int32_t st = bh_adapter_load(path, &a);
    if (st != BH_OK) return st;
    if (bh_adapter_info(a, &info) == BH_OK) snap_add_text(s, "bh_adapter_info", info);
    else snap_add_text(s, "bh_adapter_info", "(failed)");
    bh_string_free(info);
    st = bh_model_clone(t->resume_model, &m);
    if (st == BH_OK) st = bh_adapter_apply(m, a, 1);
    if (st == BH_OK) {
        static const char *mats[] = {"attention.query_key_value.weight", "attention.dense.weight", "mlp.dense_h_to_4h.weight",
                                     "mlp.dense_4h_to_h.weight"};
        for (int layer = 0; layer < 2; layer++)
            for (int k = 0; k < 4; k++) {
                char name[200];
                snprintf(name, sizeof name, "gpt_neox.layers.%d.%s", layer, mats[k]);
                int64_t count = 0;
                if (bh_model_tensor(m, name, NULL, 0, &count) != BH_OK || count <= 0) continue;
                float *buf = xmalloc((size_t)count * sizeof *buf);
                if (bh_model_tensor(m, name, buf, count, &count) == BH_OK) snap_add(s, name, buf, (size_t)count * sizeof *buf);
                free(buf);
            }
    }
    bh_model_free(m);
    bh_adapter_free(a);
    return st;
}

/* Resumes training from the checkpoint at case_path and takes one step: the step report and the
   weights after it show the optimizer moments, step count and position the file holds. */
static int32_t resume_checkpoint(const target *t, snapshot *s) {
    bh_model *m = NULL;
    bh_trainer *tr = NULL;
    char *report = NULL;
    int32_t st = bh_model_clone(t->resume_model, &m);
    if (st != BH_OK) return st;
    st = bh_trainer_begin(m, t->resume_ds, t->resume_spec, &tr);
    if (st == BH_OK) {
        st = bh_trainer_step(tr, &report);
        if (st == BH_STEP || st == BH_DONE) {
            if (report) strip_number_field(report, "tokens_per_second");
            snap_add_text(s, "bh_trainer_step report", report ? report : "(done)");
            add_tensors(t, m, s);
            st = BH_OK;
        }
        bh_string_free(report);
    }
    bh_trainer_free(tr);
    bh_model_free(m);
    return st;
}

static int32_t verify_file(const char *path, snapshot *s) {
    char *json = NULL;
    int32_t st = bh_file_verify(path, &json);
    if (st == BH_OK) snap_add_text(s, "bh_file_verify", json);
    bh_string_free(json);
    return st;
}

/* Loads case_path the way `loader` does; fills s on BH_OK. */
static int32_t run_loader(const target *t, enum loader loader, snapshot *s) {
    switch (loader) {
    case L_LOAD:
        return t->kind == K_DATASET ? load_dataset(t, case_path, s)
             : t->kind == K_ADAPTER ? load_adapter(t, case_path, s) : load_model(t, case_path, s);
    case L_RESUME: return resume_checkpoint(t, s);
    case L_VERIFY: return verify_file(case_path, s);
    default: return BH_ERR_INTERNAL;
    }
}

/* ---- the structure of the originals (HDF5, read here only for undamaged files) --------------- */

static herr_t attr_cb(hid_t obj, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    target *t = data;
    attr_info *a = &t->attrs[t->nattrs];
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0) return -1;
    hid_t type = H5Aget_type(attr);
    H5Iget_name(obj, a->obj, sizeof a->obj);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->cls = H5Tget_class(type);
    a->vlen = a->cls == H5T_STRING && H5Tis_variable_str(type) > 0;
    H5Tclose(type);
    H5Aclose(attr);
    t->nattrs++;
    return 0;
}

static void scan_attributes(target *t, hid_t obj) {
    t->attrs = realloc(t->attrs, (size_t)(t->nattrs + 256) * sizeof *t->attrs);
    if (!t->attrs) die("out of memory");
    hsize_t idx = 0;
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, t);
}

static herr_t link_cb(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    target *t = data;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) return -1;
    H5I_type_t kind = H5Iget_type(obj);
    if (kind == H5I_GROUP) {
        char path[1100];
        snprintf(path, sizeof path, "/%s", name);
        t->groups = realloc(t->groups, (size_t)(t->ngroups + 1) * sizeof *t->groups);
        if (!t->groups) die("out of memory");
        t->groups[t->ngroups++] = xstrdup(path);
    } else if (kind == H5I_DATASET) {
        t->dsets = realloc(t->dsets, (size_t)(t->ndsets + 1) * sizeof *t->dsets);
        if (!t->dsets) die("out of memory");
        dset_info *d = &t->dsets[t->ndsets++];
        memset(d, 0, sizeof *d);
        snprintf(d->path, sizeof d->path, "%s", name);
        hid_t type = H5Dget_type(obj), space = H5Dget_space(obj);
        d->cls = H5Tget_class(type);
        d->size = H5Tget_size(type);
        d->sign = d->cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_2;
        d->rank = H5Sget_simple_extent_ndims(space);
        if (d->rank < 0 || d->rank > 8) die("%s: /%s has rank %d", t->original, name, d->rank);
        H5Sget_simple_extent_dims(space, d->dims, NULL);
        d->count = 1;
        for (int i = 0; i < d->rank; i++) d->count *= d->dims[i];
        H5Tclose(type);
        H5Sclose(space);
    }
    scan_attributes(t, obj);
    H5Oclose(obj);
    return 0;
}

static void scan_structure(target *t) {
    hid_t f = H5Fopen(t->original, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) die("cannot open %s with HDF5", t->original);
    t->groups = xmalloc(sizeof *t->groups);
    t->groups[0] = xstrdup("/");
    t->ngroups = 1;
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    scan_attributes(t, root);
    H5Gclose(root);
    if (H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, link_cb, t) < 0) die("cannot list %s", t->original);
    H5Fclose(f);
    /* pairs of datasets a swap can exchange */
    t->pairs = xmalloc((size_t)(t->ndsets * t->ndsets + 1) * sizeof *t->pairs);
    for (int i = 0; i < t->ndsets; i++)
        for (int j = i + 1; j < t->ndsets; j++) {
            const dset_info *a = &t->dsets[i], *b = &t->dsets[j];
            if (a->cls == b->cls && a->size == b->size && a->rank == b->rank && a->count > 0 &&
                memcmp(a->dims, b->dims, sizeof a->dims) == 0) {
                t->pairs[t->npairs][0] = i;
                t->pairs[t->npairs][1] = j;
                t->npairs++;
            }
        }
    /* where HDF5 metadata starts: signatures of v2 object headers, B-trees, heaps, chunk indexes;
       of v1 B-trees, local and global heaps, symbol nodes (v1 object headers have none) */
    static const char *sigs[] = {"OHDR", "OCHK", "BTHD", "BTIN", "BTLF", "FRHP", "FHDB", "FHIB", "FSHD", "FSSE",
                                 "FAHD", "FADB", "EAHD", "EAIB", "EADB", "EASB", "TREE", "HEAP", "SNOD", "GCOL"};
    t->meta = xmalloc(4096 * sizeof *t->meta);
    t->meta[t->nmeta++] = 0; /* the superblock */
    for (size_t off = 0; off + 4 <= t->size && t->nmeta < 4096; off++)
        for (size_t k = 0; k < sizeof sigs / sizeof *sigs; k++)
            if (memcmp(t->bytes + off, sigs[k], 4) == 0) { t->meta[t->nmeta++] = off; break; }
}

/* Reads a string attribute, fixed or variable length (the caller frees the text). */
static char *attr_read_string(hid_t obj, const char *name, int *vlen) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return NULL;
    hid_t ft = H5Aget_type(a);
    char *out = NULL;
    *vlen = H5Tis_variable_str(ft) > 0;
    if (*vlen) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *p = NULL;
        if (H5Aread(a, mt, &p) >= 0) out = xstrdup(p ? p : "");
        if (p) H5free_memory(p);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        out = calloc(n + 1, 1);
        if (!out) die("out of memory");
        if (H5Aread(a, ft, out) < 0) { free(out); out = NULL; }
    }
    H5Tclose(ft);
    H5Aclose(a);
    return out;
}

/* Writes a UTF-8 string attribute, replacing any of that name. */
static int attr_write_string(hid_t obj, const char *name, const char *text, int vlen) {
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return 0;
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
    size_t n = strlen(text);
    if (vlen) {
        H5Tset_size(type, H5T_VARIABLE);
    } else {
        H5Tset_size(type, n ? n : 1);
        H5Tset_strpad(type, H5T_STR_NULLPAD);
    }
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && (vlen ? H5Awrite(a, type, &text) : H5Awrite(a, type, text)) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    return ok;
}

static int attr_write_int(hid_t obj, const char *name, int64_t v) {
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return 0;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return ok;
}

/* The training spec a checkpoint's /trainer state holds, with resume_from set to case_path. */
static char *resume_spec_of(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return NULL;
    hid_t g = H5Gopen2(f, "/trainer", H5P_DEFAULT);
    int vlen = 0;
    char *state = g >= 0 ? attr_read_string(g, "state", &vlen) : NULL;
    if (g >= 0) H5Gclose(g);
    H5Fclose(f);
    char *p = state ? strstr(state, "\"spec\":{") : NULL;
    if (!p) { free(state); return NULL; }
    p += strlen("\"spec\":");
    char *e = p;
    int depth = 0;
    do {
        if (*e == '{') depth++;
        if (*e == '}') depth--;
        e++;
    } while (*e && depth > 0);
    *e = '\0';
    const char *key = "\"resume_from\":\"\"";
    char *r = strstr(p, key);
    if (!r) { free(state); return NULL; }
    size_t n = strlen(p) + strlen(case_path) + 64;
    char *spec = xmalloc(n);
    snprintf(spec, n, "%.*s\"resume_from\":\"%s\"%s", (int)(r - p), p, case_path, r + strlen(key));
    free(state);
    return spec;
}

/* ---- mutations ------------------------------------------------------------------------------- */

enum mutation {
    M_FLIP_BYTE, M_FLIP_BYTES, M_FLIP_METADATA, M_TRUNCATE, M_ZERO_RANGE,
    M_DELETE_DATASET, M_RESHAPE_DATASET, M_RETYPE_DATASET, M_SWAP_DATASETS, M_ADD_DATASET,
    M_SPEC_SEED, M_SPEC_FIELD, M_STRING_KIND, M_EXTRA_ROOT_ATTR, M_FORMAT_VERSION, M_REWRITE_ATTR, N_MUTATIONS
};
static const char *mutation_names[N_MUTATIONS] = {
    "flip-byte", "flip-bytes", "flip-metadata", "truncate", "zero-range",
    "delete-dataset", "reshape-dataset", "retype-dataset", "swap-datasets", "add-dataset",
    "spec-seed", "spec-field", "string-kind", "extra-root-attr", "format-version", "rewrite-attr"};
static const int mutation_weights[N_MUTATIONS] = {22, 12, 14, 14, 10, 3, 3, 3, 3, 2, 3, 3, 3, 2, 3, 5};

typedef struct {
    long index;
    int target;
    enum loader loader;
    enum mutation mutation;
    char what[1400];  /* the mutation's parameters */
    char object[400]; /* the dataset or attribute a structural edit touched ("" for byte damage) */
} case_desc;

/* An offset, biased toward the first 4 KiB where the superblock and root metadata live. */
static size_t pick_offset(uint64_t *rng, size_t size) {
    if (size == 0) return 0;
    if (below(rng, 100) < 40) return (size_t)below(rng, size < 4096 ? size : 4096);
    return (size_t)below(rng, size);
}

static unsigned char nonzero_byte(uint64_t *rng) { return (unsigned char)(1 + below(rng, 255)); }

/* Byte-level damage of a copy of the original; writes case_path. */
static void mutate_bytes(const target *t, case_desc *c, uint64_t *rng) {
    size_t size = t->size, n = 0;
    unsigned char *b = xmalloc(size);
    memcpy(b, t->bytes, size);
    char *w = c->what;
    size_t cap = sizeof c->what;
    switch (c->mutation) {
    case M_FLIP_BYTE: {
        size_t at = pick_offset(rng, size);
        unsigned char x = below(rng, 2) ? (unsigned char)(1u << below(rng, 8)) : nonzero_byte(rng);
        b[at] ^= x;
        snprintf(w, cap, "offset %zu xor 0x%02x", at, x);
        n = size;
        break;
    }
    case M_FLIP_BYTES: {
        int k = 2 + (int)below(rng, 31);
        int len = snprintf(w, cap, "%d bytes:", k);
        for (int i = 0; i < k; i++) {
            size_t at = pick_offset(rng, size);
            unsigned char x = nonzero_byte(rng);
            b[at] ^= x;
            if (len < (int)cap - 24) len += snprintf(w + len, cap - (size_t)len, " %zu^%02x", at, x);
        }
        n = size;
        break;
    }
    case M_FLIP_METADATA: {
        size_t base = t->meta[below(rng, (uint64_t)t->nmeta)];
        size_t at = base + (size_t)below(rng, 256);
        if (at >= size) at = size - 1;
        unsigned char x = nonzero_byte(rng);
        b[at] ^= x;
        snprintf(w, cap, "offset %zu (structure at %zu) xor 0x%02x", at, base, x);
        n = size;
        break;
    }
    case M_TRUNCATE:
        n = below(rng, 100) < 20 ? (size_t)below(rng, size < 4096 ? size : 4096) : (size_t)below(rng, size);
        snprintf(w, cap, "to %zu of %zu bytes", n, size);
        break;
    case M_ZERO_RANGE: {
        size_t at = pick_offset(rng, size), len = 1 + (size_t)below(rng, 4096);
        if (at + len > size) len = size - at;
        memset(b + at, 0, len);
        snprintf(w, cap, "offset %zu length %zu", at, len);
        n = size;
        break;
    }
    default: break;
    }
    if (!write_file(case_path, b, n)) die("cannot write %s", case_path);
    free(b);
}

/* Changes a text slightly: the first digit, else the first letter's case, else appends "x". */
static void nudge_text(char *s, size_t cap) {
    for (char *p = s; *p; p++)
        if (*p >= '0' && *p <= '9') { *p = (char)(*p == '9' ? '0' : *p + 1); return; }
    for (char *p = s; *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) { *p = (char)(*p ^ 0x20); return; }
    if (strlen(s) + 1 < cap) strcat(s, "x");
}

/* Native memory type for a stored class and size. */
static hid_t native_type(H5T_class_t cls, size_t size, int sign) {
    if (cls == H5T_FLOAT) return size == 8 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    switch (size) {
    case 1: return sign ? H5T_NATIVE_INT8 : H5T_NATIVE_UINT8;
    case 2: return sign ? H5T_NATIVE_INT16 : H5T_NATIVE_UINT16;
    case 4: return sign ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT32;
    default: return sign ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64;
    }
}

/* Replaces dataset `path` with one of type (cls, size) and shape dims, holding `data` (in the
   native type). Chunked with Fletcher-32 in current files, as the library writes; contiguous in
   format version 1 files. */
static int dataset_replace(hid_t f, const char *path, int legacy, H5T_class_t cls, size_t size, int sign, int rank,
                           const hsize_t *dims, const void *data) {
    if (H5Lexists(f, path, H5P_DEFAULT) > 0 && H5Ldelete(f, path, H5P_DEFAULT) < 0) return 0;
    hsize_t count = 1;
    for (int i = 0; i < rank; i++) count *= dims[i];
    hid_t ftype = cls == H5T_FLOAT ? (size == 8 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE)
                : size == 8 ? (sign ? H5T_STD_I64LE : H5T_STD_U64LE)
                : size == 4 ? (sign ? H5T_STD_I32LE : H5T_STD_U32LE)
                : size == 2 ? (sign ? H5T_STD_I16LE : H5T_STD_U16LE)
                : (sign ? H5T_STD_I8LE : H5T_STD_U8LE);
    hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (!legacy && count > 0) {
        H5Pset_chunk(dcpl, rank, dims);
        H5Pset_fletcher32(dcpl);
    }
    hid_t d = H5Dcreate2(f, path, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int ok = d >= 0 && (count == 0 || H5Dwrite(d, native_type(cls, size, sign), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    return ok;
}

/* Reads a whole dataset converted to (cls, size, sign), with room for `extra` more elements. */
static void *dataset_read(hid_t f, const dset_info *d, H5T_class_t cls, size_t size, int sign, hsize_t extra) {
    unsigned char *buf = calloc((size_t)(d->count + extra) + 1, size);
    if (!buf) die("out of memory");
    if (d->count == 0) return buf;
    hid_t ds = H5Dopen2(f, d->path, H5P_DEFAULT);
    if (ds < 0 || H5Dread(ds, native_type(cls, size, sign), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) die("cannot read /%s", d->path);
    H5Dclose(ds);
    return buf;
}

static void dims_text(char *out, size_t cap, int rank, const hsize_t *dims) {
    int len = snprintf(out, cap, "(");
    for (int i = 0; i < rank && len < (int)cap - 24; i++) len += snprintf(out + len, cap - (size_t)len, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    snprintf(out + len, cap - (size_t)len, ")");
}

static const char *type_name(H5T_class_t cls, size_t size, int sign) {
    if (cls == H5T_FLOAT) return size == 8 ? "float64" : "float32";
    if (size == 8) return sign ? "int64" : "uint64";
    if (size == 4) return sign ? "int32" : "uint32";
    if (size == 2) return sign ? "int16" : "uint16";
    return sign ? "int8" : "uint8";
}

/* A structural edit of a copy of the original, through HDF5 (every checksum stays valid). */
static void mutate_structure(const target *t, case_desc *c, uint64_t *rng) {
    if (!write_file(case_path, t->bytes, t->size)) die("cannot write %s", case_path);
    if (c->mutation == M_SWAP_DATASETS && t->npairs == 0) c->mutation = M_DELETE_DATASET;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* new objects in the layout of the file: v110 for current files, the oldest for version 1 */
    if (!t->legacy) H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
    hid_t f = H5Fopen(case_path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (f < 0) die("cannot open the copy of %s for editing", t->original);
    char *w = c->what;
    size_t cap = sizeof c->what;
    int ok = 1;
    const dset_info *d = &t->dsets[below(rng, (uint64_t)t->ndsets)];
    switch (c->mutation) {
    case M_DELETE_DATASET:
        snprintf(c->object, sizeof c->object, "/%s", d->path);
        snprintf(w, cap, "delete /%s", d->path);
        ok = H5Ldelete(f, d->path, H5P_DEFAULT) >= 0;
        break;
    case M_RESHAPE_DATASET: {
        hsize_t dims[8];
        int rank = d->rank;
        memcpy(dims, d->dims, sizeof dims);
        if (rank == 2 && dims[0] != dims[1]) { dims[0] = d->dims[1]; dims[1] = d->dims[0]; }
        else if (rank >= 2) { dims[0] = d->count; rank = 1; }
        else if (rank == 1 && dims[0] > 1) dims[0] -= 1;
        else { rank = 1; dims[0] = d->count + 1; }
        void *data = dataset_read(f, d, d->cls, d->size, d->sign, 1);
        char from[128], to[128];
        dims_text(from, sizeof from, d->rank, d->dims);
        dims_text(to, sizeof to, rank, dims);
        snprintf(c->object, sizeof c->object, "/%s", d->path);
        snprintf(w, cap, "/%s shape %s -> %s", d->path, from, to);
        ok = dataset_replace(f, d->path, t->legacy, d->cls, d->size, d->sign, rank, dims, data);
        free(data);
        break;
    }
    case M_RETYPE_DATASET: {
        H5T_class_t cls = d->cls;
        size_t size = d->size;
        int sign = 1;
        if (cls == H5T_FLOAT) size = size == 4 ? 8 : 4;
        else size = size == 8 ? 4 : 8;
        void *data = dataset_read(f, d, cls, size, sign, 0);
        snprintf(c->object, sizeof c->object, "/%s", d->path);
        snprintf(w, cap, "/%s dtype %s -> %s (values converted)", d->path, type_name(d->cls, d->size, d->sign), type_name(cls, size, sign));
        ok = dataset_replace(f, d->path, t->legacy, cls, size, sign, d->rank, d->dims, data);
        free(data);
        break;
    }
    case M_SWAP_DATASETS: {
        const int *p = t->pairs[below(rng, (uint64_t)t->npairs)];
        const char *a = t->dsets[p[0]].path, *b = t->dsets[p[1]].path;
        snprintf(c->object, sizeof c->object, "/%s", a);
        snprintf(w, cap, "swap /%s and /%s", a, b);
        ok = H5Lmove(f, a, f, "fuzz-swap-tmp", H5P_DEFAULT, H5P_DEFAULT) >= 0 &&
             H5Lmove(f, b, f, a, H5P_DEFAULT, H5P_DEFAULT) >= 0 &&
             H5Lmove(f, "fuzz-swap-tmp", f, b, H5P_DEFAULT, H5P_DEFAULT) >= 0;
        break;
    }
    case M_ADD_DATASET: {
        const char *g = t->groups[below(rng, (uint64_t)t->ngroups)];
        char path[300];
        snprintf(path, sizeof path, "%.250s/unexpected_dataset", strcmp(g, "/") == 0 ? "" : g);
        int32_t values[3] = {1, 2, 3};
        hsize_t dims[1] = {3};
        snprintf(c->object, sizeof c->object, "%s", path);
        snprintf(w, cap, "add %s int32 (3)", path);
        ok = dataset_replace(f, path, t->legacy, H5T_INTEGER, 4, 1, 1, dims, values);
        break;
    }
    case M_SPEC_SEED:
    case M_SPEC_FIELD:
    case M_REWRITE_ATTR:
    case M_STRING_KIND: {
        /* spec-seed: the root spec with its seed changed; spec-field: a number in it set to 0, -1 or
           something large (a config that would need GBs); rewrite-attr: any other attribute nudged
           (an integer + 1, a string's first digit or letter); string-kind: a string attribute stored
           variable-length instead of fixed (or the reverse in version 1 files) */
        const attr_info *a = NULL;
        int candidates[4096], n = 0;
        for (int i = 0; i < t->nattrs && n < 4096; i++) {
            const attr_info *x = &t->attrs[i];
            int root = strcmp(x->obj, "/") == 0;
            if (c->mutation == M_SPEC_SEED || c->mutation == M_SPEC_FIELD ? root && strcmp(x->name, "spec") == 0
                : c->mutation == M_STRING_KIND ? x->cls == H5T_STRING
                : !(root && (!strcmp(x->name, "format") || !strcmp(x->name, "format_version") ||
                             !strcmp(x->name, "spec") || !strcmp(x->name, "digest"))))
                candidates[n++] = i;
        }
        if (n == 0) die("%s has no attribute for %s", t->name, mutation_names[c->mutation]);
        a = &t->attrs[candidates[below(rng, (uint64_t)n)]];
        snprintf(c->object, sizeof c->object, "%s@%s", a->obj, a->name);
        hid_t obj = H5Oopen(f, a->obj, H5P_DEFAULT);
        if (obj < 0) die("cannot open %s in the copy of %s", a->obj, t->name);
        if (a->cls == H5T_INTEGER) {
            int64_t v = 0;
            hid_t at = H5Aopen(obj, a->name, H5P_DEFAULT);
            H5Aread(at, H5T_NATIVE_INT64, &v);
            H5Aclose(at);
            snprintf(w, cap, "%s@%s = %" PRId64 " -> %" PRId64, a->obj, a->name, v, v + 1);
            ok = attr_write_int(obj, a->name, v + 1);
        } else {
            int vlen = 0;
            char *text = attr_read_string(obj, a->name, &vlen);
            if (!text) die("cannot read %s@%s in %s", a->obj, a->name, t->name);
            size_t tcap = strlen(text) + 64;
            char *edited = xmalloc(tcap);
            snprintf(edited, tcap, "%s", text);
            if (c->mutation == M_SPEC_FIELD) {
                char *numbers[256];
                int k = 0;
                for (char *q = strstr(edited, "\":"); q && k < 256; q = strstr(q + 2, "\":"))
                    if ((q[2] >= '0' && q[2] <= '9') || q[2] == '-') numbers[k++] = q + 2;
                if (k == 0) die("%s: no number in the spec", t->name);
                static const char *values[] = {"0", "-1", "8192", "1000000000"};
                char *num = numbers[below(rng, (uint64_t)k)], *end = num + 1;
                const char *v = values[below(rng, 4)];
                while (*end && *end != ',' && *end != '}' && *end != ']') end++;
                char *key = num - 3;
                while (key > edited && *key != '"') key--;
                snprintf(w, cap, "%s@%s: %.*s %.*s -> %s", a->obj, a->name, (int)(num - key), key, (int)(end - num), num, v);
                memmove(num + strlen(v), end, strlen(end) + 1);
                memcpy(num, v, strlen(v));
                ok = attr_write_string(obj, a->name, edited, vlen);
            } else if (c->mutation == M_STRING_KIND) {
                snprintf(w, cap, "%s@%s stored as a %s string", a->obj, a->name, vlen ? "fixed-length" : "variable-length");
                ok = attr_write_string(obj, a->name, text, !vlen);
            } else {
                char *seed = c->mutation == M_SPEC_SEED ? strstr(edited, "\"seed\":") : NULL;
                if (seed) {
                    char *digits = seed + strlen("\"seed\":");
                    while (*digits == ' ') digits++;
                    char *end = NULL;
                    long long s = strtoll(digits, &end, 10);
                    char rest[64];
                    snprintf(rest, sizeof rest, "%lld", s + 1);
                    size_t tail = strlen(end);
                    memmove(digits + strlen(rest), end, tail + 1);
                    memcpy(digits, rest, strlen(rest));
                    snprintf(w, cap, "%s@%s: seed %lld -> %lld", a->obj, a->name, s, s + 1);
                } else {
                    nudge_text(edited, tcap);
                    size_t at = 0;
                    while (text[at] && text[at] == edited[at]) at++;
                    snprintf(w, cap, "%s@%s: character %zu '%c' -> '%c'", a->obj, a->name, at, text[at] ? text[at] : ' ', edited[at]);
                }
                ok = attr_write_string(obj, a->name, edited, vlen);
            }
            free(text);
            free(edited);
        }
        H5Oclose(obj);
        break;
    }
    case M_EXTRA_ROOT_ATTR: {
        hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
        snprintf(c->object, sizeof c->object, "/@unexpected_attribute");
        snprintf(w, cap, "add root attribute unexpected_attribute = \"fuzz\"");
        ok = attr_write_string(root, "unexpected_attribute", "fuzz", t->legacy);
        H5Gclose(root);
        break;
    }
    case M_FORMAT_VERSION: {
        static const int64_t values[] = {0, 1, 3, 99, -1, INT64_MAX, INT64_MIN};
        int k = (int)below(rng, 8);
        hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
        snprintf(c->object, sizeof c->object, "/@format_version");
        if (k == 7) {
            snprintf(w, cap, "format_version = \"2\" (a string)");
            ok = attr_write_string(root, "format_version", "2", t->legacy);
        } else {
            snprintf(w, cap, "format_version = %" PRId64, values[k]);
            ok = attr_write_int(root, "format_version", values[k]);
        }
        H5Gclose(root);
        break;
    }
    default: break;
    }
    if (H5Fclose(f) < 0) ok = 0;
    if (!ok) die("%s: could not apply %s (%s)", t->name, mutation_names[c->mutation], w);
}

/* ---- outcomes, and known library issues ------------------------------------------------------ */

enum outcome {
    O_REFUSED, O_EQUAL, O_CHANGED_V1, O_KNOWN,
    F_CRASH, F_HANG, F_STATUS, F_DIFFERENT, F_LITTER, N_OUTCOMES
};
static const char *outcome_names[N_OUTCOMES] = {
    "refused", "loaded-equal", "loaded-changed-v1", "known", "crash-signal", "hang", "other-status", "loaded-different", "litter"};
#define FIRST_FAIL F_CRASH

/* Failures of a known, reported cause: listed and counted as "known" (not failed) unless --strict.
   Remove an entry when its issue is fixed. A case matches if every given field matches. */
typedef struct {
    const char *targets;  /* space-separated target names */
    const char *loader;   /* NULL: any */
    enum outcome outcome; /* the failure */
    const char *object;   /* prefix of the dataset or attribute a structural edit touched (NULL: any) */
    const char *detail;   /* a substring of the failure's detail (NULL: any) */
    const char *issue;
} known_issue;

#define CURRENT "dataset model checkpoint edit"
#define V1 "v1-dataset v1-model v1-checkpoint v1-edit"
static const known_issue KNOWN[] = {
    /* none known: every failure fails the suite */
    {NULL, NULL, F_CRASH, NULL, NULL, NULL},
};

static int word_in(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return 1;
    return 0;
}

static const known_issue *known_for(const case_desc *c, enum outcome o, const char *detail) {
    for (size_t i = 0; i < sizeof KNOWN / sizeof *KNOWN; i++) {
        const known_issue *k = &KNOWN[i];
        if (!k->targets) continue; /* the table's end marker */
        if (k->outcome != o || !word_in(k->targets, targets[c->target].name)) continue;
        if (k->loader && strcmp(loader_names[c->loader], k->loader) != 0) continue;
        if (k->object && strncmp(c->object, k->object, strlen(k->object)) != 0) continue;
        if (k->detail && !strstr(detail, k->detail)) continue;
        return k;
    }
    return NULL;
}

/* ---- running one load in a child process ------------------------------------------------------ */

/* The child's exit code: an outcome, or C_STATUS + the status it got. */
enum child_code { C_REFUSED = 10, C_EQUAL, C_DIFFERENT, C_STATUS = 20 };

/* In the child: on a crash, the stack (symbol names) goes to the parent through the pipe. */
static int crash_fd = -1;
static void on_crash(int sig) {
    void *frames[64];
    int n = backtrace(frames, 64);
    static const char mark[] = "\nstack:\n";
    ssize_t w = write(crash_fd, mark, sizeof mark - 1);
    (void)w;
    if (n > 2) backtrace_symbols_fd(frames + 2, n - 2, crash_fd); /* past this handler and the signal frame */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_crashes(int fd) {
    static char altstack[1 << 16];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    void *warm[1];
    backtrace(warm, 1); /* loads the unwinder now, not in the handler */
    crash_fd = fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
}

/* " in f < g < h": the named frames of a stack from backtrace_symbols_fd, innermost first. */
static void stack_summary(const char *stack, char *out, size_t cap) {
    int len = snprintf(out, cap, " in"), named = 0;
    for (const char *line = stack; line && *line && named < 8; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *open = strchr(line, '('), *nl = strchr(line, '\n');
        if (!open || (nl && open > nl)) continue;
        const char *end = open + 1;
        while (*end && *end != '+' && *end != ')' && *end != '\n') end++;
        int n = (int)(end - open - 1);
        if (n <= 0) continue;
        if (len < (int)cap - 8) len += snprintf(out + len, cap - (size_t)len, "%s %.*s", named ? " <" : "", n, open + 1);
        named++;
    }
    if (!named) out[0] = '\0';
}

/* Leftovers in the child's TMPDIR: removes them and says whether there were any. */
static int clean_tmp_dir(char *names, size_t cap) {
    DIR *d = opendir(tmp_dir);
    int found = 0;
    if (!d) return 0;
    names[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
        if (strlen(names) + strlen(e->d_name) + 2 < cap) { strcat(names, " "); strcat(names, e->d_name); }
        unlink(p);
        found = 1;
    }
    closedir(d);
    return found;
}

/* Loads case_path in a forked child under the limits; returns the outcome, `detail` says more. */
static enum outcome run_isolated(const target *t, enum loader loader, char *detail, size_t cap) {
    int fds[2];
    if (pipe(fds) != 0) die("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        catch_crashes(fds[1]);
        setpgid(0, 0); /* the tool the library may spawn joins this group, so it ends with us */
        int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (log >= 0) { dup2(log, 2); close(log); }
        setenv("TMPDIR", tmp_dir, 1);
        struct rlimit rl;
        getrlimit(RLIMIT_AS, &rl);
        rl.rlim_cur = child_as_limit;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_AS, &rl);
        alarm(opt.alarm_seconds);
        snapshot s = {0};
        char msg[2048];
        int code;
        int32_t st = run_loader(t, loader, &s);
        if (st == BH_ERR_FORMAT && bh_last_error()[0] != '\0') {
            code = C_REFUSED;
            snprintf(msg, sizeof msg, "%s", bh_last_error());
        } else if (st == BH_OK) {
            code = snap_equal(&t->ref[loader], &s, msg, sizeof msg) ? C_EQUAL : C_DIFFERENT;
            if (code == C_EQUAL) msg[0] = '\0';
        } else {
            code = C_STATUS + (st >= 0 && st < 10 ? st : 9);
            snprintf(msg, sizeof msg, "status %d (%s): \"%s\"", (int)st, bh_status_str(st), bh_last_error());
        }
        ssize_t wr = write(fds[1], msg, strlen(msg));
        (void)wr;
        _exit(code);
    }
    close(fds[1]);
    setpgid(pid, pid);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    kill(-pid, SIGKILL); /* anything the child started and left running (ESRCH if none) */
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fds[0], detail + got, cap - 1 - got)) > 0) got += (size_t)r;
    detail[got] = '\0';
    close(fds[0]);
    char litter[1024];
    int littered = clean_tmp_dir(litter, sizeof litter);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (sig == SIGALRM) {
            snprintf(detail, cap, "no answer after %u s (alarm)", opt.alarm_seconds);
            return F_HANG;
        }
        char where[1024];
        const char *stack = strstr(detail, "\nstack:\n");
        stack_summary(stack ? stack + 8 : "", where, sizeof where);
        snprintf(detail, cap, "killed by signal %d (%s)%s", sig, strsignal(sig), where);
        return F_CRASH;
    }
    for (char *p = detail; *p; p++)
        if (*p == '\n') *p = ' ';
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    enum outcome o;
    switch (code) {
    case C_REFUSED: o = O_REFUSED; break;
    case C_EQUAL: o = O_EQUAL; break;
    case C_DIFFERENT: o = t->legacy ? O_CHANGED_V1 : F_DIFFERENT; break;
    default:
        if (code < C_STATUS || code >= C_STATUS + 10) {
            snprintf(detail, cap, "the child exited with code %d", code);
            return F_STATUS;
        }
        /* Resuming from a format version 1 checkpoint whose config, run or values were changed
           (undetectably) may be refused as any intact file of another run would be: the caller's
           mismatch, or a step that overflows. */
        o = t->legacy && loader == L_RESUME && (code == C_STATUS + BH_ERR_INVALID || code == C_STATUS + BH_ERR_NUMERIC)
            ? O_CHANGED_V1 : F_STATUS;
    }
    if (littered) {
        snprintf(detail, cap, "left behind in TMPDIR:%s", litter);
        return F_LITTER;
    }
    return o;
}

/* ---- the originals ---------------------------------------------------------------------------- */

#define TRY(call) do { if ((call) != BH_OK) die("%s: %s", #call, bh_last_error()); } while (0)

static const char *TRAIN_SPEC = "{\"epochs\": 2, \"batch_size\": 32, \"learning_rate\": 0.003}";

static void make_originals(const char *dir, bh_dataset **ds_out) {
    char p[4200];
    bh_dataset *ds = NULL;
    bh_model *m = NULL, *edited = NULL, *edited2 = NULL;
    bh_trainer *tr = NULL;
    bh_editset *es = NULL;
    bh_edit *e = NULL;
    char *report = NULL;
    TRY(bh_dataset_generate("{\"preset\": \"tiny\", \"seed\": 7}", &ds));
    snprintf(p, sizeof p, "%s/dataset.h5", dir);
    TRY(bh_dataset_save(ds, p));
    TRY(bh_model_create("{\"preset\": \"tiny\"}", ds, &m));
    TRY(bh_trainer_begin(m, ds, TRAIN_SPEC, &tr));
    for (int i = 0; i < 3; i++)
        if (bh_trainer_step(tr, NULL) != BH_STEP) die("training step %d: %s", i, bh_last_error());
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir); /* weights, moments, position, history */
    TRY(bh_trainer_save(tr, p));
    bh_trainer_free(tr);
    snprintf(p, sizeof p, "%s/model.h5", dir);
    TRY(bh_model_save(m, p));
    TRY(bh_editset_create(ds, "{\"kind\": \"single\", \"seed\": 3}", &es));
    TRY(bh_model_clone(m, &edited));
    TRY(bh_edit_begin(edited, es, "{\"method\": \"lora\", \"rank\": 4, \"alpha\": 8, \"layers\": {\"blocks\": [1], "
                                  "\"sublayers\": \"mlp\"}, \"optimizer\": {\"epochs\": 1}}", &e));
    int32_t st;
    while ((st = bh_edit_step(e, NULL)) == BH_STEP) {}
    if (st != BH_DONE) die("edit step: %s", bh_last_error());
    TRY(bh_edit_end(e, &report));
    bh_string_free(report);
    snprintf(p, sizeof p, "%s/edit.h5", dir);
    TRY(bh_edit_save(e, p));
    bh_edit_free(e);
    /* an unmerged LoRA edit's adapter, on every matrix of both blocks */
    bh_adapter *a = NULL;
    TRY(bh_model_clone(m, &edited2));
    TRY(bh_edit_begin(edited2, es, "{\"method\": \"lora\", \"rank\": 2, \"alpha\": 4, \"merge\": false, "
                                   "\"optimizer\": {\"epochs\": 1}}", &e));
    while ((st = bh_edit_step(e, NULL)) == BH_STEP) {}
    if (st != BH_DONE) die("edit step: %s", bh_last_error());
    TRY(bh_edit_end(e, &report));
    bh_string_free(report);
    TRY(bh_edit_adapter(e, &a));
    snprintf(p, sizeof p, "%s/adapter.h5", dir);
    TRY(bh_adapter_save(a, p));
    bh_adapter_free(a);
    bh_edit_free(e);
    /* analysis files: a trace (with a severed kind), the rank of the merged edit, a prompt recording */
    bh_tracer *trc = NULL;
    TRY(bh_trace_begin(m, ds, "{\"prompts\": [0, 3], \"samples\": 2, \"severed\": [\"mlp\"]}", &trc));
    while ((st = bh_trace_step(trc, NULL)) == BH_STEP) {}
    if (st != BH_DONE) die("trace step: %s", bh_last_error());
    snprintf(p, sizeof p, "%s/trace.h5", dir);
    TRY(bh_trace_save(trc, p));
    bh_trace_free(trc);
    snprintf(p, sizeof p, "%s/rank.h5", dir);
    TRY(bh_rank_models(m, edited, p, NULL));
    char spec[4400];
    snprintf(spec, sizeof spec, "{\"path\": \"%s/activations.h5\", \"sites\": [\"mlp_hidden\"], \"blocks\": [0], \"count\": 6}", dir);
    bh_recorder *rec = NULL;
    TRY(bh_record_begin(m, ds, NULL, NULL, NULL, 0, spec, &rec));
    while ((st = bh_record_step(rec, NULL)) == BH_STEP) {}
    if (st != BH_DONE) die("record step: %s", bh_last_error());
    TRY(bh_record_end(rec, NULL));
    bh_record_free(rec);
    bh_model_free(edited2);
    bh_editset_free(es);
    bh_model_free(edited);
    bh_model_free(m);
    *ds_out = ds;
}

static void setup_targets(const char *originals, bh_dataset *ds) {
    static const char *files[] = {"dataset.h5", "model.h5", "checkpoint.h5", "edit.h5", "adapter.h5", "trace.h5", "rank.h5",
                                  "activations.h5"};
    bh_dataset *legacy_ds = NULL;
    for (int i = 0; i < N_TARGETS; i++) {
        target *t = &targets[i];
        snprintf(t->original, sizeof t->original, "%s/%s", t->legacy ? opt.legacy : originals, files[t->kind]);
        t->bytes = read_file(t->original, &t->size);
        if (!t->bytes || t->size == 0) die("cannot read %s", t->original);
        scan_structure(t);
        if (t->kind == K_CHECKPOINT) {
            t->resume_spec = resume_spec_of(t->original);
            if (!t->resume_spec) die("%s has no /trainer state with a training spec", t->original);
            TRY(bh_model_load(t->original, &t->resume_model));
            if (t->legacy) {
                char p[4200];
                snprintf(p, sizeof p, "%s/dataset.h5", opt.legacy);
                if (!legacy_ds) TRY(bh_dataset_load(p, &legacy_ds));
                t->resume_ds = legacy_ds;
            } else {
                t->resume_ds = ds;
            }
        }
        if (t->kind == K_ADAPTER) {
            /* the base model the adapter was trained on (the saved model.h5) */
            char p[4200];
            snprintf(p, sizeof p, "%s/model.h5", originals);
            TRY(bh_model_load(p, &t->resume_model));
        }
        /* references: the original, loaded from case_path as every case is */
        if (!write_file(case_path, t->bytes, t->size)) die("cannot write %s", case_path);
        for (int l = 0; l < N_LOADERS; l++) {
            if (!t->loader_weight[l]) continue;
            int32_t st = run_loader(t, (enum loader)l, &t->ref[l]);
            if (st != BH_OK) die("%s/%s of the undamaged original: %s", t->name, loader_names[l], bh_last_error());
        }
    }
}

/* Controls: each undamaged original, loaded in a child, must give its reference. */
static void run_controls(void) {
    for (int i = 0; i < N_TARGETS; i++) {
        target *t = &targets[i];
        if (!write_file(case_path, t->bytes, t->size)) die("cannot write %s", case_path);
        for (int l = 0; l < N_LOADERS; l++) {
            if (!t->loader_weight[l]) continue;
            char detail[2048];
            enum outcome o = run_isolated(t, (enum loader)l, detail, sizeof detail);
            if (o != O_EQUAL) die("control %s/%s: %s %s", t->name, loader_names[l], outcome_names[o], detail);
        }
    }
}

/* ---- the run ----------------------------------------------------------------------------------- */

typedef struct {
    case_desc c;
    enum outcome o;
    enum outcome failure; /* what a known issue's case failed with */
    char detail[2048];
    char saved[4300];
    const char *issue;
} result;

static void make_case(long index, case_desc *c) {
    uint64_t rng = case_state(opt.seed, index);
    int weights[N_TARGETS];
    for (int i = 0; i < N_TARGETS; i++) weights[i] = targets[i].weight;
    memset(c, 0, sizeof *c);
    c->index = index;
    c->target = pick(&rng, weights, N_TARGETS);
    const target *t = &targets[c->target];
    c->loader = (enum loader)pick(&rng, t->loader_weight, N_LOADERS);
    c->mutation = (enum mutation)pick(&rng, mutation_weights, N_MUTATIONS);
    if (c->mutation <= M_ZERO_RANGE) mutate_bytes(t, c, &rng);
    else mutate_structure(t, c, &rng);
}

static void run_case(long index, result *r) {
    make_case(index, &r->c);
    const target *t = &targets[r->c.target];
    r->o = run_isolated(t, r->c.loader, r->detail, sizeof r->detail);
    r->saved[0] = '\0';
    r->issue = NULL;
    if (r->o >= FIRST_FAIL) {
        const known_issue *k = known_for(&r->c, r->o, r->detail);
        r->failure = r->o;
        if (k) {
            r->issue = k->issue;
            if (!opt.strict) r->o = O_KNOWN;
        }
        mkdir(fail_dir, 0755);
        snprintf(r->saved, sizeof r->saved, "%s/case-%ld-%s-%s.h5", fail_dir, index, t->name, mutation_names[r->c.mutation]);
        if (!copy_file(case_path, r->saved)) snprintf(r->saved, sizeof r->saved, "(could not save)");
        char logcopy[4400];
        snprintf(logcopy, sizeof logcopy, "%.4290s.log", r->saved);
        copy_file(log_path, logcopy);
    }
}

static void print_result(const result *r) {
    const target *t = &targets[r->c.target];
    char kind[64];
    snprintf(kind, sizeof kind, r->o == O_KNOWN ? "known (%s)" : "%s", outcome_names[r->o == O_KNOWN ? r->failure : r->o]);
    printf("  %s case %ld: %s/%s %s %s\n", kind, r->c.index, t->name, loader_names[r->c.loader],
           mutation_names[r->c.mutation], r->c.what);
    if (r->detail[0]) printf("      %s\n", r->detail);
    if (r->issue) printf("      known issue: %s\n", r->issue);
    if (r->saved[0]) printf("      file: %s   reproduce: fuzz_files --seed %" PRIu64 " --only %ld\n", r->saved, opt.seed, r->c.index);
}

static void usage(void) {
    fprintf(stderr, "usage: fuzz_files --legacy DIR [--cases N] [--seed S] [--work DIR] [--only I] [--strict] [--verbose] [--alarm S]\n"
                    "       fuzz_files --legacy DIR --check TYPE[/LOADER] FILE [--no-fork]\n");
    exit(2);
}

static uint64_t mapped_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--cases") && v) opt.cases = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--seed") && v) opt.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--legacy") && v) opt.legacy = argv[++i];
        else if (!strcmp(a, "--work") && v) opt.work = argv[++i];
        else if (!strcmp(a, "--only") && v) opt.only = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--check") && v && i + 2 < argc) { opt.check_type = argv[++i]; opt.check_file = argv[++i]; }
        else if (!strcmp(a, "--strict")) opt.strict = 1;
        else if (!strcmp(a, "--verbose")) opt.verbose = 1;
        else if (!strcmp(a, "--no-fork")) opt.no_fork = 1;
        else if (!strcmp(a, "--alarm") && v) opt.alarm_seconds = (unsigned)strtoul(argv[++i], NULL, 10);
        else usage();
    }
    if (!opt.legacy || opt.cases < 0) usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    char originals[4200];
    mkdir(opt.work, 0755);
    snprintf(originals, sizeof originals, "%s/originals", opt.work);
    snprintf(case_path, sizeof case_path, "%s/case.h5", opt.work);
    snprintf(log_path, sizeof log_path, "%s/case.log", opt.work);
    snprintf(tmp_dir, sizeof tmp_dir, "%s/tmp", opt.work);
    snprintf(fail_dir, sizeof fail_dir, "%s/failures", opt.work);
    mkdir(originals, 0755);
    mkdir(tmp_dir, 0755);

    double start = now_seconds();
    bh_set_num_threads(1); /* one thread: modest, and resumed steps are bit-reproducible */
    bh_dataset *ds = NULL;
    char reuse[4300];
    snprintf(reuse, sizeof reuse, "%s/adapter.h5", originals); /* written last */
    if (access(reuse, R_OK) == 0) {
        /* a previous run's originals: HDF5 files carry timestamps, and edit reports timings, so
           remade originals differ in some bytes; reusing them reproduces a case exactly */
        snprintf(reuse, sizeof reuse, "%s/dataset.h5", originals);
        TRY(bh_dataset_load(reuse, &ds));
        printf("fuzz_files: reusing the originals in %s\n", originals);
    } else {
        make_originals(originals, &ds);
    }
    setup_targets(originals, ds);
    child_as_limit = (rlim_t)(mapped_bytes() + opt.address_space_extra);
    run_controls();
    printf("fuzz_files: seed %" PRIu64 ", %ld cases; each load in a child with RLIMIT_AS = %.1f GiB "
           "(the harness's %.1f GiB + %.1f GiB) and a %u s alarm; setup %.1f s\n",
           opt.seed, opt.cases, (double)child_as_limit / (1 << 30), (double)(child_as_limit - opt.address_space_extra) / (1 << 30),
           (double)opt.address_space_extra / (1 << 30), opt.alarm_seconds, now_seconds() - start);

    if (opt.check_type) {
        char tname[64];
        snprintf(tname, sizeof tname, "%s", opt.check_type);
        char *slash = strchr(tname, '/');
        if (slash) *slash++ = '\0';
        for (int i = 0; i < N_TARGETS; i++) {
            if (strcmp(targets[i].name, tname) != 0) continue;
            if (!copy_file(opt.check_file, case_path)) die("cannot read %s", opt.check_file);
            int bad = 0;
            for (int l = 0; l < N_LOADERS; l++) {
                if (!targets[i].loader_weight[l] || (slash && strcmp(slash, loader_names[l]) != 0)) continue;
                char detail[2048];
                if (opt.no_fork) { /* in this process, for a debugger */
                    snapshot s = {0};
                    int32_t st = run_loader(&targets[i], (enum loader)l, &s);
                    if (st == BH_OK) snap_equal(&targets[i].ref[l], &s, detail, sizeof detail);
                    printf("%s/%s: status %d %s\n", tname, loader_names[l], (int)st, st == BH_OK ? detail : bh_last_error());
                    continue;
                }
                enum outcome o = run_isolated(&targets[i], (enum loader)l, detail, sizeof detail);
                printf("%s/%s: %s %s\n", tname, loader_names[l], outcome_names[o], detail);
                bad |= o >= FIRST_FAIL;
            }
            return bad;
        }
        die("unknown type %s", tname);
    }

    long first = opt.only >= 0 ? opt.only : 0, last = opt.only >= 0 ? opt.only + 1 : opt.cases;
    long counts[N_TARGETS][N_OUTCOMES] = {{0}}, by_mutation[N_MUTATIONS][N_OUTCOMES] = {{0}};
    double seconds[N_TARGETS] = {0};
    result *notable = NULL;
    long n_notable = 0;
    double run_start = now_seconds();
    for (long i = first; i < last; i++) {
        result r;
        double t0 = now_seconds();
        run_case(i, &r);
        seconds[r.c.target] += now_seconds() - t0;
        counts[r.c.target][r.o]++;
        by_mutation[r.c.mutation][r.o]++;
        if (r.o >= FIRST_FAIL || r.o == O_KNOWN) {
            notable = realloc(notable, (size_t)(n_notable + 1) * sizeof *notable);
            if (!notable) die("out of memory");
            notable[n_notable++] = r;
        }
        if (opt.verbose || opt.only >= 0) print_result(&r);
        else if ((i + 1) % 100 == 0) fprintf(stderr, "  %ld/%ld cases (%.0f s)\n", i + 1 - first, last - first, now_seconds() - run_start);
    }

    if (opt.only >= 0) return n_notable && notable[0].o >= FIRST_FAIL;
    printf("\n%-14s %6s", "type", "cases");
    for (int o = 0; o < N_OUTCOMES; o++) printf(" %*s", (int)strlen(outcome_names[o]), outcome_names[o]);
    printf(" %8s\n", "ms/case");
    long total[N_OUTCOMES] = {0}, ncases = 0;
    for (int i = 0; i < N_TARGETS; i++) {
        long n = 0;
        for (int o = 0; o < N_OUTCOMES; o++) { n += counts[i][o]; total[o] += counts[i][o]; }
        ncases += n;
        printf("%-14s %6ld", targets[i].name, n);
        for (int o = 0; o < N_OUTCOMES; o++) printf(" %*ld", (int)strlen(outcome_names[o]), counts[i][o]);
        printf(" %8.0f\n", n ? 1000.0 * seconds[i] / (double)n : 0.0);
    }
    printf("%-14s %6ld", "total", ncases);
    for (int o = 0; o < N_OUTCOMES; o++) printf(" %*ld", (int)strlen(outcome_names[o]), total[o]);
    printf("\n\n%-16s %5s", "mutation", "cases");
    for (int o = 0; o < N_OUTCOMES; o++) printf(" %*s", (int)strlen(outcome_names[o]), outcome_names[o]);
    printf("\n");
    for (int m = 0; m < N_MUTATIONS; m++) {
        long n = 0;
        for (int o = 0; o < N_OUTCOMES; o++) n += by_mutation[m][o];
        printf("%-16s %5ld", mutation_names[m], n);
        for (int o = 0; o < N_OUTCOMES; o++) printf(" %*ld", (int)strlen(outcome_names[o]), by_mutation[m][o]);
        printf("\n");
    }
    long failed = 0;
    for (int o = FIRST_FAIL; o < N_OUTCOMES; o++) failed += total[o];
    if (n_notable && opt.only < 0 && !opt.verbose) {
        printf("\nfailures%s:\n", total[O_KNOWN] ? " and known issues" : "");
        for (long i = 0; i < n_notable; i++) print_result(&notable[i]);
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("\nlargest resident set of a load: %.0f MB (with what the harness had when it forked)\n", (double)ru.ru_maxrss / 1024);
    printf("loaded-changed-v1: format version 1 files carry no checksums or digest; such a load passes "
           "(it stayed isolated and was not refused wrongly).\n");
    if (total[O_KNOWN]) printf("%ld cases hit known library issues (listed above; not counted; --strict fails them)\n", total[O_KNOWN]);
    printf("%.0f s in all\n", now_seconds() - start);
    printf("%ld passed, %ld failed\n", total[O_REFUSED] + total[O_EQUAL] + total[O_CHANGED_V1], failed);
    free(notable);
    bh_dataset_free(ds);
    return failed ? 1 : 0;
}
