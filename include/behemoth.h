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

/* Threads used by matrix products and the parallel element-wise kernels (1 to 1024). By default
   the engine splits each large product across these threads and sets OpenBLAS single-threaded (one
   pool; LAPACK then runs on one thread); BEHEMOTH_BLAS_THREADING=openblas in the environment gives
   the products OpenBLAS's own pool instead. OpenBLAS's thread count is process-wide. */
int32_t bh_set_num_threads(int32_t n);
int32_t bh_get_num_threads(void);

/* JSON about the build, the machine and the BLAS in use: {"library_version", "build": {"swift_runtime":
   "static" (the shipped library) or "dynamic", "compiler", "kernels" (the instruction set of the
   engine's own kernels), "configuration"}, "blas_core", "blas_config", "threads", "blas_threads",
   "blas_threading": {"selected": "engine" | "openblas", "requested", "refused"}, "cpu_model", "cpu_features": [...], "recommended_core", "openblas_coretype_env", "warning", "editors"}. "warning" is
   non-empty when OpenBLAS runs kernels slower than the CPU supports (set OPENBLAS_CORETYPE to
   "recommended_core" in the environment before the program starts: OpenBLAS reads it at load).
   "editors" lists the edit methods bh_edit_begin's "method" may name. */
int32_t bh_runtime_info(char **json_out);

/* ---- Files and limits ----------------------------------------------------------------------- */
/* Every file the library writes is HDF5 in the checksummed layout (superblock v3, Fletcher-32 on
   every array, fixed-length UTF-8 string attributes) with root attributes format, format_version,
   spec, library_version, layout, digest: "xxh64:<16 hex digits>", the content digest of the spec
   and the arrays (for models: the config and the weights; docs/formats.md), and file_digest, the
   same over every attribute and array in the file. Loaders check all of it
   and refuse a damaged or edited file with BH_ERR_FORMAT naming the problem. Files of format
   version 1 (Behemoth 0.1, an unchecksummed layout) are read by the `behemoth-files` tool in a separate
   process (found beside the library or in ../libexec, or through BEHEMOTH_TOOL), never in the caller's process. */
/* Checks any Behemoth file (layout, attributes, digest; datasets and models are loaded in full).
   JSON: {"path", "format", "format_version", "digest", "library_version", "arrays" (a count), "array_bytes",
   "loaded", "attributes" (the root attributes; spec, report, edit_set, tokenizer parsed as JSON),
   "group_attributes" ({"/trainer": {"state": {...}}, "/optimizer": {"step": n}} in a checkpoint), "contents" ([{"name", "dtype",
   "shape"}] for every array)}. */
int32_t bh_file_verify(const char *path, char **json_out);
/* Writes target, a current-format copy of source (a format version 1 file, or a current one after
   verifying it). The command line does the same: `behemoth upgrade OLD NEW`. */
int32_t bh_file_upgrade(const char *source, const char *target);
/* The most memory one model, trainer, dataset or edit may allocate, in bytes; 0 restores the
   default (80% of physical memory, or BEHEMOTH_MAX_MEMORY_GB from the environment). Anything that
   would need more is refused with BH_ERR_NOMEM and the size it needs, before allocating. */
int32_t bh_set_memory_limit(int64_t bytes);
int64_t bh_get_memory_limit(void);

/* ---- Datasets: synthetic facts, vocabulary, sentences, evaluation prompts -------------------- */
typedef struct bh_dataset bh_dataset;

/* Generates a dataset from a JSON DatasetSpec ("{}" gives the defaults; see docs/formats.md). */
int32_t bh_dataset_generate(const char *spec_json, bh_dataset **out);
/* HDF5 file with format = "behemoth.dataset". Writes go to a temporary file renamed into place. */
int32_t bh_dataset_load(const char *path, bh_dataset **out);
int32_t bh_dataset_save(const bh_dataset *ds, const char *path);
/* The official generator's output folder (metadata/, data/, validations/). Strict: every count in
   args.json and metadata.json must agree with the files (shards, sentences per fact, one validation
   line per fact, total_num_tokens), and unknown keys are refused; else BH_ERR_FORMAT naming the file
   and the mismatch (docs/formats.md). */
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

/* ---- Models: Pythia-style GPT-NeoX or Llama-style, float32, one flat parameter block -------- */
typedef struct bh_model bh_model;

