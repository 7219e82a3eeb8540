/* The polyglot workflow's third step, in C: it measures one normalised line. Build with
 *
 *   clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-debug \
 *       -I../../../sdk/c -o poly-c.wasm measure.c ../../../sdk/c/lumen.c
 */
#include <stdlib.h>

#include "lumen.h"

/* fnv1a is the 32-bit FNV-1a hash of p[0:n]. */
static uint32_t fnv1a(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

/* measure: {"index": 0, "text": "the quick fox"} -> {"index":0,"words":3,"bytes":13,"fnv1a":...}.
 * words counts the runs of bytes other than spaces, bytes is the UTF-8 length, fnv1a the hash of
 * those bytes. */
static int measure(const uint8_t *in, size_t len) {
    int64_t index;
    if (lumen_json_int(in, len, "index", &index) < 0)
        return lumen_fail("E_INPUT", "want {\"index\": int, \"text\": string}");
    int64_t n = lumen_json_string(in, len, "text", NULL, 0); /* the length, to size the buffer */
    if (n < 0) return lumen_fail("E_INPUT", "want {\"index\": int, \"text\": string}");
    char *text = malloc((size_t)n + 1);
    if (!text) return LUMEN_NO_MEMORY;
    lumen_json_string(in, len, "text", text, (size_t)n + 1);

    int64_t words = 0;
    for (int64_t i = 0; i < n; i++)
        if (text[i] != ' ' && (i == 0 || text[i - 1] == ' ')) words++;
    uint32_t h = fnv1a((const uint8_t *)text, (size_t)n);
    free(text);
    return lumen_outputf("{\"index\":%lld,\"words\":%lld,\"bytes\":%lld,\"fnv1a\":%u}",
                         (long long)index, (long long)words, (long long)n, (unsigned)h);
}
LUMEN_TASK("measure", measure)

/* echo returns its input: the no-op task the SDK benchmark calls. */
static int echo(const uint8_t *in, size_t len) { return lumen_output(in, len); }
LUMEN_BYTES_TASK("echo", echo)
