/* The conformance guest in C: the same functions, with the same results, as the Go, Rust and
 * AssemblyScript guests beside it (see ../conformance_test.go). */
#include <stdlib.h>
#include <string.h>

#include "lumen.h"

LUMEN_CAPABILITIES(LUMEN_CAP_OBJECTS | LUMEN_CAP_TASKS | LUMEN_CAP_ACTORS | LUMEN_CAP_TENSORS)

static int echo(const uint8_t *in, size_t len) { return lumen_output(in, len); }
LUMEN_BYTES_TASK("echo", echo)

static int add(const uint8_t *in, size_t len) {
    int64_t a, b;
    if (lumen_json_int(in, len, "a", &a) < 0 || lumen_json_int(in, len, "b", &b) < 0)
        return lumen_fail("E_INPUT", "want {\"a\": int, \"b\": int}");
    return lumen_output_int(a + b);
}
LUMEN_TASK("add", add)

static int greet(const uint8_t *in, size_t len) {
    char name[64];
    int64_t n = lumen_json_string(in, len, "name", name, sizeof name);
    if (n < 0) return lumen_fail("E_INPUT", "want {\"name\": string}");
    lumen_logf(LUMEN_INFO, "greeting %s", name);
    char msg[80] = "hello, ";
    strncat(msg, name, sizeof msg - strlen(msg) - 1);
    return lumen_output_json_string(msg, strlen(msg));
}
LUMEN_TASK("greet", greet)

static int fail(const uint8_t *in, size_t len) {
    (void)in, (void)len;
    return lumen_fail("E_CONF", "conformance failure");
}
LUMEN_TASK("fail", fail)

static int trap(const uint8_t *in, size_t len) {
    (void)in, (void)len;
    __builtin_trap();
}
LUMEN_TASK("trap", trap)

static int nested(const uint8_t *in, size_t len) {
    lumen_handle h = lumen_submit_bytes("echo", in, len);
    if (h < 0) return (int)h;
    lumen_bytes res;
    int r = lumen_get(h, -1, &res);
    if (r < 0) return r;
    lumen_output(res.data, res.len);
    lumen_bytes_free(&res);
    return 0;
}
LUMEN_BYTES_TASK("nested", nested)

static int nested_fail(const uint8_t *in, size_t len) {
    (void)in, (void)len;
    lumen_handle h = lumen_submit_json("fail", NULL);
    if (h < 0) return (int)h;
    lumen_bytes res;
    int r = lumen_get(h, -1, &res);
    if (r < 0) return r; /* LUMEN_FAILED: the SDK reports the child's failure */
    lumen_bytes_free(&res);
    return lumen_fail("E_CONF", "fail did not fail");
}
LUMEN_TASK("nested_fail", nested_fail)

typedef struct counter {
    int64_t n;
} counter;

static void *counter_new(const uint8_t *in, size_t len) {
    counter *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (len && lumen_json_parse_int(in, len, &c->n) < 0) {
        free(c);
        lumen_fail("E_INPUT", "Counter wants an integer to start from");
        return NULL;
    }
    return c;
}
LUMEN_ACTOR("Counter", counter_new)

static int counter_incr(void *state, const uint8_t *in, size_t len) {
    counter *c = state;
    int64_t by = 1;
    if (len && lumen_json_parse_int(in, len, &by) < 0) return lumen_fail("E_INPUT", "incr wants an integer");
    c->n += by;
    return lumen_output_int(c->n);
}
LUMEN_METHOD("Counter", "incr", counter_incr)

static int count(const uint8_t *in, size_t len) {
    (void)in, (void)len;
    lumen_handle a = lumen_actor_new("Counter", "0");
    if (a < 0) return (int)a;
    lumen_handle last = 0;
    for (int i = 0; i < 3; i++) {
        last = lumen_actor_call(a, "incr", "1");
        if (last < 0) return (int)last;
    }
    lumen_bytes res;
    int r = lumen_get(last, -1, &res);
    if (r < 0) return r;
    lumen_output(res.data, res.len);
    lumen_bytes_free(&res);
    return 0;
}
LUMEN_TASK("counter", count)

static int objects(const uint8_t *in, size_t len) {
    lumen_handle h = lumen_put(in, len);
    if (h < 0) return (int)h;
    lumen_bytes res;
    int r = lumen_get(h, -1, &res);
    if (r < 0) return r;
    lumen_output(res.data, res.len);
    lumen_bytes_free(&res);
    return lumen_release(h);
}
LUMEN_BYTES_TASK("objects", objects)

/* output_ints writes the values of a float32 tensor as a JSON array of integers. */
static int output_ints(lumen_tensor t) {
    float *v;
    size_t n;
    int r = lumen_tensor_read_f32(t, &v, &n);
    if (r < 0) return r;
    lumen_output_str("[");
    for (size_t i = 0; i < n; i++) lumen_outputf("%s%lld", i ? "," : "", (long long)v[i]);
    free(v);
    return lumen_output_str("]");
}

static int tensors(const uint8_t *in, size_t len) {
    (void)in, (void)len;
    static const int64_t shape[] = {2, 2};
    static const float a_data[] = {1, 2, 3, 4}, b_data[] = {5, 6, 7, 8};
    lumen_tensor a = lumen_tensor_f32(shape, 2, a_data, 1);
    lumen_tensor b = lumen_tensor_f32(shape, 2, b_data, 0);
    lumen_tensor c = lumen_tensor_matmul(a, b); /* a failure above passes along as c */
    lumen_tensor loss = lumen_tensor_sum(c);
    int r = lumen_tensor_backward(loss);
    if (r < 0) return r;
    lumen_tensor grad = lumen_tensor_grad(a);
    if (grad < 0) return (int)grad;
    lumen_output_str("{\"c\":");
    if ((r = output_ints(c)) < 0) return r;
    lumen_output_str(",\"grad\":");
    if ((r = output_ints(grad)) < 0) return r;
    lumen_output_str("}");
    return lumen_tensor_free(grad);
}
LUMEN_TASK("tensors", tensors)

static int missing(const uint8_t *in, size_t len) {
    (void)in, (void)len;
    lumen_bytes res;
    int r = lumen_get(999999, 0, &res);
    if (r < 0) return r; /* the SDK reports the host's error */
    lumen_bytes_free(&res);
    return lumen_fail("E_CONF", "object 999999 exists");
}
LUMEN_TASK("missing", missing)

static volatile uint64_t sink;

static int loop(const uint8_t *in, size_t len) {
    (void)in;
    uint64_t n = len;
    for (;;) sink = n = n * 31 + 7;
}
LUMEN_TASK("loop", loop)

static char **hoard;
static size_t nhoard;

static int grow(const uint8_t *in, size_t len) {
    (void)in, (void)len;
    for (;;) {
        char *b = malloc(1 << 20);
        char **h = realloc(hoard, (nhoard + 1) * sizeof *h);
        if (!b || !h) __builtin_trap(); /* memory.grow failed: the memory limit */
        for (size_t j = 0; j < 1 << 20; j += 4096) b[j] = (char)j;
        hoard = h;
        hoard[nhoard++] = b;
    }
}
LUMEN_TASK("grow", grow)
