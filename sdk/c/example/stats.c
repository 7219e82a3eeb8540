/* stats: a worked example of the C SDK. Build with
 *
 *   clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-debug \
 *       -I.. -o stats.wasm stats.c ../lumen.c
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lumen.h"

/* report uses objects, tasks and actors: the module asks for them, the job must grant them. */
LUMEN_CAPABILITIES(LUMEN_CAP_OBJECTS | LUMEN_CAP_TASKS | LUMEN_CAP_ACTORS)

/* sum: JSON in ({"a": 1, "b": 2}), JSON out (3), a log line, and a guest error of its own. */
static int sum(const uint8_t *in, size_t len) {
    int64_t a, b;
    if (lumen_json_int(in, len, "a", &a) < 0 || lumen_json_int(in, len, "b", &b) < 0)
        return lumen_fail("E_INPUT", "want {\"a\": int, \"b\": int}");
    lumen_logf(LUMEN_INFO, "sum %lld + %lld", (long long)a, (long long)b);
    return lumen_output_int(a + b);
}
LUMEN_TASK("sum", sum)

/* upper: bytes in, bytes out. */
static int upper(const uint8_t *in, size_t len) {
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)toupper(in[i]);
        if (lumen_output(&c, 1) < 0) return LUMEN_NO_MEMORY;
    }
    return 0;
}
LUMEN_BYTES_TASK("upper", upper)

/* Tally is an actor: its state lives on an instance of its own between calls. */
typedef struct tally {
    int64_t total;
} tally;

static void *tally_new(const uint8_t *in, size_t len) {
    tally *t = calloc(1, sizeof *t);
    if (t && len) lumen_json_parse_int(in, len, &t->total);
    return t; /* NULL: the SDK reports that the constructor made no state */
}
LUMEN_ACTOR("Tally", tally_new)

static int tally_add(void *state, const uint8_t *in, size_t len) {
    tally *t = state;
    int64_t n;
    if (lumen_json_parse_int(in, len, &n) < 0) return lumen_fail("E_INPUT", "add wants an integer");
    t->total += n;
    return lumen_output_int(t->total);
}
LUMEN_METHOD("Tally", "add", tally_add)

/* report drives the engine from inside a task: a nested task, wait, an object, an actor. Each
 * host failure is returned as is (a negative status): the SDK reports it with the host's message. */
static int report(const uint8_t *in, size_t len) {
    lumen_handle up = lumen_submit_bytes("upper", in, len); /* returns at once */
    if (up < 0) return (int)up;

    int ready;
    int r = lumen_wait(&up, 1, 1, 5000, &ready); /* block until it is done, 5 s at most */
    if (r < 0) return r;

    lumen_bytes text;
    if ((r = lumen_get(up, -1, &text)) < 0) return r; /* the task's output bytes */

    lumen_handle blob = lumen_put(text.data, text.len); /* an object of the job */
    if (blob < 0) return (int)blob;
    lumen_bytes again;
    if ((r = lumen_get(blob, 0, &again)) < 0) return r;

    lumen_handle t = lumen_actor_new("Tally", "10");
    if (t < 0) return (int)t;
    lumen_handle last = 0;
    for (int i = 1; i <= 3; i++) {
        char arg[8] = {(char)('0' + i), 0};
        if ((last = lumen_actor_call(t, "add", arg)) < 0) return (int)last; /* in order */
    }
    lumen_bytes total;
    if ((r = lumen_get(last, -1, &total)) < 0) return r;

    lumen_output_str("{\"upper\":");
    lumen_output_json_string((const char *)again.data, again.len);
    lumen_outputf(",\"total\":%.*s}", (int)total.len, (const char *)total.data);
    lumen_bytes_free(&text);
    lumen_bytes_free(&again);
    lumen_bytes_free(&total);
    return lumen_release(blob);
}
LUMEN_BYTES_TASK("report", report)
