// stats: a worked example of the AssemblyScript SDK. Build with
//
//   npx asc stats.ts -o stats.wasm -O3 --noAssert --exportStart _initialize \
//       --use abort=../assembly/index/abort
import {
  Actor, JsonValue, Ref, actor, bytesTask, fail, jsonQuote, jsonTask, log, method, put, require,
  submitBytes, wait,
} from "../assembly/index";
export { lumen_abi_v1, lumen_alloc, lumen_manifest, lumen_call } from "../assembly/index";

// report uses objects, tasks and actors: the module asks for them, the job must grant them.
require("objects");
require("tasks");
require("actors");

// sum: JSON in ({"a": 1, "b": 2}), JSON out (3), a log line, and a guest error of its own.
jsonTask("sum", (input: string): string | null => {
  const v = JsonValue.parse(input);
  if (v == null || !v.has("a") || !v.has("b")) {
    fail("E_INPUT", 'want {"a": int, "b": int}');
    return null;
  }
  log("sum " + v.getInt("a").toString() + " + " + v.getInt("b").toString());
  return (v.getInt("a") + v.getInt("b")).toString();
});

// upper: bytes in, bytes out.
bytesTask("upper", (b: Uint8Array): Uint8Array | null => {
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) out[i] = b[i] >= 0x61 && b[i] <= 0x7a ? b[i] - 32 : b[i];
  return out;
});

// Tally is an actor: its state lives on an instance of its own between calls.
class Tally {
  constructor(public total: i64) {}
}

actor<Tally>("Tally", (args: string): Tally | null => {
  const v = JsonValue.parse(args);
  return new Tally(v != null ? v.int : 0);
});

method<Tally>("Tally.add", (t: Tally, input: string): string | null => {
  const v = JsonValue.parse(input);
  if (v == null) {
    fail("E_INPUT", "add wants an integer");
    return null;
  }
  t.total += v.int;
  return t.total.toString();
});

// report drives the engine from inside a task: a nested task, wait, an object, an actor. An SDK
// function that fails returns null (or false); returning null then reports lastError(), the
// host's status and message, as the call's error.
bytesTask("report", (b: Uint8Array): Uint8Array | null => {
  const up = submitBytes("upper", b); // returns at once
  if (up == null) return null;
  const w = wait([up], 1, 5000);
  if (w == null) return null;
  if (w.ready.length == 0) {
    fail("E_SLOW", "upper did not finish in 5 s");
    return null;
  }
  const text = up.getBytes(); // the task's output bytes
  if (text == null) return null;

  const blob = put(text); // an object of the job
  if (blob == null) return null;
  const again = blob.getBytes(0);
  if (again == null || !blob.release()) return null;

  const t = Actor.create("Tally", "10");
  if (t == null) return null;
  let last: Ref | null = null;
  for (let i = 1; i <= 3; i++) {
    last = t.call("add", i.toString()); // calls from one caller run in order
    if (last == null) return null;
  }
  const total = last!.getString();
  if (total == null) return null;

  const s = '{"upper":' + jsonQuote(String.UTF8.decodeUnsafe(again.dataStart, again.length)) + ',"total":' + total + "}";
  return Uint8Array.wrap(String.UTF8.encode(s));
});
