/*
 * lumen.c — the C guest SDK for Lumen, host ABI v1. See lumen.h and docs/abi.md.
 *
 * Memory: lumen_alloc hands the host a malloc'd buffer for a call's input, which lumen_call frees
 * when the function returns. A call's output lives in a buffer the SDK keeps until the next call,
 * so the host can copy it after lumen_call returns.
 */
#include "lumen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The "lumen" import module ---- */

#define LUMEN_IMPORT(name) __attribute__((import_module("lumen"), import_name(name)))

LUMEN_IMPORT("log") int32_t lumen__host_log(int32_t level, const void *p, int32_t n);
LUMEN_IMPORT("error") int32_t lumen__host_error(const void *p, int32_t n);
LUMEN_IMPORT("result_len") int32_t lumen__host_result_len(void);
LUMEN_IMPORT("result_read") int32_t lumen__host_result_read(void *p, int32_t n);
LUMEN_IMPORT("object_put") int64_t lumen__host_object_put(const void *p, int32_t n);
LUMEN_IMPORT("object_get") int64_t lumen__host_object_get(int64_t h, int64_t timeout_ms);
LUMEN_IMPORT("object_release") int32_t lumen__host_object_release(int64_t h);
LUMEN_IMPORT("task_submit") int64_t lumen__host_task_submit(const void *p, int32_t n);
LUMEN_IMPORT("task_cancel") int32_t lumen__host_task_cancel(int64_t h);
LUMEN_IMPORT("wait") int64_t lumen__host_wait(const void *p, int32_t n);
LUMEN_IMPORT("actor_create") int64_t lumen__host_actor_create(const void *p, int32_t n);
LUMEN_IMPORT("actor_call") int64_t lumen__host_actor_call(const void *p, int32_t n);
LUMEN_IMPORT("actor_kill") int32_t lumen__host_actor_kill(int64_t h);

/* Extension point: later ABI additions (tensor_*, model_chat) are declared here the same way and
 * wrapped below; a module that does not call them does not import them. */
LUMEN_IMPORT("tensor_create")
int64_t lumen__host_tensor_create(const void *spec, int32_t spec_len, const void *data, int32_t data_len);
LUMEN_IMPORT("tensor_op") int64_t lumen__host_tensor_op(const void *p, int32_t n);
LUMEN_IMPORT("tensor_read") int64_t lumen__host_tensor_read(int64_t h);
LUMEN_IMPORT("tensor_info") int64_t lumen__host_tensor_info(int64_t h);
LUMEN_IMPORT("tensor_backward") int32_t lumen__host_tensor_backward(int64_t h);
LUMEN_IMPORT("tensor_grad") int64_t lumen__host_tensor_grad(int64_t h);
LUMEN_IMPORT("tensor_free") int32_t lumen__host_tensor_free(int64_t h);
LUMEN_IMPORT("optim_create") int64_t lumen__host_optim_create(const void *p, int32_t n);
LUMEN_IMPORT("optim_step") int32_t lumen__host_optim_step(int64_t h);
LUMEN_IMPORT("optim_zero_grad") int32_t lumen__host_optim_zero_grad(int64_t h);

/* ---- A growable byte buffer ---- */

typedef struct buf {
    char *p;
    size_t n, cap;
    int oom;
} buf;

static int buf_grow(buf *b, size_t more) {
    if (b->oom) return LUMEN_NO_MEMORY;
    if (b->n + more + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return LUMEN_NO_MEMORY;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_add(buf *b, const void *p, size_t n) {
    if (buf_grow(b, n)) return LUMEN_NO_MEMORY;
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int buf_str(buf *b, const char *s) { return buf_add(b, s, strlen(s)); }

static int buf_vprintf(buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return LUMEN_BAD_ARGUMENT;
    if (buf_grow(b, (size_t)n)) return LUMEN_NO_MEMORY;
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    b->n += (size_t)n;
    return 0;
}

static int buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

static int buf_json_string(buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_add(b, "\"", 1)) return LUMEN_NO_MEMORY;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t en = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            /* < > & are escaped as Go's encoding/json escapes them, so outputs match byte for byte. */
            if (c >= 0x20 && c != '<' && c != '>' && c != '&') {
                if (buf_add(b, &s[i], 1)) return LUMEN_NO_MEMORY;
                continue;
            }
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            en = 6;
        }
        if (buf_add(b, esc, en)) return LUMEN_NO_MEMORY;
    }
    return buf_add(b, "\"", 1);
}

static int buf_base64(buf *b, const uint8_t *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (buf_grow(b, (n + 2) / 3 * 4)) return LUMEN_NO_MEMORY;
    char *o = b->p + b->n;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63], *o++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = '=', *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63], *o++ = '=';
    }
    b->n = (size_t)(o - b->p);
    b->p[b->n] = 0;
    return 0;
}

/* ---- Per-call state ---- */

static buf out;             /* the current call's output */
static buf errmsg;          /* the last host failure's message */
static int64_t last_status; /* the last host failure's status, 0 if none this call */
static int failed;          /* the current call reported a guest error */
static struct {
    buf kind, limit, code, message;
    int valid;
} failure;

static const char *const status_names[] = {
    "ok",        "bad_pointer", "bad_payload", "denied",   "not_found", "timeout",   "limit",
    "failed",    "unavailable", "cancelled",   "internal", "too_large", "no_result", "bad_level",
};

const char *lumen_status_name(int64_t st) {
    if (st <= 0 && st >= -13) return status_names[-st];
    if (st == LUMEN_NO_MEMORY) return "no_memory";
    if (st == LUMEN_BAD_ARGUMENT) return "bad_argument";
    return "unknown";
}

