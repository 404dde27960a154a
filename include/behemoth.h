/*
 * behemoth.h: the C API of libbehemoth, a CPU engine for studying knowledge editing and unlearning
 * in language models trained from scratch on fully synthetic facts.
 *
 * Conventions (after sqlite3.h and llama.h):
 *   - Every fallible call returns an int32_t status: BH_OK (0) or a BH_ERR_* code. The message for
 *     the last failure on the calling thread is bh_last_error(); it is owned by the library and valid
 *     until the next bh_* call on that thread.
 *   - Objects are opaque handles created through an out-parameter, which is set to NULL on failure.
 *     Each has exactly one *_free; *_free(NULL) does nothing. A handle is used by one thread at a
 *     time; distinct handles are independent.
 *   - Specs and reports are UTF-8 JSON. Unknown keys and wrong types are errors; every field has a
 *     documented default; reports echo the full spec they ran with. Strings returned through a
 *     char ** out-parameter are freed with bh_string_free.
 *   - Numeric data is copied into caller-allocated buffers: (buffer, capacity in elements, &count).
 *     The call stores the number of elements the full array has in *count. If buffer is NULL and
 *     capacity is 0 it only reports the count (BH_OK); if capacity is smaller than the count it
 *     copies nothing and returns BH_ERR_BUFFER_TOO_SMALL.
 *   - Long work is a state machine: *_begin, *_step (BH_STEP while there is more, BH_DONE at the
 *     end), *_end.
 *   - Behaviour never changes under an existing name; BH_ABI_VERSION changes only when an existing
 *     signature or meaning does. Compiles as C11 and as C++.
 *
 * Threads: matrix products use OpenBLAS's thread pool. OpenBLAS picks its kernels when it is
 * loaded: on CPUs that Debian 12's OpenBLAS 0.3.21 does not recognise, set OPENBLAS_CORETYPE in the
 * environment before the program starts (see README, "Choosing the BLAS core").
 */
#ifndef BEHEMOTH_H
#define BEHEMOTH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BH_VERSION "0.1.0"
#define BH_ABI_VERSION 1u

/* ---- Status codes -------------------------------------------------------------------------- */
#define BH_OK                    0
#define BH_ERR_INVALID           1  /* invalid argument: null pointer, bad size, malformed or out-of-range spec */
#define BH_ERR_MISUSE            2  /* a call out of order, or on a handle in the wrong state */
#define BH_ERR_IO                3  /* a file or folder could not be read or written */
#define BH_ERR_FORMAT            4  /* a file is not of the expected format or version, or is damaged */
#define BH_ERR_NUMERIC           5  /* numerical failure: NaN or Inf loss, singular matrix */
#define BH_ERR_CANCELLED         6  /* work was stopped before it finished */
#define BH_ERR_BUFFER_TOO_SMALL  7  /* a caller buffer is smaller than the data; *count says how many */
#define BH_ERR_NOMEM             8  /* an allocation failed */
#define BH_ERR_INTERNAL          9  /* a bug in the library: please report it with bh_last_error() */
#define BH_STEP                100  /* *_step: one step was taken and there is more to do */
#define BH_DONE                101  /* *_step: the work is finished */

/* ---- Library ------------------------------------------------------------------------------- */
const char *bh_version(void);            /* "0.1.0", static */
uint32_t    bh_abi_version(void);        /* compare with BH_ABI_VERSION at load time */
const char *bh_last_error(void);         /* thread-local; "" when the last call succeeded */
const char *bh_status_str(int32_t status); /* static text for a status code */
void        bh_string_free(char *s);     /* frees a string the library returned; NULL is a no-op */

/* Threads used by matrix products and the parallel element-wise kernels (1 to 1024). */
int32_t bh_set_num_threads(int32_t n);
int32_t bh_get_num_threads(void);

/* JSON about the machine and the BLAS in use: {"blas_core", "blas_config", "threads", "cpu_model",
   "cpu_features": [...], "recommended_core", "openblas_coretype_env", "warning"}. "warning" is
   non-empty when OpenBLAS runs kernels slower than the CPU supports (set OPENBLAS_CORETYPE to
   "recommended_core" in the environment before the program starts: OpenBLAS reads it at load). */
int32_t bh_runtime_info(char **json_out);

/* ---- Datasets: synthetic facts, vocabulary, sentences, evaluation prompts -------------------- */
typedef struct bh_dataset bh_dataset;

/* Generates a dataset from a JSON DatasetSpec ("{}" gives the defaults; see docs/formats.md). */
int32_t bh_dataset_generate(const char *spec_json, bh_dataset **out);
/* HDF5 file with format = "behemoth.dataset". Writes go to a temporary file renamed into place. */
int32_t bh_dataset_load(const char *path, bh_dataset **out);
int32_t bh_dataset_save(const bh_dataset *ds, const char *path);
/* The official generator's output folder (metadata/, data/, validations/). */
int32_t bh_dataset_import_reference(const char *dir, bh_dataset **out);
int32_t bh_dataset_export_reference(const bh_dataset *ds, const char *dir);
/* JSON: counts, vocabulary roles, relations, evaluation groups, arrays (name, dtype, shape), spec. */
int32_t bh_dataset_info(const bh_dataset *ds, char **json_out);
/* Copies a named array (listed by bh_dataset_info, same names as in the HDF5 file, e.g. "facts",
   "tokens", "offsets", "eval/sro/prompts") into a caller buffer. The dtype must match the call. */
int32_t bh_dataset_array_i32(const bh_dataset *ds, const char *name, int32_t *buffer, int64_t capacity, int64_t *count);
int32_t bh_dataset_array_i64(const bh_dataset *ds, const char *name, int64_t *buffer, int64_t capacity, int64_t *count);
/* Token ids to text in the official format (" SS 0172 0714 W0 ..."). */
int32_t bh_dataset_decode(const bh_dataset *ds, const int32_t *tokens, int64_t n_tokens, char **text_out);
void    bh_dataset_free(bh_dataset *ds);

#ifdef __cplusplus
}
#endif
#endif /* BEHEMOTH_H */
