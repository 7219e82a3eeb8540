/*
 * lumen.h — the C guest SDK for Lumen, host ABI v1 (docs/abi.md).
 *
 * Write tasks and actor methods as plain C functions, register them with LUMEN_TASK,
 * LUMEN_ACTOR and LUMEN_METHOD, and build a reactor module together with lumen.c:
 *
 *     clang --target=wasm32-wasi -O2 -mexec-model=reactor -o add.wasm add.c lumen.c
 *
 * A task reads its input as bytes (JSON for the default encoding) and writes its output with
 * lumen_output*. It returns 0 on success, lumen_fail(...) to report an error of its own, or the
 * negative status of a host function that failed, which the SDK reports with the host's message:
 *
 *     static int add(const uint8_t *in, size_t len) {
 *         int64_t a, b;
 *         if (lumen_json_int(in, len, "a", &a) < 0 || lumen_json_int(in, len, "b", &b) < 0)
 *             return lumen_fail("E_INPUT", "want {\"a\": int, \"b\": int}");
 *         return lumen_output_int(a + b);
 *     }
 *     LUMEN_TASK("add", add)
 *
 * Host functions that fail return a negative lumen_status; lumen_error_message() then holds the
 * host's explanation and, for LUMEN_FAILED, lumen_last_failure() the failed call's kind, limit,
 * code and message. No function of this SDK hides a host error behind a default value.
 *
 * An instance runs one call at a time: the SDK keeps per-call state in globals and is not
 * thread-safe, nor need it be.
 */
#ifndef LUMEN_H
#define LUMEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUMEN_ABI_VERSION 1

/* ---- Status codes (docs/abi.md §3.2): host functions return their negation. ---- */

typedef enum lumen_status {
    LUMEN_OK = 0,
    LUMEN_BAD_POINTER = -1,  /* a pointer or length lies outside the guest's memory */
    LUMEN_BAD_PAYLOAD = -2,  /* the payload does not decode or fails validation */
    LUMEN_DENIED = -3,       /* the capability is not granted to this call */
    LUMEN_NOT_FOUND = -4,    /* unknown handle, module, function or actor */
    LUMEN_TIMEOUT = -5,      /* the get or wait timed out; the handles stay valid */
    LUMEN_LIMIT = -6,        /* a budget was spent (log bytes, object bytes) */
    LUMEN_FAILED = -7,       /* the task or actor call failed: see lumen_last_failure */
    LUMEN_UNAVAILABLE = -8,  /* no engine behind this host function (or not under Lumen) */
    LUMEN_CANCELLED = -9,    /* the task was cancelled */
    LUMEN_INTERNAL = -10,    /* a fault of the host, not the guest */
    LUMEN_TOO_LARGE = -11,   /* a payload exceeds its size cap */
    LUMEN_NO_RESULT = -12,   /* result_read with no pending result */
    LUMEN_BAD_LEVEL = -13,   /* log level outside 0..3 */
    /* Not host statuses: failures of the SDK itself, reported the same way. */
    LUMEN_NO_MEMORY = -100,  /* malloc failed */
    LUMEN_BAD_ARGUMENT = -101 /* a NULL or malformed argument to an SDK function */
} lumen_status;

/* lumen_status_name returns the snake_case name of a status ("not_found"), or "unknown". */
const char *lumen_status_name(int64_t status);

/* lumen_error_message returns the explanation of the last failure of an SDK function that
 * talks to the host: the host's pending result after a negative status, as a NUL-terminated
 * string owned by the SDK and valid until the next such failure. "" when there was none. */
const char *lumen_error_message(void);

/* lumen_failure describes a failed task or actor call (status LUMEN_FAILED), decoded from the
 * error JSON the host leaves (docs/abi.md §6). The strings are owned by the SDK and valid until
 * the next failure. */
typedef struct lumen_failure {
    const char *kind;    /* guest_error, trap, limit_exceeded, denied, not_found, ... */
    const char *limit;   /* for limit_exceeded: deadline, memory or output; "" otherwise */
    const char *code;    /* for guest_error: the guest's code; "" otherwise */
    const char *message;
} lumen_failure;