const char *lumen_error_message(void) { return errmsg.p ? errmsg.p : ""; }

static void set_str(buf *b, const uint8_t *json, size_t len, const char *key) {
    b->n = 0;
    b->oom = 0;
    buf_add(b, "", 0);
    int64_t n = lumen_json_string(json, len, key, NULL, 0);
    if (n < 0 || buf_grow(b, (size_t)n)) return;
    lumen_json_string(json, len, key, b->p, (size_t)n + 1);
    b->n = (size_t)n;
}

/* host_fail records a failed host function's status and message (its pending result) and
 * returns the status. */
static int64_t host_fail(int64_t r) {
    int64_t st = r < -13 ? LUMEN_INTERNAL : r;
    last_status = st;
    errmsg.n = 0;
    errmsg.oom = 0;
    buf_add(&errmsg, "", 0);
    failure.valid = 0;
    int32_t n = lumen__host_result_len();
    if (n > 0 && buf_grow(&errmsg, (size_t)n) == 0) {
        int32_t got = lumen__host_result_read(errmsg.p, n);
        if (got > 0) errmsg.n = (size_t)got;
        errmsg.p[errmsg.n] = 0;
    }
    if (errmsg.n == 0) buf_str(&errmsg, lumen_status_name(st));
    if (st == LUMEN_FAILED) {
        const uint8_t *j = (const uint8_t *)errmsg.p;
        set_str(&failure.kind, j, errmsg.n, "kind");
        set_str(&failure.limit, j, errmsg.n, "limit");
        set_str(&failure.code, j, errmsg.n, "code");
        set_str(&failure.message, j, errmsg.n, "message");
        failure.valid = failure.kind.n > 0;
    }
    return st;
}

/* sdk_fail records a failure of the SDK itself in the same way. */
static int64_t sdk_fail(int64_t st, const char *msg) {
    last_status = st;
    failure.valid = 0;
    errmsg.n = 0;
    errmsg.oom = 0;
    buf_str(&errmsg, msg);
    return st;
}

int lumen_last_failure(lumen_failure *f) {
    if (!failure.valid || !f) return LUMEN_NO_RESULT;
    f->kind = failure.kind.p;
    f->limit = failure.limit.p;
    f->code = failure.code.p;
    f->message = failure.message.p;
    return 0;
}

/* ---- Function table and manifest ---- */

typedef struct entry {
    const char *name, *actor;
    enum lumen_kind kind;
    enum lumen_encoding in, out;
    void (*fn)(void);
} entry;

static entry *table;
static size_t ntable, captable;
static unsigned caps;
static double hint_cpu, hint_gpu;
static int64_t hint_mem;
static buf manifest;
static void *actor_state;
static const char *actor_type;

void lumen_register(const char *name, enum lumen_kind kind, const char *actor,
                    enum lumen_encoding in, enum lumen_encoding out_enc, void (*fn)(void)) {
    if (ntable == captable) {
        size_t c = captable ? captable * 2 : 16;
        entry *t = realloc(table, c * sizeof *t);
        if (!t) __builtin_trap(); /* out of memory in _initialize: nothing can run */
        table = t;
        captable = c;
    }
    table[ntable++] = (entry){name, actor, kind, in, out_enc, fn};
}

void lumen_require(unsigned c) { caps |= c; }

void lumen_hints(double cpu, int64_t memory_bytes, double gpu) {
    hint_cpu = cpu, hint_mem = memory_bytes, hint_gpu = gpu;
}

void *lumen_actor_state(void) { return actor_state; }

static const char *enc_name(enum lumen_encoding e) { return e == LUMEN_BYTES ? "bytes" : "json"; }

static void build_manifest(void) {
    static const char *const cap_names[] = {"objects", "tasks", "actors", "clock",
                                            "random",  "fs",    "env",    "tensors"};
    buf *m = &manifest;
    buf_str(m, "{\"abi\":1,\"functions\":[");
    for (size_t i = 0; i < ntable; i++) {
        const entry *e = &table[i];
        static const char *const kinds[] = {"task", "actor", "method", "method"};
        if (i) buf_str(m, ",");
        buf_str(m, "{\"name\":");
        buf_json_string(m, e->name, strlen(e->name));
        buf_printf(m, ",\"kind\":\"%s\"", kinds[e->kind]);
        if (e->actor) {
            buf_str(m, ",\"actor\":");
            buf_json_string(m, e->actor, strlen(e->actor));
        }
        buf_printf(m, ",\"input\":\"%s\",\"output\":\"%s\"}", enc_name(e->in), enc_name(e->out));
    }
    buf_str(m, "]");
    if (caps) {
        buf_str(m, ",\"capabilities\":[");
        int first = 1;
        for (int i = 0; i < 8; i++) {
            if (!(caps & (1u << i))) continue;
            buf_printf(m, "%s\"%s\"", first ? "" : ",", cap_names[i]);
            first = 0;
        }
        buf_str(m, "]");
    }
    if (hint_cpu > 0 || hint_mem > 0 || hint_gpu > 0) {
        buf_str(m, ",\"resources\":{");
        const char *sep = "";
        if (hint_cpu > 0) buf_printf(m, "\"cpu\":%.17g", hint_cpu), sep = ",";
        if (hint_mem > 0) buf_printf(m, "%s\"memory_bytes\":%lld", sep, (long long)hint_mem), sep = ",";
        if (hint_gpu > 0) buf_printf(m, "%s\"gpu\":%.17g", sep, hint_gpu);
        buf_str(m, "}");
    }
    buf_str(m, "}");
}