/* config_json: a ModelConfig ({"preset": "tiny"} etc.; docs/formats.md). vocab_size is taken from
   the dataset when ds is not NULL (and must cover it if also given). */
int32_t bh_model_create(const char *config_json, const bh_dataset *ds, bh_model **out);
/* HDF5 file with format = "behemoth.model" (weights under /weights/<Hugging Face name>). */
int32_t bh_model_load(const char *path, bh_model **out);
int32_t bh_model_save(const bh_model *m, const char *path);
int32_t bh_model_clone(const bh_model *m, bh_model **out);
/* JSON: config, parameter count, tensors [{name, shape}], training history summary. */
int32_t bh_model_info(const bh_model *m, char **json_out);
/* Logits for rows × width tokens (right-padded rows are fine: attention is causal):
   out[rows, width, vocab]. */
int32_t bh_model_logits(bh_model *m, const int32_t *tokens, int64_t rows, int64_t width,
                        float *buffer, int64_t capacity, int64_t *count);
/* Greedy next token after each prompt (prompts flat, offsets[n_prompts + 1]): out[n_prompts]. */
int32_t bh_model_predict(bh_model *m, const int32_t *prompts, const int64_t *offsets, int64_t n_prompts,
                         int32_t *buffer, int64_t capacity, int64_t *count);
/* Copies one tensor by Hugging Face name (shape in bh_model_info). */
int32_t bh_model_tensor(const bh_model *m, const char *name, float *buffer, int64_t capacity, int64_t *count);
/* Overwrites one tensor (a Hugging Face name, as bh_model_tensor) with count = its size float32 values,
   every one finite: how weights trained elsewhere come in (behemoth.hf.from_transformers). */
int32_t bh_model_set_tensor(bh_model *m, const char *name, const float *values, int64_t count);
void    bh_model_free(bh_model *m);

/* ---- Training: begin / step / end ------------------------------------------------------------ */
typedef struct bh_trainer bh_trainer;

/* spec_json: a TrainSpec (epochs, batch_size, learning_rate, ...; docs/formats.md). With
   "resume_from": "<checkpoint.h5>" the trainer continues an interrupted run exactly (the model's
   weights, the optimizer moments and the position are read from that file). */
int32_t bh_trainer_begin(bh_model *m, const bh_dataset *ds, const char *spec_json, bh_trainer **out);
/* One optimizer step. Returns BH_STEP, or BH_DONE when training has finished (nothing was done).
   If report_json is not NULL it receives {"step", "total_steps", "epoch", "loss", "learning_rate",
   "grad_norm", "tokens_per_second", "evaluated", "accuracy": {group: value}}. A NaN loss returns
   BH_ERR_NUMERIC and leaves the last checkpoint on disk untouched. */
int32_t bh_trainer_step(bh_trainer *t, char **report_json);
/* Writes a checkpoint that bh_trainer_begin can resume from (weights, optimizer, position, history). */
int32_t bh_trainer_save(bh_trainer *t, const char *path);
/* Final report (spec, history summary, last evaluation). The trainer stays valid until freed. */
int32_t bh_trainer_end(bh_trainer *t, char **report_json);
void    bh_trainer_free(bh_trainer *t);

/* ---- Evaluation ------------------------------------------------------------------------------ */
/* spec_json: {"groups": ["sro", ...] (default: all), "batch_size": 256}. Report: per group
   accuracy, mean target probability and rank, per relation accuracy; the spec echoed. */
int32_t bh_evaluate(bh_model *m, const bh_dataset *ds, const char *spec_json, char **report_json);
/* Per-prompt results of one evaluation group, each buffer [n] (any may be NULL):
   predicted token, 1 if correct, target probability, target rank (1 = top). */
int32_t bh_evaluate_group(bh_model *m, const bh_dataset *ds, const char *group, int32_t *predicted,
                          uint8_t *correct, float *target_probability, int32_t *target_rank,
                          int64_t capacity, int64_t *count);
/* Binary search for the largest subject count a model learns to a target accuracy:
   spec_json {"dataset": DatasetSpec, "model": ModelConfig, "training": TrainSpec,
   "search": {"min_subjects", "max_subjects", "target_accuracy", "relative_tolerance", "max_probes",
   "print_progress" (a line per probe on stderr)}}. The report lists every probe. */