/* lumen_last_failure fills f from the last LUMEN_FAILED and returns 0, or returns LUMEN_NO_RESULT
 * when the last failure was not a failed call. */
int lumen_last_failure(lumen_failure *f);

/* ---- Function table ---- */

typedef int (*lumen_task_fn)(const uint8_t *in, size_t len);
/* An actor constructor returns the actor's state (the SDK keeps the pointer for the instance's
 * life), or NULL after lumen_fail. */
typedef void *(*lumen_actor_fn)(const uint8_t *in, size_t len);
typedef int (*lumen_method_fn)(void *state, const uint8_t *in, size_t len);
/* A __load method returns the restored state, like a constructor. */
typedef void *(*lumen_load_fn)(const uint8_t *in, size_t len);

enum lumen_kind { LUMEN_KIND_TASK, LUMEN_KIND_ACTOR, LUMEN_KIND_METHOD, LUMEN_KIND_LOAD };
enum lumen_encoding { LUMEN_JSON, LUMEN_BYTES };

/* lumen_register adds a function to the module's table; the macros below call it from a
 * constructor, which runs in the reactor's _initialize. The strings must outlive the instance
 * (string literals do). */
void lumen_register(const char *name, enum lumen_kind kind, const char *actor,
                    enum lumen_encoding input, enum lumen_encoding output, void (*fn)(void));

#define LUMEN__CAT2(a, b) a##b
#define LUMEN__CAT(a, b) LUMEN__CAT2(a, b)
#define LUMEN__REGISTER(name, kind, actor, in, out, fn)                                     \
    __attribute__((constructor)) static void LUMEN__CAT(lumen__reg_, __COUNTER__)(void) { \
        lumen_register(name, kind, actor, in, out, (void (*)(void))(fn));                   \
    }

/* LUMEN_TASK registers a stateless task whose input and output are JSON. */
#define LUMEN_TASK(name, fn) LUMEN__REGISTER(name, LUMEN_KIND_TASK, 0, LUMEN_JSON, LUMEN_JSON, fn)
/* LUMEN_BYTES_TASK registers a stateless task that takes and returns raw bytes. */
#define LUMEN_BYTES_TASK(name, fn) \
    LUMEN__REGISTER(name, LUMEN_KIND_TASK, 0, LUMEN_BYTES, LUMEN_BYTES, fn)
/* LUMEN_ACTOR registers an actor type: ctor builds its state from its JSON arguments. */
#define LUMEN_ACTOR(name, ctor) \
    LUMEN__REGISTER(name, LUMEN_KIND_ACTOR, 0, LUMEN_JSON, LUMEN_JSON, ctor)
/* LUMEN_METHOD registers method "actor.method" (both string literals), JSON in and out. */
#define LUMEN_METHOD(actor, method, fn) \
    LUMEN__REGISTER(actor "." method, LUMEN_KIND_METHOD, actor, LUMEN_JSON, LUMEN_JSON, fn)
/* LUMEN_BYTES_METHOD registers a method that takes and returns raw bytes. */
#define LUMEN_BYTES_METHOD(actor, method, fn) \
    LUMEN__REGISTER(actor "." method, LUMEN_KIND_METHOD, actor, LUMEN_BYTES, LUMEN_BYTES, fn)
/* LUMEN_SAVE_LOAD lets the engine restore a restarted actor: save (a lumen_method_fn) writes
 * the state as output; load (a lumen_load_fn) rebuilds it from those bytes. */
#define LUMEN_SAVE_LOAD(actor, save, load)                                                  \
    LUMEN__REGISTER(actor ".__save", LUMEN_KIND_METHOD, actor, LUMEN_BYTES, LUMEN_BYTES, save) \
    LUMEN__REGISTER(actor ".__load", LUMEN_KIND_LOAD, actor, LUMEN_BYTES, LUMEN_BYTES, load)

/* Capabilities a module asks for (docs/abi.md §5), as bits for LUMEN_CAPABILITIES. A module
 * that calls lumen_put/lumen_get needs OBJECTS, lumen_submit/lumen_wait TASKS, lumen_actor_*
 * ACTORS; the job must grant them too. */