/* ---- Guest exports ---- */

#define LUMEN_EXPORT(name) __attribute__((export_name(name)))

static inline uint64_t pack(const void *p, size_t n) {
    return (uint64_t)(uintptr_t)p << 32 | (uint32_t)n;
}

static void *pending_input; /* the buffer lumen_alloc last handed out */

LUMEN_EXPORT("lumen_abi_v1") void lumen__abi_v1(void) {}

/* Sizes and lengths cross the ABI as i32s read unsigned. */
LUMEN_EXPORT("lumen_alloc") void *lumen__alloc(uint32_t size) {
    void *p = malloc(size ? (size_t)size : 1);
    if (p) {
        free(pending_input); /* an allocation the host never passed to lumen_call */
        pending_input = p;
    }
    return p;
}

LUMEN_EXPORT("lumen_manifest") uint64_t lumen__manifest(void) {
    if (!manifest.p) build_manifest();
    if (manifest.oom) __builtin_trap();
    return pack(manifest.p, manifest.n);
}

static void report(const char *code, const char *msg) {
    buf b = {0};
    buf_str(&b, "{");
    if (code && *code) {
        buf_str(&b, "\"code\":");
        buf_json_string(&b, code, strlen(code));
        buf_str(&b, ",");
    }
    buf_str(&b, "\"message\":");
    buf_json_string(&b, msg, strlen(msg));
    buf_str(&b, "}");
    if (b.oom) {
        static const char fallback[] = "{\"code\":\"no_memory\",\"message\":\"out of memory\"}";
        lumen__host_error(fallback, sizeof fallback - 1);
    } else {
        lumen__host_error(b.p, (int32_t)b.n);
    }
    free(b.p);
    failed = 1;
}

/* report_status reports a host (or SDK) failure a function returned, with its message, as the
 * Go SDK words it: "lumen: <status>: <message>", or "lumen: <kind> (<limit>): <message>" for a
 * failed call. */
static void report_status(const char *fn, int64_t st) {
    buf b = {0};
    if (st == LUMEN_FAILED && failure.valid) {
        if (failure.limit.n)
            buf_printf(&b, "lumen: %s (%s): %s", failure.kind.p, failure.limit.p, failure.message.p);
        else
            buf_printf(&b, "lumen: %s: %s", failure.kind.p, failure.message.p);
    } else if (last_status == st) {
        buf_printf(&b, "lumen: %s: %s", lumen_status_name(st), lumen_error_message());
    } else {
        buf_printf(&b, "lumen: %s: %s returned it", lumen_status_name(st), fn);
    }
    report(NULL, b.oom ? "lumen: out of memory" : b.p);
    free(b.p);
}

LUMEN_EXPORT("lumen_call") uint64_t lumen__call(int32_t fn, uint8_t *in, uint32_t len) {
    out.n = 0;
    out.oom = 0;
    failed = 0;
    last_status = 0;
    failure.valid = 0;
    if (in && in != pending_input) {
        report("bad_input", "lumen_call: input buffer was not allocated by lumen_alloc");
        return 0;
    }
    pending_input = NULL;
    size_t n = len;
    if (fn < 0 || (size_t)fn >= ntable) {
        char msg[96];
        snprintf(msg, sizeof msg, "lumen: no function at index %d (this module has %zu)", fn, ntable);
        report(NULL, msg);
        free(in);
        return 0;
    }
    const entry *e = &table[fn];
    int rc = 0;
    switch (e->kind) {
    case LUMEN_KIND_TASK:
        rc = ((lumen_task_fn)e->fn)(in, n);
        break;
    case LUMEN_KIND_ACTOR:
    case LUMEN_KIND_LOAD: {
        if (e->kind == LUMEN_KIND_ACTOR && actor_state) {
            char msg[320];
            snprintf(msg, sizeof msg, "lumen: this instance already holds actor \"%s\"", actor_type);
            report(NULL, msg);
            break;
        }
        void *s = ((lumen_actor_fn)e->fn)(in, n);
        if (s) {
            actor_state = s;
            actor_type = e->kind == LUMEN_KIND_ACTOR ? e->name : e->actor;
            if (e->kind == LUMEN_KIND_ACTOR) {
                out.n = 0;
                buf_str(&out, "null");
            }
        } else if (!failed) {
            rc = last_status ? (int)last_status : 1;
            if (rc > 0) {
                char msg[320];
                snprintf(msg, sizeof msg, "lumen: constructor of \"%s\" returned no state", e->name);
                report(NULL, msg);
            }
        }
        break;
    }
    case LUMEN_KIND_METHOD:
        if (!actor_state || strcmp(actor_type, e->actor) != 0) {
            char msg[400];
            snprintf(msg, sizeof msg,
                     "lumen: method %s called on an instance that holds no %s actor", e->name, e->actor);
            report(NULL, msg);
            break;
        }
        rc = ((lumen_method_fn)e->fn)(actor_state, in, n);
        break;
    }
    free(in);
    if (!failed && rc < 0) {
        report_status(e->name, rc);
    } else if (!failed && rc > 0) {
        char msg[320];
        snprintf(msg, sizeof msg, "%s returned %d without calling lumen_fail", e->name, rc);
        report("E_TASK", msg);
    } else if (!failed && out.oom) {
        report("no_memory", "lumen: out of memory writing the output");
    }
    if (failed || out.n == 0) return 0;
    return pack(out.p, out.n);
}

/* ---- Output ---- */