int32_t bh_capacity_search(const char *spec_json, char **report_json);

/* ---- Editing: edit sets, editors (full, LoRA, ...) over a layer selection --------------------- */
typedef struct bh_editset bh_editset;
typedef struct bh_edit bh_edit;

/* spec_json: an EditSpec ({"kind": "single" | "diverse" | "identical" | "forget_relation" |
   "correlated", "relation", "count", "repeats", ...}; docs/formats.md). */
int32_t bh_editset_create(const bh_dataset *ds, const char *spec_json, bh_editset **out);
/* A fine-tuning folder written by the official generator (finetuning_data/, ft_validations/) for
   the dataset imported from its parent folder. Official group names map to ours (docs). Strict:
   training files must match the folder's metadata/ and .jsonl records line by line and the counts
   the generator fixes must hold; else BH_ERR_FORMAT. */
int32_t bh_editset_import_reference(const bh_dataset *ds, const char *dir, bh_editset **out);
/* JSON: spec (defaults filled in), edits, training counts per group, mix (requested / scaled /
   obtained per part, scale, warnings), test groups and sizes, arrays. */
int32_t bh_editset_info(const bh_editset *es, char **json_out);
/* Arrays by name: "tokens", "offsets", "groups/<name>/prompts", ".../offsets", ".../targets", ".../facts". */
int32_t bh_editset_array_i32(const bh_editset *es, const char *name, int32_t *buffer, int64_t capacity, int64_t *count);
int32_t bh_editset_array_i64(const bh_editset *es, const char *name, int64_t *buffer, int64_t capacity, int64_t *count);
void    bh_editset_free(bh_editset *es);

/* method_json: {"method": a registered editor (bh_runtime_info's "editors": "full", "lora",
   "fixed_rank_one", "rome", "memit", "alphaedit", and on an unlearn set "grad_ascent", "grad_diff",
   "kl", "npo", "simnpo", "rmu", "relabel"; another name is BH_ERR_INVALID listing them), "mode": "batch" | "sequential" | "one_at_a_time",
   "layers": {"blocks": [..], "sublayers": "mlp" | "attention" | "both", "matrices": [..],
   "embeddings": true/false, "unembedding": true/false}, "rank", "alpha", "dropout", "merge",
   "optimizer": {...}}. The model is
   evaluated on every test group first; bh_edit_step trains; bh_edit_end evaluates again and
   reports metrics. The model's weights are changed in place (use bh_model_clone to keep one). */
int32_t bh_edit_begin(bh_model *m, const bh_editset *es, const char *method_json, bh_edit **out);
int32_t bh_edit_step(bh_edit *e, char **report_json);   /* BH_STEP or BH_DONE, as bh_trainer_step */
/* Evaluates and reports (metrics, before/after per group, norms). Called before BH_DONE, it stops the
   edit where it is (LoRA adapters merged as trained so far) and the report says "stopped_early". */
int32_t bh_edit_end(bh_edit *e, char **report_json);
/* HDF5 (format = "behemoth.edit"): /deltas/<name>, /lora/<name>/{A,B}, /groups/<name>/{correct_before,
   correct_after, probability_before, probability_after, facts}, the report and specs as attributes. */
int32_t bh_edit_save(const bh_edit *e, const char *path);
/* The weight change of one trained tensor (after bh_edit_end). */
int32_t bh_edit_delta(const bh_edit *e, const char *name, float *buffer, int64_t capacity, int64_t *count);
/* A vector an editor kept (after bh_edit_end), by a name the report's "vectors" lists: ROME's
   "edit<i>/block<b>/u", ".../v_star", ".../k_star" ("run<r>/" in front in the sequential modes). */
int32_t bh_edit_vector(const bh_edit *e, const char *name, float *buffer, int64_t capacity, int64_t *count);
void    bh_edit_free(bh_edit *e);

/* ---- Unlearning ---------------------------------------------------------------------------------
   An edit set of kind "unlearn" is a forget set and its retain set (docs/unlearning.md); the methods
   "grad_ascent", "grad_diff", "kl", "npo", "simnpo", "rmu" and "relabel" train on it through
   bh_edit_begin, and bh_edit_end reports forget_accuracy, retain_accuracy, model_utility, ... and,
   with "relearn": {"steps": N}, the relearning attack's relearned_fraction. bh_editset_info of an
   unlearn set lists "forget_facts" (fact-table indices) and "oracle_dataset_spec": the dataset spec
   an oracle trains on (the same spec with exclude_facts = the forget set). */