enum {
    LUMEN_CAP_OBJECTS = 1 << 0,
    LUMEN_CAP_TASKS = 1 << 1,
    LUMEN_CAP_ACTORS = 1 << 2,
    LUMEN_CAP_CLOCK = 1 << 3,
    LUMEN_CAP_RANDOM = 1 << 4,
    LUMEN_CAP_FS = 1 << 5,
    LUMEN_CAP_ENV = 1 << 6,
    LUMEN_CAP_TENSORS = 1 << 7
};
void lumen_require(unsigned caps);
#define LUMEN_CAPABILITIES(caps)                                                            \
    __attribute__((constructor)) static void LUMEN__CAT(lumen__caps_, __COUNTER__)(void) { \
        lumen_require(caps);                                                                \
    }

/* lumen_hints sets the resources one call needs by default (0: no hint). */
void lumen_hints(double cpu, int64_t memory_bytes, double gpu);

/* lumen_actor_state returns the state of the actor this instance holds, or NULL. */
void *lumen_actor_state(void);

/* ---- Output of the current call ---- */

/* Each appends to the call's output and returns 0, or LUMEN_NO_MEMORY. The output is reset
 * before every call. */
int lumen_output(const void *data, size_t len);
int lumen_output_str(const char *s);
int lumen_output_int(int64_t v);
/* lumen_output_json_string appends s as a quoted, escaped JSON string. */
int lumen_output_json_string(const char *s, size_t len);
int lumen_outputf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* lumen_output_reset discards what the call has written so far. */
void lumen_output_reset(void);

/* ---- Errors and logs ---- */

/* lumen_fail fails the current call with a guest error {"code": code, "message": msg} and
 * returns a positive value for the task to return. code may be NULL. */