int lumen_output(const void *data, size_t len) { return buf_add(&out, data, len); }
int lumen_output_str(const char *s) { return s ? buf_str(&out, s) : LUMEN_BAD_ARGUMENT; }
int lumen_output_int(int64_t v) { return buf_printf(&out, "%lld", (long long)v); }
int lumen_output_json_string(const char *s, size_t len) { return buf_json_string(&out, s, len); }
void lumen_output_reset(void) {
    out.n = 0;
    out.oom = 0;
}

int lumen_outputf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = buf_vprintf(&out, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- Errors and logs ---- */

int lumen_fail(const char *code, const char *msg) {
    report(code, msg ? msg : "");
    return 1;
}

int lumen_failf(const char *code, const char *fmt, ...) {
    buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    report(code, b.oom || !b.p ? "lumen: out of memory" : b.p);
    free(b.p);
    return 1;
}

int lumen_log(enum lumen_level level, const char *msg) {
    if (!msg) return LUMEN_BAD_ARGUMENT;
    int32_t r = lumen__host_log((int32_t)level, msg, (int32_t)strlen(msg));
    return r < 0 ? (int)host_fail(r) : 0;
}

int lumen_logf(enum lumen_level level, const char *fmt, ...) {
    buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    int r = buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (r == 0) r = lumen_log(level, b.p);
    free(b.p);
    return r;
}

/* ---- Objects ---- */

void lumen_bytes_free(lumen_bytes *b) {
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

lumen_handle lumen_put(const void *data, size_t len) {
    if (!data && len) return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_put: NULL data");
    int64_t h = lumen__host_object_put(data, (int32_t)len);
    return h < 0 ? host_fail(h) : h;
}

/* take_result copies n bytes of the pending result into out. */
static int take_result(int64_t n, lumen_bytes *out_) {
    out_->data = NULL;
    out_->len = 0;
    if (n <= 0) return 0;
    uint8_t *p = malloc((size_t)n);
    if (!p) return (int)sdk_fail(LUMEN_NO_MEMORY, "out of memory reading a result");
    int32_t got = lumen__host_result_read(p, (int32_t)n);
    if (got < 0) {
        free(p);
        return (int)host_fail(got);
    }
    out_->data = p;
    out_->len = (size_t)got;
    return 0;
}

int lumen_get(lumen_handle h, int64_t timeout_ms, lumen_bytes *out_) {
    if (!out_) return (int)sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_get: NULL out");
    out_->data = NULL;
    out_->len = 0;
    int64_t n = lumen__host_object_get(h, timeout_ms);
    if (n < 0) return (int)host_fail(n);
    return take_result(n, out_);
}

int lumen_release(lumen_handle h) {
    int32_t r = lumen__host_object_release(h);
    return r < 0 ? (int)host_fail(r) : 0;
}

/* ---- Tasks ---- */

static void add_refs(buf *b, const lumen_handle *refs, size_t n) {
    if (!n) return;
    buf_str(b, ",\"refs\":[");
    for (size_t i = 0; i < n; i++) buf_printf(b, "%s%lld", i ? "," : "", (long long)refs[i]);
    buf_str(b, "]");
}

static void add_string(buf *b, const char *key, const char *v) {
    if (!v || !*v) return;
    buf_printf(b, ",\"%s\":", key);
    buf_json_string(b, v, strlen(v));
}

static int64_t send(int64_t (*fn)(const void *, int32_t), buf *b) {
    if (b->oom) {
        free(b->p);
        return sdk_fail(LUMEN_NO_MEMORY, "out of memory encoding a request");
    }
    int64_t r = fn(b->p, (int32_t)b->n);
    free(b->p);
    return r < 0 ? host_fail(r) : r;
}

lumen_handle lumen_submit(const lumen_task *t) {
    if (!t || !t->function) return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_submit: no function");
    if (t->args && t->args_bytes)
        return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_submit: both args and args_bytes are set");
    buf b = {0};
    buf_str(&b, "{\"function\":");
    buf_json_string(&b, t->function, strlen(t->function));
    add_string(&b, "module", t->module);
    if (t->args && *t->args) buf_printf(&b, ",\"args\":%s", t->args);
    if (t->args_bytes && t->args_bytes_len) {
        buf_str(&b, ",\"args_bytes\":\"");
        buf_base64(&b, t->args_bytes, t->args_bytes_len);
        buf_str(&b, "\"");
    }
    add_refs(&b, t->refs, t->nrefs);
    if (t->cpu > 0 || t->gpu > 0 || t->memory_bytes > 0)
        buf_printf(&b, ",\"resources\":{\"cpu\":%.17g,\"memory_bytes\":%lld,\"gpu\":%.17g}", t->cpu,
                   (long long)t->memory_bytes, t->gpu);
    if (t->max_retries) buf_printf(&b, ",\"max_retries\":%d", t->max_retries < 0 ? 0 : t->max_retries);
    if (t->retry_guest_errors) buf_str(&b, ",\"retry_guest_errors\":true");
    if (t->timeout_ms > 0) buf_printf(&b, ",\"timeout_ms\":%lld", (long long)t->timeout_ms);
    buf_str(&b, "}");
    return send(lumen__host_task_submit, &b);
}

lumen_handle lumen_submit_json(const char *function, const char *args_json) {
    lumen_task t = {.function = function, .args = args_json};
    return lumen_submit(&t);
}

lumen_handle lumen_submit_bytes(const char *function, const void *data, size_t len) {
    lumen_task t = {.function = function, .args_bytes = data, .args_bytes_len = len};
    return lumen_submit(&t);
}

int lumen_cancel(lumen_handle h) {
    int32_t r = lumen__host_task_cancel(h);
    return r < 0 ? (int)host_fail(r) : 0;
}

static const uint8_t *json_find(const uint8_t *j, size_t n, const char *key);
static const uint8_t *json_skip(const uint8_t *p, const uint8_t *end);
static const uint8_t *ws(const uint8_t *p, const uint8_t *end);

int lumen_wait(const lumen_handle *handles, size_t n, size_t num_returns, int64_t timeout_ms,
               int *ready) {
    if (!handles || !ready || n == 0) return (int)sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_wait: no handles");
    buf b = {0};
    buf_str(&b, "{\"handles\":[");
    for (size_t i = 0; i < n; i++) buf_printf(&b, "%s%lld", i ? "," : "", (long long)handles[i]);
    buf_printf(&b, "],\"num_returns\":%zu,\"timeout_ms\":%lld}", num_returns, (long long)timeout_ms);
    int64_t r = send(lumen__host_wait, &b);
    if (r < 0) return (int)r;
    lumen_bytes res;
    int st = take_result(r, &res);
    if (st < 0) return st;
    for (size_t i = 0; i < n; i++) ready[i] = 0;
    int count = 0;
    const uint8_t *end = res.data + res.len;
    const uint8_t *p = json_find(res.data, res.len, "ready");
    if (p && p < end && *p == '[') {
        p = ws(p + 1, end);
        while (p < end && *p != ']') {
            char *e;
            long long v = strtoll((const char *)p, &e, 10);
            if ((const uint8_t *)e == p) break;
            for (size_t i = 0; i < n; i++)
                if (handles[i] == v && !ready[i]) {
                    ready[i] = 1;
                    count++;
                    break;
                }
            p = ws((const uint8_t *)e, end);
            if (p < end && *p == ',') p = ws(p + 1, end);
        }
    }
    lumen_bytes_free(&res);
    return count;
}

/* ---- Actors ---- */

lumen_handle lumen_actor_create(const lumen_actor_opts *o) {
    if (!o || !o->actor) return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_actor_create: no actor type");
    buf b = {0};
    buf_str(&b, "{\"actor\":");
    buf_json_string(&b, o->actor, strlen(o->actor));
    add_string(&b, "module", o->module);
    if (o->args && *o->args) buf_printf(&b, ",\"args\":%s", o->args);
    add_string(&b, "name", o->name);
    add_string(&b, "namespace", o->namespace_);
    if (o->detached) buf_str(&b, ",\"detached\":true");
    if (o->max_restarts) buf_printf(&b, ",\"max_restarts\":%d", o->max_restarts);
    if (o->max_concurrency) buf_printf(&b, ",\"max_concurrency\":%d", o->max_concurrency);
    buf_str(&b, "}");
    return send(lumen__host_actor_create, &b);
}

lumen_handle lumen_actor_new(const char *actor_type, const char *args_json) {
    lumen_actor_opts o = {.actor = actor_type, .args = args_json};
    return lumen_actor_create(&o);
}

static lumen_handle actor_call(lumen_handle actor, const char *method, const char *args,
                               const uint8_t *data, size_t len, const lumen_handle *refs,
                               size_t nrefs) {
    if (!method) return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_actor_call: no method");
    buf b = {0};
    buf_printf(&b, "{\"actor\":%lld,\"method\":", (long long)actor);
    buf_json_string(&b, method, strlen(method));
    if (args && *args) buf_printf(&b, ",\"args\":%s", args);
    if (data && len) {
        buf_str(&b, ",\"args_bytes\":\"");
        buf_base64(&b, data, len);
        buf_str(&b, "\"");
    }
    add_refs(&b, refs, nrefs);
    buf_str(&b, "}");
    return send(lumen__host_actor_call, &b);
}

lumen_handle lumen_actor_call(lumen_handle actor, const char *method, const char *args_json) {
    return actor_call(actor, method, args_json, NULL, 0, NULL, 0);
}

lumen_handle lumen_actor_call_refs(lumen_handle actor, const char *method, const char *args_json,
                                   const lumen_handle *refs, size_t nrefs) {
    return actor_call(actor, method, args_json, NULL, 0, refs, nrefs);
}

lumen_handle lumen_actor_call_bytes(lumen_handle actor, const char *method, const void *data,
                                    size_t len) {
    return actor_call(actor, method, NULL, data, len, NULL, 0);
}

int lumen_actor_kill(lumen_handle actor) {
    int32_t r = lumen__host_actor_kill(actor);
    return r < 0 ? (int)host_fail(r) : 0;
}

/* ---- JSON readers ---- */

static const uint8_t *ws(const uint8_t *p, const uint8_t *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* json_skip returns the end of the value at p, or NULL if it is malformed. */
static const uint8_t *json_skip(const uint8_t *p, const uint8_t *end) {
    p = ws(p, end);
    if (p >= end) return NULL;
    if (*p == '"') {
        for (p++; p < end; p++) {
            if (*p == '\\') p++;
            else if (*p == '"') return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = json_skip(p, end);
                if (!p) return NULL;
                p--;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
        }
        return NULL;
    }
    const uint8_t *s = p;
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
           *p != '\t' && *p != '\r')
        p++;
    return p > s ? p : NULL;
}

/* json_find returns the start of key's value among the top-level members of the object in j. */
static const uint8_t *json_find(const uint8_t *j, size_t n, const char *key) {
    if (!j) return NULL;
    const uint8_t *p = ws(j, j + n), *end = j + n;
    size_t klen = strlen(key);
    if (p >= end || *p != '{') return NULL;
    p = ws(p + 1, end);
    while (p < end && *p == '"') {
        const uint8_t *ks = p + 1, *ke = json_skip(p, end);
        if (!ke) return NULL;
        p = ws(ke, end);
        if (p >= end || *p != ':') return NULL;
        p = ws(p + 1, end);
        if ((size_t)(ke - 1 - ks) == klen && memcmp(ks, key, klen) == 0) return p;
        p = json_skip(p, end);
        if (!p) return NULL;
        p = ws(p, end);
        if (p < end && *p == ',') p = ws(p + 1, end);
    }
    return NULL;
}

static int parse_int(const uint8_t *p, const uint8_t *end, int64_t *out_) {
    char tmp[32];
    size_t n = 0;
    while (p + n < end && n < sizeof tmp - 1 &&
           (p[n] == '-' || (p[n] >= '0' && p[n] <= '9')))
        n++;
    if (n == 0 || (p + n < end && (p[n] == '.' || p[n] == 'e' || p[n] == 'E')))
        return LUMEN_BAD_PAYLOAD;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    char *e;
    long long v = strtoll(tmp, &e, 10);
    if (*e) return LUMEN_BAD_PAYLOAD;
    *out_ = v;
    return 0;
}

int lumen_json_int(const uint8_t *json, size_t len, const char *key, int64_t *out_) {
    const uint8_t *p = json_find(json, len, key);
    if (!p) return LUMEN_NOT_FOUND;
    return parse_int(p, json + len, out_);
}

int lumen_json_parse_int(const uint8_t *json, size_t len, int64_t *out_) {
    if (!json) return LUMEN_BAD_PAYLOAD;
    const uint8_t *end = json + len, *p = ws(json, end);
    int64_t v;
    int r = parse_int(p, end, &v);
    if (r) return r;
    const uint8_t *q = json_skip(p, end);
    if (!q || ws(q, end) != end) return LUMEN_BAD_PAYLOAD;
    *out_ = v;
    return 0;
}

int lumen_json_double(const uint8_t *json, size_t len, const char *key, double *out_) {
    const uint8_t *p = json_find(json, len, key);
    if (!p) return LUMEN_NOT_FOUND;
    const uint8_t *e = json_skip(p, json + len);
    if (!e || (size_t)(e - p) >= 64) return LUMEN_BAD_PAYLOAD;
    char tmp[64];
    memcpy(tmp, p, (size_t)(e - p));
    tmp[e - p] = 0;
    char *te;
    double v = strtod(tmp, &te);
    if (te == tmp || *te) return LUMEN_BAD_PAYLOAD;
    *out_ = v;
    return 0;
}

int lumen_json_bool(const uint8_t *json, size_t len, const char *key, int *out_) {
    const uint8_t *p = json_find(json, len, key), *end = json + len;
    if (!p) return LUMEN_NOT_FOUND;
    if (end - p >= 4 && memcmp(p, "true", 4) == 0) return *out_ = 1, 0;
    if (end - p >= 5 && memcmp(p, "false", 5) == 0) return *out_ = 0, 0;
    return LUMEN_BAD_PAYLOAD;
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int64_t lumen_json_string(const uint8_t *json, size_t len, const char *key, char *dst, size_t cap) {
    const uint8_t *p = json_find(json, len, key), *end = json + len;
    if (!p) return LUMEN_NOT_FOUND;
    if (*p != '"') return LUMEN_BAD_PAYLOAD;
    size_t n = 0;
#define PUT(c)                                   \
    do {                                         \
        if (dst && n + 1 < cap) dst[n] = (char)(c); \
        n++;                                     \
    } while (0)
    for (p++; p < end && *p != '"'; p++) {
        if (*p != '\\') {
            PUT(*p);
            continue;
        }
        if (++p >= end) return LUMEN_BAD_PAYLOAD;
        switch (*p) {
        case 'n': PUT('\n'); break;
        case 't': PUT('\t'); break;
        case 'r': PUT('\r'); break;
        case 'b': PUT('\b'); break;
        case 'f': PUT('\f'); break;
        case 'u': {
            if (end - p < 5) return LUMEN_BAD_PAYLOAD;
            uint32_t cp = 0;
            for (int i = 1; i <= 4; i++) {
                int h = hexval(p[i]);
                if (h < 0) return LUMEN_BAD_PAYLOAD;
                cp = cp << 4 | (uint32_t)h;
            }
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 7 && p[1] == '\\' && p[2] == 'u') {
                uint32_t lo = 0;
                int ok = 1;
                for (int i = 3; i <= 6; i++) {
                    int h = hexval(p[i]);
                    if (h < 0) ok = 0;
                    lo = lo << 4 | (uint32_t)(h < 0 ? 0 : h);
                }
                if (ok && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            if (cp < 0x80) {
                PUT(cp);
            } else if (cp < 0x800) {
                PUT(0xC0 | cp >> 6);
                PUT(0x80 | (cp & 63));
            } else if (cp < 0x10000) {
                PUT(0xE0 | cp >> 12);
                PUT(0x80 | ((cp >> 6) & 63));
                PUT(0x80 | (cp & 63));
            } else {
                PUT(0xF0 | cp >> 18);
                PUT(0x80 | ((cp >> 12) & 63));
                PUT(0x80 | ((cp >> 6) & 63));
                PUT(0x80 | (cp & 63));
            }
            break;
        }
        default: PUT(*p);
        }
    }
#undef PUT
    if (p >= end) return LUMEN_BAD_PAYLOAD;
    if (dst && cap) dst[n < cap ? n : cap - 1] = 0;
    return (int64_t)n;
}

/* ---- Tensors ---- */

static const char *const dtype_names[] = {"f32", "i32", "i64"};

/* status32 turns an i32 host return into 0 or a recorded failure. */
static int status32(int32_t r) { return r < 0 ? (int)host_fail(r) : 0; }

/* bad_handle refuses a handle that is no handle: a status passed along from an earlier failure
 * (which stands, its message included) or 0. */
static int64_t bad_handle(const char *what, int64_t h) {
    if (h > 0) return 0;
    if (h < 0) return h;
    return sdk_fail(LUMEN_BAD_ARGUMENT, what);
}

lumen_tensor lumen_tensor_create(enum lumen_dtype dtype, const int64_t *shape, size_t rank,
                                 const void *data, size_t data_len, int requires_grad) {
    if ((unsigned)dtype > LUMEN_I64)
        return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_tensor_create: unknown dtype");
    if (!shape && rank) return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_tensor_create: NULL shape");
    if (!data) data_len = 0;
    buf b = {0};
    buf_printf(&b, "{\"dtype\":\"%s\",\"shape\":[", dtype_names[dtype]);
    for (size_t i = 0; i < rank; i++) buf_printf(&b, "%s%lld", i ? "," : "", (long long)shape[i]);
    buf_str(&b, "]");
    if (requires_grad) buf_str(&b, ",\"requires_grad\":true");
    buf_str(&b, "}");
    if (b.oom) {
        free(b.p);
        return sdk_fail(LUMEN_NO_MEMORY, "out of memory encoding a tensor spec");
    }
    int64_t r = lumen__host_tensor_create(b.p, (int32_t)b.n, data, (int32_t)data_len);
    free(b.p);
    return r < 0 ? host_fail(r) : r;
}

static size_t numel(const int64_t *shape, size_t rank) {
    size_t n = 1;
    for (size_t i = 0; i < rank; i++) n *= shape[i] > 0 ? (size_t)shape[i] : 0;
    return n;
}

/* wasm32 is little-endian, so the raw values are the arrays' own bytes. */
lumen_tensor lumen_tensor_f32(const int64_t *shape, size_t rank, const float *data,
                              int requires_grad) {
    return lumen_tensor_create(LUMEN_F32, shape, rank, data,
                               data ? numel(shape, rank) * sizeof(float) : 0, requires_grad);
}

lumen_tensor lumen_tensor_i64(const int64_t *shape, size_t rank, const int64_t *data) {
    return lumen_tensor_create(LUMEN_I64, shape, rank, data,
                               data ? numel(shape, rank) * sizeof(int64_t) : 0, 0);
}

lumen_tensor lumen_tensor_op(const char *name, const lumen_tensor *inputs, size_t n,
                             const char *attrs_json) {
    if (!name || !*name) return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_tensor_op: no op name");
    if (!inputs && n) return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_tensor_op: NULL inputs");
    for (size_t i = 0; i < n; i++) {
        int64_t st = bad_handle("lumen_tensor_op: an input is not a tensor", inputs[i]);
        if (st) return st;
    }
    buf b = {0};
    buf_str(&b, "{\"op\":");
    buf_json_string(&b, name, strlen(name));
    buf_str(&b, ",\"inputs\":[");
    for (size_t i = 0; i < n; i++) buf_printf(&b, "%s%lld", i ? "," : "", (long long)inputs[i]);
    buf_str(&b, "]");
    if (attrs_json && *attrs_json) buf_printf(&b, ",\"attrs\":%s", attrs_json);
    buf_str(&b, "}");
    return send(lumen__host_tensor_op, &b);
}

static lumen_tensor op2(const char *name, lumen_tensor a, lumen_tensor b) {
    lumen_tensor in[2] = {a, b};
    return lumen_tensor_op(name, in, 2, NULL);
}
lumen_tensor lumen_tensor_matmul(lumen_tensor a, lumen_tensor b) { return op2("matmul", a, b); }
lumen_tensor lumen_tensor_add(lumen_tensor a, lumen_tensor b) { return op2("add", a, b); }
lumen_tensor lumen_tensor_sub(lumen_tensor a, lumen_tensor b) { return op2("sub", a, b); }
lumen_tensor lumen_tensor_mul(lumen_tensor a, lumen_tensor b) { return op2("mul", a, b); }
lumen_tensor lumen_tensor_relu(lumen_tensor t) { return lumen_tensor_op("relu", &t, 1, NULL); }
lumen_tensor lumen_tensor_sum(lumen_tensor t) { return lumen_tensor_op("sum", &t, 1, NULL); }
lumen_tensor lumen_tensor_mean(lumen_tensor t) { return lumen_tensor_op("mean", &t, 1, NULL); }

int lumen_tensor_read(lumen_tensor t, lumen_bytes *out_) {
    if (!out_) return (int)sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_tensor_read: NULL out");
    out_->data = NULL;
    out_->len = 0;
    int64_t st = bad_handle("lumen_tensor_read: not a tensor", t);
    if (st) return (int)st;
    int64_t n = lumen__host_tensor_read(t);
    if (n < 0) return (int)host_fail(n);
    return take_result(n, out_);
}

int lumen_tensor_info(lumen_tensor t, lumen_tensor_meta *meta) {
    if (!meta) return (int)sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_tensor_info: NULL meta");
    int64_t st = bad_handle("lumen_tensor_info: not a tensor", t);
    if (st) return (int)st;
    int64_t n = lumen__host_tensor_info(t);
    if (n < 0) return (int)host_fail(n);
    lumen_bytes res;
    int r = take_result(n, &res);
    if (r) return r;
    const uint8_t *end = res.data + res.len;
    char dt[8];
    r = LUMEN_BAD_PAYLOAD;
    meta->rank = 0;
    if (lumen_json_string(res.data, res.len, "dtype", dt, sizeof dt) >= 0) {
        for (int i = 0; i < 3; i++)
            if (!strcmp(dt, dtype_names[i])) meta->dtype = (enum lumen_dtype)i, r = 0;
    }
    const uint8_t *p = r == 0 ? json_find(res.data, res.len, "shape") : NULL;
    if (!p || p >= end || *p != '[') r = LUMEN_BAD_PAYLOAD;
    if (r == 0) {
        p = ws(p + 1, end);
        while (p && p < end && *p != ']') {
            if (meta->rank == LUMEN_MAX_RANK || parse_int(p, end, &meta->shape[meta->rank]) < 0) {
                r = LUMEN_BAD_PAYLOAD;
                break;
            }
            meta->rank++;
            p = json_skip(p, end);
            if (p) p = ws(p, end);
            if (p && p < end && *p == ',') p = ws(p + 1, end);
        }
        if (!p || p >= end) r = LUMEN_BAD_PAYLOAD;
    }
    lumen_bytes_free(&res);
    return r ? (int)sdk_fail(r, "lumen_tensor_info: the host's answer does not decode") : 0;
}

int lumen_tensor_read_f32(lumen_tensor t, float **values, size_t *n) {
    if (!values || !n) return (int)sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_tensor_read_f32: NULL out");
    *values = NULL;
    *n = 0;
    lumen_tensor_meta meta;
    int r = lumen_tensor_info(t, &meta);
    if (r) return r;
    if (meta.dtype != LUMEN_F32)
        return (int)sdk_fail(LUMEN_BAD_PAYLOAD, "lumen_tensor_read_f32: the tensor is not f32");
    lumen_bytes raw;
    r = lumen_tensor_read(t, &raw);
    if (r) return r;
    if (raw.len % sizeof(float)) {
        lumen_bytes_free(&raw);
        return (int)sdk_fail(LUMEN_BAD_PAYLOAD, "lumen_tensor_read_f32: a partial element");
    }
    *values = (float *)raw.data; /* malloc'd, so aligned for any type */
    *n = raw.len / sizeof(float);
    return 0;
}

int lumen_tensor_backward(lumen_tensor t) {
    int64_t st = bad_handle("lumen_tensor_backward: not a tensor", t);
    return st ? (int)st : status32(lumen__host_tensor_backward(t));
}

lumen_tensor lumen_tensor_grad(lumen_tensor t) {
    int64_t st = bad_handle("lumen_tensor_grad: not a tensor", t);
    if (st) return st;
    int64_t r = lumen__host_tensor_grad(t);
    return r < 0 ? host_fail(r) : r;
}

int lumen_tensor_free(lumen_tensor t) {
    int64_t st = bad_handle("lumen_tensor_free: not a tensor", t);
    return st ? (int)st : status32(lumen__host_tensor_free(t));
}

lumen_optim lumen_optim_create(const lumen_optim_opts *o, const lumen_tensor *params, size_t n) {
    if (!o || !o->kind) return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_optim_create: no kind");
    if (!params && n) return sdk_fail(LUMEN_BAD_ARGUMENT, "lumen_optim_create: NULL params");
    for (size_t i = 0; i < n; i++) {
        int64_t st = bad_handle("lumen_optim_create: a param is not a tensor", params[i]);
        if (st) return st;
    }
    buf b = {0};
    buf_str(&b, "{\"kind\":");
    buf_json_string(&b, o->kind, strlen(o->kind));
    buf_str(&b, ",\"params\":[");
    for (size_t i = 0; i < n; i++) buf_printf(&b, "%s%lld", i ? "," : "", (long long)params[i]);
    buf_printf(&b, "],\"lr\":%.17g", o->lr);
    if (o->momentum >= 0) buf_printf(&b, ",\"momentum\":%.17g", o->momentum);
    if (o->weight_decay >= 0) buf_printf(&b, ",\"weight_decay\":%.17g", o->weight_decay);
    if (o->beta1 >= 0 || o->beta2 >= 0)
        buf_printf(&b, ",\"betas\":[%.17g,%.17g]", o->beta1, o->beta2);
    if (o->eps >= 0) buf_printf(&b, ",\"eps\":%.17g", o->eps);
    buf_str(&b, "}");
    return send(lumen__host_optim_create, &b);
}

lumen_optim lumen_optim_sgd(const lumen_tensor *params, size_t n, double lr, double momentum) {
    lumen_optim_opts o = {"sgd", lr, momentum, -1, -1, -1, -1};
    return lumen_optim_create(&o, params, n);
}

lumen_optim lumen_optim_adamw(const lumen_tensor *params, size_t n, double lr,
                              double weight_decay) {
    lumen_optim_opts o = {"adamw", lr, -1, weight_decay, -1, -1, -1};
    return lumen_optim_create(&o, params, n);
}

int lumen_optim_step(lumen_optim o) {
    int64_t st = bad_handle("lumen_optim_step: not an optimiser", o);
    return st ? (int)st : status32(lumen__host_optim_step(o));
}

int lumen_optim_zero_grad(lumen_optim o) {
    int64_t st = bad_handle("lumen_optim_zero_grad: not an optimiser", o);
    return st ? (int)st : status32(lumen__host_optim_zero_grad(o));
}