/* Measures `oracle` (a model trained on the oracle dataset spec, and not on the full dataset; any
   other is BH_ERR_INVALID) on the forget set now, so bh_edit_end also reports forget_quality,
   oracle_agreement and oracle_forget_accuracy. Call before bh_edit_end; the oracle is not kept. */
int32_t bh_edit_set_oracle(bh_edit *e, bh_model *oracle);
/* One model's measures on an unlearn set (no edit): the forget and retain metrics, and with an
   oracle (NULL for none; checked as above) forget_quality, oracle_agreement, ... JSON: {"metrics":
   {name: value}, "definitions": {name: text}, "log_truth_ratio": [...forget prompts],
   "oracle_log_truth_ratio": [...] (with an oracle), "oracle_dataset": digest}. */
int32_t bh_unlearn_evaluate(bh_model *m, const bh_editset *es, bh_model *oracle, char **report_json);
/* The two-sided two-sample Kolmogorov–Smirnov test with the exact p-value, as
   scipy.stats.ks_2samp(a, b, method="exact"): a[m], b[n], m·n ≤ 4e8, finite values. */
int32_t bh_ks_2samp(const double *a, int64_t m, const double *b, int64_t n, double *statistic, double *pvalue);

/* ---- Adapters: LoRA adapter sets as values ---------------------------------------------------- */
/* rank, alpha and, per target matrix (block, matrix), A [rank, in] and B [out, rank]:
   ΔW = alpha/rank · B·A. An edit with method "lora" has one (merge: false keeps the model's weights
   and leaves the change only here). */
typedef struct bh_adapter bh_adapter;
/* The adapters of an ended LoRA edit (BH_ERR_MISUSE before bh_edit_end; BH_ERR_INVALID for a
   method without adapters). */
int32_t bh_edit_adapter(const bh_edit *e, bh_adapter **out);
/* HDF5, format = "behemoth.adapter": /lora/<tensor>/{A,B}; the spec attribute lists the targets. */
int32_t bh_adapter_save(const bh_adapter *a, const char *path);
int32_t bh_adapter_load(const char *path, bh_adapter **out);
/* JSON: {"rank", "alpha", "targets": [{"block", "matrix", "tensor", "shape"}], "digest"} (the digest is
   the one its file carries). */
int32_t bh_adapter_info(const bh_adapter *a, char **json_out);
/* A new adapter set with every factor zero (ΔW = 0), for factors trained elsewhere (a PEFT LoRA
   adapter: behemoth.peft.load_peft). spec_json: {"rank" (1 to 2^20), "alpha" (> 0), "targets":
   [{"tensor": a block matrix's Hugging Face weight name, "shape": [out, in]}]} (rank and alpha required;
   each target once; "block" and "matrix" may be given, as bh_adapter_info lists them, and must agree
   with the name). A target's shape is checked against a model when the adapter is applied. */
int32_t bh_adapter_create(const char *spec_json, bh_adapter **out);
/* Overwrites factor "A" ([rank, in], row-major) or "B" ([out, rank]) of one target (its tensor name)
   with count = its size float32 values, every one finite. BH_ERR_MISUSE once the adapter has been
   applied to a model (bh_adapter_apply): the factors are fixed from then on. */
int32_t bh_adapter_set_factor(bh_adapter *a, const char *tensor, const char *factor, const float *values, int64_t count);
/* Copies factor "A" or "B" of one target (buffer convention). */
int32_t bh_adapter_factor(const bh_adapter *a, const char *tensor, const char *factor, float *buffer,
                          int64_t capacity, int64_t *count);
/* merge != 0: W += alpha/rank · B·A in the model's weights. merge == 0: a side path (the weights
   stay; every forward pass adds the adapters); one side path at a time, and none during a LoRA
   edit (BH_ERR_MISUSE). A model of other shapes is BH_ERR_INVALID naming the tensor. */
int32_t bh_adapter_apply(bh_model *m, const bh_adapter *a, int32_t merge);
/* Undoes bh_adapter_apply: detaches the side path if this adapter is it, else subtracts the merged
   change (the weights before the merge, up to float rounding). */