int lumen_fail(const char *code, const char *msg);
int lumen_failf(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

enum lumen_level { LUMEN_DEBUG = 0, LUMEN_INFO = 1, LUMEN_WARN = 2, LUMEN_ERROR = 3 };
/* lumen_log appends a line to the call's log; returns 0 or a negative status (LUMEN_LIMIT once
 * the call's output budget is spent). */
int lumen_log(enum lumen_level level, const char *msg);
int lumen_logf(enum lumen_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Objects (capability objects) ---- */

typedef int64_t lumen_handle; /* > 0; a negative value is a lumen_status */

/* lumen_bytes is a buffer the SDK allocated for the caller: free it with lumen_bytes_free. */
typedef struct lumen_bytes {
    uint8_t *data;
    size_t len;
} lumen_bytes;
void lumen_bytes_free(lumen_bytes *b);

/* lumen_put stores the bytes as an immutable object and returns its handle. */
lumen_handle lumen_put(const void *data, size_t len);
/* lumen_get blocks until object h (or the task result it names) is ready, up to timeout_ms (-1:
 * the call's deadline), and fills out. Returns 0 or a negative status (LUMEN_FAILED for a failed
 * task, LUMEN_TIMEOUT when the time ran out). */
int lumen_get(lumen_handle h, int64_t timeout_ms, lumen_bytes *out);
/* lumen_release says this call no longer needs h. */
int lumen_release(lumen_handle h);

/* ---- Tasks (capability tasks) ---- */

/* lumen_task is a task_submit request; zero fields take the defaults. */
typedef struct lumen_task {
    const char *module;   /* NULL: this module; else a digest or name@version */
    const char *function;
    const char *args;     /* JSON text of a json function's input, or NULL */
    const uint8_t *args_bytes; /* the input of a bytes function (sent base64) */
    size_t args_bytes_len;
    const lumen_handle *refs; /* handles passed inside args as {"$ref": h} */
    size_t nrefs;
    int max_retries;      /* 0: the default (3); LUMEN_NO_RETRIES: none */
    int retry_guest_errors;
    int64_t timeout_ms;   /* 0: no limit of its own */
    double cpu, gpu;      /* resources; 0: the module's hints */
    int64_t memory_bytes;
} lumen_task;
#define LUMEN_NO_RETRIES (-1)

/* lumen_submit starts a task and returns the handle of its future result at once. */
lumen_handle lumen_submit(const lumen_task *t);
/* lumen_submit_json and lumen_submit_bytes submit a function of this module. */
lumen_handle lumen_submit_json(const char *function, const char *args_json);
lumen_handle lumen_submit_bytes(const char *function, const void *data, size_t len);
/* lumen_cancel asks for the task behind result handle h to be cancelled. */
int lumen_cancel(lumen_handle h);
/* lumen_wait blocks until num_returns of the n handles are ready or timeout_ms passes (-1: the
 * call's deadline). It sets ready[i] to 1 for each ready handle, 0 otherwise, and returns the
 * number ready, or a negative status. */
int lumen_wait(const lumen_handle *handles, size_t n, size_t num_returns, int64_t timeout_ms,
               int *ready);

/* ---- Actors (capability actors) ---- */

typedef struct lumen_actor_opts {
    const char *module;    /* NULL: this module */
    const char *actor;     /* the actor type */
    const char *args;      /* JSON arguments of its constructor, or NULL */
    const char *name;      /* optional name, found within namespace */
    const char *namespace_;
    int detached;
    int max_restarts;      /* -1: without limit */
    int max_concurrency;
} lumen_actor_opts;

/* lumen_actor_create creates an actor and returns its handle. */
lumen_handle lumen_actor_create(const lumen_actor_opts *o);
/* lumen_actor_new creates an actor of type in this module with JSON args (or NULL). */
lumen_handle lumen_actor_new(const char *actor_type, const char *args_json);
/* lumen_actor_call calls method (without the type: "incr") with JSON args and returns the handle
 * of its future result at once; get it with lumen_get. Calls from one caller run in order. */
lumen_handle lumen_actor_call(lumen_handle actor, const char *method, const char *args_json);
lumen_handle lumen_actor_call_refs(lumen_handle actor, const char *method, const char *args_json,
                                   const lumen_handle *refs, size_t nrefs);
lumen_handle lumen_actor_call_bytes(lumen_handle actor, const char *method, const void *data,
                                    size_t len);
/* lumen_actor_kill stops the actor without restarting it. */
int lumen_actor_kill(lumen_handle actor);

/* ---- Tensors (capability tensors) ----
 * Tensors live on the host (on its GPU when it has one); the guest drives them by handle. Ops
 * return new tensors and autograd records them, so lumen_tensor_backward on a loss fills the
 * gradients of the leaves made with requires_grad. A tensor lives until lumen_tensor_free or the
 * end of the call that made it (an actor's, as long as the actor). Every function returning a
 * lumen_tensor or lumen_optim returns a negative lumen_status on failure, with
 * lumen_error_message() saying why; inputs that are negative statuses are refused, so calls may
 * be chained and checked once at the end. */

typedef int64_t lumen_tensor; /* > 0; a negative value is a lumen_status */
typedef int64_t lumen_optim;  /* > 0; a negative value is a lumen_status */

enum lumen_dtype { LUMEN_F32, LUMEN_I32, LUMEN_I64 };

/* lumen_tensor_create makes a tensor of dtype and shape[0:rank] from data, its little-endian raw
 * values in row-major order (data_len bytes: every element), or zeros when data is NULL.
 * requires_grad (f32 only) makes a leaf whose gradient backward fills. */
lumen_tensor lumen_tensor_create(enum lumen_dtype dtype, const int64_t *shape, size_t rank,
                                 const void *data, size_t data_len, int requires_grad);
/* lumen_tensor_f32 makes a float32 tensor from data (every element; NULL: zeros). */
lumen_tensor lumen_tensor_f32(const int64_t *shape, size_t rank, const float *data,
                              int requires_grad);
/* lumen_tensor_i64 makes an int64 tensor (labels, indices) from data (NULL: zeros). */
lumen_tensor lumen_tensor_i64(const int64_t *shape, size_t rank, const int64_t *data);

/* lumen_tensor_op runs host op name (docs/abi.md §3: matmul, add, relu, sum, reshape, conv2d,
 * ...) on inputs[0:n] with attrs_json, a JSON object of the op's attributes ({"axes":[1]}) or
 * NULL for none, and returns the output tensor. */
lumen_tensor lumen_tensor_op(const char *name, const lumen_tensor *inputs, size_t n,
                             const char *attrs_json);
lumen_tensor lumen_tensor_matmul(lumen_tensor a, lumen_tensor b);
lumen_tensor lumen_tensor_add(lumen_tensor a, lumen_tensor b);
lumen_tensor lumen_tensor_sub(lumen_tensor a, lumen_tensor b);
lumen_tensor lumen_tensor_mul(lumen_tensor a, lumen_tensor b);
lumen_tensor lumen_tensor_relu(lumen_tensor t);
/* lumen_tensor_sum and lumen_tensor_mean reduce over every axis to one element. */
lumen_tensor lumen_tensor_sum(lumen_tensor t);
lumen_tensor lumen_tensor_mean(lumen_tensor t);

/* lumen_tensor_read fills out with the tensor's raw little-endian values, row-major. */
int lumen_tensor_read(lumen_tensor t, lumen_bytes *out);
/* lumen_tensor_read_f32 reads a float32 tensor into a malloc'd array *values (free it with free)
 * of *n elements. LUMEN_BAD_PAYLOAD when the tensor is not f32. */
int lumen_tensor_read_f32(lumen_tensor t, float **values, size_t *n);

#define LUMEN_MAX_RANK 8
/* lumen_tensor_meta is what lumen_tensor_info says of a tensor. */
typedef struct lumen_tensor_meta {
    enum lumen_dtype dtype;
    size_t rank;
    int64_t shape[LUMEN_MAX_RANK];
} lumen_tensor_meta;
int lumen_tensor_info(lumen_tensor t, lumen_tensor_meta *meta);

/* lumen_tensor_backward runs reverse-mode autograd from the one-element tensor t (a loss). */
int lumen_tensor_backward(lumen_tensor t);
/* lumen_tensor_grad returns a copy of the gradient backward accumulated in leaf t (LUMEN_NOT_FOUND
 * before any backward). */
lumen_tensor lumen_tensor_grad(lumen_tensor t);
/* lumen_tensor_free frees the tensor now; freeing a view drops only its handle. */
int lumen_tensor_free(lumen_tensor t);

/* lumen_optim_opts is an optim_create request. Negative fields take the host's defaults. */
typedef struct lumen_optim_opts {
    const char *kind;    /* "sgd" or "adamw" */
    double lr;
    double momentum;     /* sgd */
    double weight_decay;
    double beta1, beta2; /* adamw: both or neither */
    double eps;          /* adamw */
} lumen_optim_opts;
/* lumen_optim_create makes an optimiser over params[0:n], f32 leaves that require grad. */
lumen_optim lumen_optim_create(const lumen_optim_opts *o, const lumen_tensor *params, size_t n);
lumen_optim lumen_optim_sgd(const lumen_tensor *params, size_t n, double lr, double momentum);
lumen_optim lumen_optim_adamw(const lumen_tensor *params, size_t n, double lr, double weight_decay);
/* lumen_optim_step updates the parameters from their gradients. */
int lumen_optim_step(lumen_optim o);
/* lumen_optim_zero_grad clears the parameters' gradients; call it before each backward. */
int lumen_optim_zero_grad(lumen_optim o);

/* ---- Tiny JSON readers for flat inputs (no JSON library needed) ----
 * Each looks up key among the top-level members of the JSON object in json[0:len]. They return
 * 0, LUMEN_NOT_FOUND when the key is absent, or LUMEN_BAD_PAYLOAD when the value has another
 * type. */
int lumen_json_int(const uint8_t *json, size_t len, const char *key, int64_t *out);
int lumen_json_double(const uint8_t *json, size_t len, const char *key, double *out);
int lumen_json_bool(const uint8_t *json, size_t len, const char *key, int *out);
/* lumen_json_string unescapes the string value into buf (NUL-terminated, cut to cap-1 bytes) and
 * returns its full length, or a negative status. */
int64_t lumen_json_string(const uint8_t *json, size_t len, const char *key, char *buf, size_t cap);
/* lumen_json_parse_int reads a whole JSON document that is one integer ("42"). */
int lumen_json_parse_int(const uint8_t *json, size_t len, int64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* LUMEN_H */
