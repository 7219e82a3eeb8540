// The conformance guest in AssemblyScript: the same functions, with the same results, as the Go,
// C and Rust guests beside it (see ../conformance_test.go).
import {
  Actor, JsonValue, Ref, Tensor, actor, bytesTask, fail, jsonQuote, jsonTask, log, method, put, require, submit, submitBytes,
} from "../../assemblyscript/assembly/index";
export { lumen_abi_v1, lumen_alloc, lumen_manifest, lumen_call } from "../../assemblyscript/assembly/index";

require("objects");
require("tasks");
require("actors");
require("tensors");

bytesTask("echo", (b: Uint8Array): Uint8Array | null => b);

jsonTask("add", (input: string): string | null => {
  const v = JsonValue.parse(input);
  if (v == null || !v.has("a") || !v.has("b")) {
    fail("E_INPUT", 'want {"a": int, "b": int}');
    return null;
  }
  return (v.getInt("a") + v.getInt("b")).toString();
});

jsonTask("greet", (input: string): string | null => {
  const v = JsonValue.parse(input);
  if (v == null) {
    fail("E_INPUT", 'want {"name": string}');
    return null;
  }
  const name = v.getString("name");
  log("greeting " + name);
  return jsonQuote("hello, " + name);
});

jsonTask("fail", (input: string): string | null => {
  fail("E_CONF", "conformance failure");
  return null;
});

jsonTask("trap", (input: string): string | null => {
  unreachable();
  return null;
});

bytesTask("nested", (b: Uint8Array): Uint8Array | null => {
  const r = submitBytes("echo", b);
  if (r == null) return null;
  return r.getBytes();
});

jsonTask("nested_fail", (input: string): string | null => {
  const r = submit("fail", "");
  if (r == null) return null;
  return r.getString(); // null: the SDK reports the child's failure
});

class Counter {
  constructor(public n: i64) {}
}

actor<Counter>("Counter", (args: string): Counter | null => {
  const v = JsonValue.parse(args);
  return new Counter(v != null ? v.int : 0);
});

method<Counter>("Counter.incr", (c: Counter, input: string): string | null => {
  const v = JsonValue.parse(input);
  c.n += v != null ? v.int : 1;
  return c.n.toString();
});

jsonTask("counter", (input: string): string | null => {
  const a = Actor.create("Counter", "0");
  if (a == null) return null;
  let last: Ref | null = null;
  for (let i = 0; i < 3; i++) {
    last = a.call("incr", "1");
    if (last == null) return null;
  }
  return last!.getString();
});

bytesTask("objects", (b: Uint8Array): Uint8Array | null => {
  const r = put(b);
  if (r == null) return null;
  const out = r.getBytes();
  if (out == null || !r.release()) return null;
  return out;
});

// ints writes a float32 tensor's values as a JSON array of integers, or returns null.
function ints(t: Tensor): string | null {
  const v = t.toArray();
  if (v == null) return null;
  let s = "[";
  for (let i = 0; i < v.length; i++) s += (i > 0 ? "," : "") + (<i64>v[i]).toString();
  return s + "]";
}

jsonTask("tensors", (input: string): string | null => {
  const a = Tensor.create([2, 2], [1, 2, 3, 4], true);
  if (a == null) return null;
  const b = Tensor.create([2, 2], [5, 6, 7, 8]);
  if (b == null) return null;
  const c = a.matmul(b);
  if (c == null) return null;
  const loss = c.sum();
  if (loss == null || !loss.backward()) return null;
  const grad = a.grad();
  if (grad == null) return null;
  const cs = ints(c);
  if (cs == null) return null;
  const gs = ints(grad);
  if (gs == null || !grad.free()) return null;
  return '{"c":' + cs + ',"grad":' + gs + "}";
});

jsonTask("missing", (input: string): string | null => {
  if (new Ref(999999).getBytes(0) == null) return null; // the SDK reports the host's error
  fail("E_CONF", "object 999999 exists");
  return null;
});

let sink: u64 = 0;

jsonTask("loop", (input: string): string | null => {
  let n: u64 = 1;
  while (true) {
    n = n * 31 + 7;
    store<u64>(changetype<usize>(memory.data(8)), n);
    sink = n;
  }
  return null;
});

const hoard: Uint8Array[] = [];

jsonTask("grow", (input: string): string | null => {
  // When memory.grow fails, the allocator traps: the memory limit.
  while (true) {
    const b = new Uint8Array(1 << 20);
    for (let j = 0; j < b.length; j += 4096) b[j] = <u8>(j | 1);
    hoard.push(b);
  }
  return null;
});