int32_t bh_adapter_remove(bh_model *m, const bh_adapter *a);
void    bh_adapter_free(bh_adapter *a);

/* ---- Analysis: recording activations, causal tracing, effective rank (docs/analysis.md) --------- */
typedef struct bh_recorder bh_recorder;
typedef struct bh_tracer bh_tracer;

/* Records activations of one prompt set into an activations file (HDF5, format =
   "behemoth.activations": /activations/<site>[.<block>] [prompts, slots, width], /prompts, /offsets,
   /facts, /positions [prompts, slots]), streamed batch by batch. The prompts are exactly one of: a
   dataset's evaluation group (ds), an edit set's group (es; subjects from its dataset), or explicit
   prompts (prompts + offsets, n_prompts ≥ 1; positions "last" and "all" only); pass NULL / 0 for the
   others. spec_json: {"path" (required), "group": "sro", "sites": ["block_output"], "blocks": [] (all),
   "positions": ["subject_last", "last"] (subject_first, subject_last, relation, last, or ["all"]),
   "batch_size": 64, "count": 0 (all)}. The file appears only when bh_record_end succeeds. */
int32_t bh_record_begin(bh_model *m, const bh_dataset *ds, const bh_editset *es, const int32_t *prompts,
                        const int64_t *offsets, int64_t n_prompts, const char *spec_json, bh_recorder **out);
/* One batch. BH_STEP / BH_DONE; report_json (may be NULL): {"done", "total"}. */
int32_t bh_record_step(bh_recorder *r, char **report_json);
/* Writes the prompts and positions and moves the file into place: {"path", "prompts", "slots", "points", ...}. */
int32_t bh_record_end(bh_recorder *r, char **report_json);
void    bh_record_free(bh_recorder *r);

/* Causal tracing of a dataset's evaluation group, one prompt per step. spec_json: {"group": "sro",
   "prompts": [] (indices; [] = a seeded sample of "count"), "count": 100 (0 = all), "noise": 3,
   "noise_scale": "subject_std" | "absolute", "replace": false, "samples": 10, "window": 1,
   "kinds": ["block", "mlp", "attn"], "severed": [] ("mlp", "attn"), "reuse": true, "seed": 1}. */
int32_t bh_trace_begin(bh_model *m, const bh_dataset *ds, const char *spec_json, bh_tracer **out);
/* One prompt. BH_STEP / BH_DONE; report_json (may be NULL): {"done", "total", "fact", "answer",
   "target", "correct", "low", "high"}. */
int32_t bh_trace_step(bh_tracer *t, char **report_json);
/* The summary (the prompts not yet traced are left out): counts requested / traced / answered
   correctly, high > low, total effect, per kind the average indirect effect by token group and its peak. */
int32_t bh_trace_end(bh_tracer *t, char **report_json);
/* HDF5, format = "behemoth.trace" (docs/formats.md): /scores/<kind> [F, T, L], /low, /high, /answer,
   /target, /correct, /subject_range, /token_groups, /average/<kind> [groups, L], the prompts. */
int32_t bh_trace_save(const bh_tracer *t, const char *path);
/* A float array of the trace: "low", "high" [F], "scores/<kind>" [F, T, L] (NaN past a prompt's
   end), "average/<kind>" [groups, L]; kinds as in the report (block, mlp, attn, block_severed_mlp, ...). */
int32_t bh_trace_array(const bh_tracer *t, const char *name, float *buffer, int64_t capacity, int64_t *count);
void    bh_trace_free(bh_tracer *t);

/* Singular values and every rank measure (entropy effective rank, 90% / 99% energy ranks, stable
   rank, numerical rank, norms) of each changed weight matrix: after − before for two models of the
   same shape, an ended edit's deltas, or an adapter's alpha/rank · B·A. path (may be NULL): an HDF5
   file, format = "behemoth.rank"; report_json (may be NULL): the same as JSON. */
int32_t bh_rank_models(const bh_model *before, const bh_model *after, const char *path, char **report_json);
int32_t bh_rank_edit(const bh_edit *e, const char *path, char **report_json);
int32_t bh_rank_adapter(const bh_adapter *a, const char *path, char **report_json);

#ifdef __cplusplus
}
#endif
#endif /* BEHEMOTH_H */
