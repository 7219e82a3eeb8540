// The AssemblyScript guest SDK for Lumen, host ABI v1 (docs/abi.md).
//
// Register tasks and actor methods at the top level of your entry file, re-export the four ABI
// exports, and build with
//
//   npx asc assembly/index.ts -o module.wasm -O3 --exportStart _initialize \
//       --use abort=assembly/lumen/abort
//
// (the abort path names this file as your project sees it; `--use abort=` also works and traps
// without a message).
//
//   import { bytesTask, jsonTask, JsonValue } from "./lumen";
//   export { lumen_abi_v1, lumen_alloc, lumen_manifest, lumen_call } from "./lumen";
//
//   bytesTask("echo", (b: Uint8Array): Uint8Array | null => b);
//   jsonTask("add", (input: string): string | null => {
//     const v = JsonValue.parse(input);
//     if (v == null) { fail("E_INPUT", "not JSON"); return null; }
//     return (v.getInt("a") + v.getInt("b")).toString();
//   });
//
// AssemblyScript has no exceptions, so a function signals failure by returning null: after
// fail(code, message) that is its own guest error; after an SDK function failed (it returned
// null, false or a negative number and lastError() says why) it is that host error, reported as
// the Go SDK words it ("lumen: not_found: ..."). Nothing is hidden behind a default value.
//
// An instance runs one call at a time; the SDK keeps per-call state in globals.

// ---- The "lumen" import module ----

@external("lumen", "log") declare function host_log(level: i32, ptr: usize, len: i32): i32;
@external("lumen", "error") declare function host_error(ptr: usize, len: i32): i32;
@external("lumen", "result_len") declare function host_result_len(): i32;
@external("lumen", "result_read") declare function host_result_read(ptr: usize, len: i32): i32;
@external("lumen", "object_put") declare function host_object_put(ptr: usize, len: i32): i64;
@external("lumen", "object_get") declare function host_object_get(h: i64, timeoutMs: i64): i64;
@external("lumen", "object_release") declare function host_object_release(h: i64): i32;
@external("lumen", "task_submit") declare function host_task_submit(ptr: usize, len: i32): i64;
@external("lumen", "task_cancel") declare function host_task_cancel(h: i64): i32;
@external("lumen", "wait") declare function host_wait(ptr: usize, len: i32): i64;
@external("lumen", "actor_create") declare function host_actor_create(ptr: usize, len: i32): i64;
@external("lumen", "actor_call") declare function host_actor_call(ptr: usize, len: i32): i64;
@external("lumen", "actor_kill") declare function host_actor_kill(h: i64): i32;
// Extension point: later ABI additions (tensor_*, model_chat) are declared here the same way and
// wrapped below; a module that does not call them does not import them.
@external("lumen", "tensor_create") declare function host_tensor_create(specPtr: usize, specLen: i32, dataPtr: usize, dataLen: i32): i64;
@external("lumen", "tensor_op") declare function host_tensor_op(ptr: usize, len: i32): i64;
@external("lumen", "tensor_read") declare function host_tensor_read(h: i64): i64;
@external("lumen", "tensor_info") declare function host_tensor_info(h: i64): i64;
@external("lumen", "tensor_backward") declare function host_tensor_backward(h: i64): i32;
@external("lumen", "tensor_grad") declare function host_tensor_grad(h: i64): i64;
@external("lumen", "tensor_free") declare function host_tensor_free(h: i64): i32;
@external("lumen", "optim_create") declare function host_optim_create(ptr: usize, len: i32): i64;
@external("lumen", "optim_step") declare function host_optim_step(h: i64): i32;
@external("lumen", "optim_zero_grad") declare function host_optim_zero_grad(h: i64): i32;

export const ABI_VERSION: i32 = 1;

// ---- Status codes (docs/abi.md §3.2) ----

export enum Status {
  OK = 0,
  BAD_POINTER = 1,
  BAD_PAYLOAD = 2,
  DENIED = 3,
  NOT_FOUND = 4,
  TIMEOUT = 5,
  LIMIT = 6,
  FAILED = 7,
  UNAVAILABLE = 8,
  CANCELLED = 9,
  INTERNAL = 10,
  TOO_LARGE = 11,
  NO_RESULT = 12,
  BAD_LEVEL = 13,
}

const statusNames: string[] = [
  "ok", "bad_pointer", "bad_payload", "denied", "not_found", "timeout", "limit", "failed",
  "unavailable", "cancelled", "internal", "too_large", "no_result", "bad_level",
];

/** statusName returns the ABI's name of a status ("not_found"), or "unknown". */
export function statusName(status: i32): string {
  return status >= 0 && status < statusNames.length ? statusNames[status] : "unknown";
}

/** LumenError describes why an SDK function failed. */
export class LumenError {
  /** The host function's status, or 0 for an error the guest made itself. */
  status: i32 = 0;
  /** For a failed task or actor call (Status.FAILED): guest_error, trap, limit_exceeded, ... */
  kind: string = "";
  /** For limit_exceeded: deadline, memory or output. */
  limit: string = "";
  code: string = "";
  message: string = "";

  toString(): string {
    if (this.status == Status.FAILED && this.kind.length > 0) {
      if (this.limit.length > 0) return "lumen: " + this.kind + " (" + this.limit + "): " + this.message;
      return "lumen: " + this.kind + ": " + this.message;
    }
    if (this.status != 0) return "lumen: " + statusName(this.status) + ": " + this.message;
    if (this.code.length > 0) return this.code + ": " + this.message;
    return this.message;
  }

  /** isTimeout reports whether a get or wait ran out of time; the refs stay valid. */
  isTimeout(): bool {
    return this.status == Status.TIMEOUT;
  }
}

let lastErr: LumenError | null = null;
let failed = false;

/** lastError says why the last SDK function that failed in this call failed, or null. */
export function lastError(): LumenError | null {
  return lastErr;
}

// takeResult copies the pending result out of the host: n bytes, or result_len's when n < 0.
function takeResult(n: i64): Uint8Array {
  if (n < 0) n = <i64>host_result_len();
  if (n <= 0) return new Uint8Array(0);
  const b = new Uint8Array(<i32>n);
  const got = host_result_read(b.dataStart, <i32>n);
  if (got < 0) return new Uint8Array(0);
  return got < b.length ? b.subarray(0, got) : b;
}

// hostFail records a host function's failure, reading the pending result for why.
function hostFail(r: i64): void {
  const e = new LumenError();
  e.status = r < -13 ? Status.INTERNAL : <i32>-r;
  const detail = takeResult(-1);
  e.message = String.UTF8.decodeUnsafe(detail.dataStart, detail.length);
  if (e.status == Status.FAILED) {
    const v = JsonValue.parse(e.message);
    if (v != null && v.getString("kind").length > 0) {
      e.kind = v.getString("kind");
      e.limit = v.getString("limit");
      e.code = v.getString("code");
      e.message = v.getString("message");
    }
  }
  if (e.message.length == 0) e.message = statusName(e.status);
  lastErr = e;
}

function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

// ---- Logs and errors ----

export enum Level {
  DEBUG = 0,
  INFO = 1,
  WARN = 2,
  ERROR = 3,
}

/** log writes a line to the call's log; false (see lastError) when the host refused it. */
export function log(msg: string, level: i32 = Level.INFO): bool {
  const b = utf8(msg);
  const r = host_log(level, b.dataStart, b.length);
  if (r < 0) {
    hostFail(r);
    return false;
  }
  return true;
}

function report(code: string, message: string): void {
  let s = "{";
  if (code.length > 0) s += '"code":' + jsonQuote(code) + ",";
  s += '"message":' + jsonQuote(message) + "}";
  const b = utf8(s);
  host_error(b.dataStart, b.length);
  failed = true;
}

/** fail fails the current call with a guest error; the function then returns null. */
export function fail(code: string, message: string): void {
  report(code, message);
}

/** abort, passed to asc as `--use abort=<this file>/abort`, logs why the guest aborted (an
 * assertion, an index out of range, ...) and traps. */
export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let s = "abort";
  if (message != null) s += ": " + message;
  if (fileName != null) s += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  log(s, Level.ERROR);
  unreachable();
}

// ---- Function table ----

const KIND_TASK: i32 = 0;
const KIND_ACTOR: i32 = 1;
const KIND_METHOD: i32 = 2;
const KIND_LOAD: i32 = 3;

class Entry {
  constructor(
    public name: string,
    public kind: i32,
    public actor: string,
    public json: bool,
    public fn: usize,
  ) {}
}

const entries: Entry[] = [];
let capabilities: string[] = [];
let hintCPU: f64 = 0;
let hintMemory: i64 = 0;
let hintGPU: f64 = 0;
let actorState: Object | null = null;
let actorType: string = "";

/** A task or method taking and returning raw bytes. */
export type BytesFn = (input: Uint8Array) => Uint8Array | null;
/** A task taking and returning JSON text ("" when the input is empty). */
export type JsonFn = (input: string) => string | null;

function register(name: string, kind: i32, actor: string, json: bool, fn: usize): void {
  for (let i = 0; i < entries.length; i++) {
    if (entries[i].name == name) abort("lumen: " + name + " registered twice", null, 0, 0);
  }
  entries.push(new Entry(name, kind, actor, json, fn));
}

/** bytesTask registers a stateless task that takes and returns raw bytes. */
export function bytesTask(name: string, fn: BytesFn): void {
  register(name, KIND_TASK, "", false, changetype<usize>(fn));
}

/** jsonTask registers a stateless task whose input and output are JSON text. */
export function jsonTask(name: string, fn: JsonFn): void {
  register(name, KIND_TASK, "", true, changetype<usize>(fn));
}

/** actor registers an actor type: ctor builds its state from the JSON arguments, or returns
 * null after fail(). */
export function actor<S>(name: string, ctor: (args: string) => S | null): void {
  register(name, KIND_ACTOR, "", true, changetype<usize>(ctor));
}

/** method registers method "Actor.method" of an actor type, with JSON input and output. */
export function method<S>(name: string, fn: (state: S, input: string) => string | null): void {
  register(name, KIND_METHOD, actorOf(name), true, changetype<usize>(fn));
}

/** bytesMethod registers a method that takes and returns raw bytes. */
export function bytesMethod<S>(name: string, fn: (state: S, input: Uint8Array) => Uint8Array | null): void {
  register(name, KIND_METHOD, actorOf(name), false, changetype<usize>(fn));
}

/** saveLoad lets the engine restore a restarted actor from the bytes save returns. */
export function saveLoad<S>(actorName: string, save: (state: S, input: Uint8Array) => Uint8Array | null, load: (saved: Uint8Array) => S | null): void {
  register(actorName + ".__save", KIND_METHOD, actorName, false, changetype<usize>(save));
  register(actorName + ".__load", KIND_LOAD, actorName, false, changetype<usize>(load));
}

function actorOf(name: string): string {
  const dot = name.indexOf(".");
  return dot < 0 ? name : name.substring(0, dot);
}

/** require declares a capability the module asks for: "objects", "tasks", "actors", "clock",
 * "random", "fs", "env" or "tensors". put/get need objects, submit/wait tasks, Actor actors,
 * Tensor and Optimizer tensors. */
export function require(capability: string): void {
  if (!capabilities.includes(capability)) capabilities.push(capability);
}

/** hints sets the resources a call of this module needs by default (0: no hint). */
export function hints(cpu: f64, memoryBytes: i64, gpu: f64): void {
  hintCPU = cpu;
  hintMemory = memoryBytes;
  hintGPU = gpu;
}

// ---- Guest exports: re-export these four from your entry file ----

let pendingInput: usize = 0;
let lastOut: Uint8Array = new Uint8Array(0);
let manifestBytes: Uint8Array | null = null;

function pack(ptr: usize, len: i32): u64 {
  if (len == 0) return 0;
  return (<u64>ptr << 32) | <u64>(<u32>len);
}

export function lumen_abi_v1(): void {}

export function lumen_alloc(size: i32): usize {
  // Sizes and lengths cross the ABI as i32s read unsigned.
  const p = heap.alloc(size != 0 ? <usize><u32>size : 1);
  if (pendingInput != 0) heap.free(pendingInput); // an input the host never passed on
  pendingInput = p;
  return p;
}

export function lumen_manifest(): u64 {
  if (manifestBytes == null) {
    let s = '{"abi":1,"functions":[';
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (i > 0) s += ",";
      const kind = e.kind == KIND_TASK ? "task" : e.kind == KIND_ACTOR ? "actor" : "method";
      s += '{"name":' + jsonQuote(e.name) + ',"kind":"' + kind + '"';
      if (e.kind == KIND_METHOD || e.kind == KIND_LOAD) s += ',"actor":' + jsonQuote(e.actor);
      const enc = e.json ? "json" : "bytes";
      s += ',"input":"' + enc + '","output":"' + enc + '"}';
    }
    s += "]";
    if (capabilities.length > 0) {
      s += ',"capabilities":[';
      for (let i = 0; i < capabilities.length; i++) s += (i > 0 ? "," : "") + jsonQuote(capabilities[i]);
      s += "]";
    }
    if (hintCPU > 0 || hintMemory > 0 || hintGPU > 0) {
      let r = "";
      if (hintCPU > 0) r += ',"cpu":' + hintCPU.toString();
      if (hintMemory > 0) r += ',"memory_bytes":' + hintMemory.toString();
      if (hintGPU > 0) r += ',"gpu":' + hintGPU.toString();
      s += ',"resources":{' + r.substring(1) + "}";
    }
    s += "}";
    manifestBytes = utf8(s);
  }
  const m = manifestBytes!;
  return pack(m.dataStart, m.length);
}

export function lumen_call(fn: i32, ptr: usize, len: i32): u64 {
  failed = false;
  lastErr = null;
  const n = <i32>min(<u32>len, <u32>0x7fffffff);
  const input = new Uint8Array(n);
  if (ptr != 0) {
    if (ptr != pendingInput) {
      report("bad_input", "lumen_call: input buffer was not allocated by lumen_alloc");
      return 0;
    }
    memory.copy(input.dataStart, ptr, <usize>n);
    heap.free(ptr);
    pendingInput = 0;
  }
  if (fn < 0 || fn >= entries.length) {
    report("", "lumen: no function at index " + fn.toString() + " (this module has " + entries.length.toString() + ")");
    return 0;
  }
  const e = entries[fn];
  let out: Uint8Array | null = null;
  if (e.kind == KIND_TASK) {
    if (e.json) {
      const r = changetype<JsonFn>(e.fn)(String.UTF8.decodeUnsafe(input.dataStart, input.length));
      if (r != null) out = utf8(r);
    } else {
      out = changetype<BytesFn>(e.fn)(input);
    }
  } else if (e.kind == KIND_ACTOR || e.kind == KIND_LOAD) {
    if (e.kind == KIND_ACTOR && actorState != null) {
      report("", 'lumen: this instance already holds actor "' + actorType + '"');
    } else {
      const s = e.kind == KIND_ACTOR
        ? changetype<(a: string) => Object | null>(e.fn)(String.UTF8.decodeUnsafe(input.dataStart, input.length))
        : changetype<(a: Uint8Array) => Object | null>(e.fn)(input);
      if (s != null) {
        actorState = s;
        actorType = e.kind == KIND_ACTOR ? e.name : e.actor;
        out = e.kind == KIND_ACTOR ? utf8("null") : new Uint8Array(0);
      } else if (!failed && lastErr == null) {
        report("", 'lumen: constructor of "' + e.name + '" returned no state');
      }
    }
  } else {
    const state = actorState;
    if (state == null || actorType != e.actor) {
      report("", "lumen: method " + e.name + " called on an instance that holds no " + e.actor + " actor");
    } else if (e.json) {
      const r = changetype<(s: Object, i: string) => string | null>(e.fn)(state, String.UTF8.decodeUnsafe(input.dataStart, input.length));
      if (r != null) out = utf8(r);
    } else {
      out = changetype<(s: Object, i: Uint8Array) => Uint8Array | null>(e.fn)(state, input);
    }
  }
  if (failed) return 0;
  if (out == null) {
    const err = lastErr;
    if (err != null) report(err.status == 0 ? err.code : "", err.status == 0 ? err.message : err.toString());
    else report("E_TASK", e.name + " returned null without calling fail");
    return 0;
  }
  lastOut = out;
  return pack(out.dataStart, out.length);
}

// ---- Objects ----

/** Ref refers to an object: bytes put with put(), or the future result of a task or an actor
 * call. In JSON arguments it is written {"$ref": handle} (see Ref.json). */
export class Ref {
  constructor(public handle: i64) {}

  /** getBytes blocks until the object is ready (up to timeoutMs; -1: the call's deadline) and
   * returns its bytes, or null: see lastError() (Status.FAILED for a failed task). */
  getBytes(timeoutMs: i64 = -1): Uint8Array | null {
    const n = host_object_get(this.handle, timeoutMs);
    if (n < 0) {
      hostFail(n);
      return null;
    }
    return takeResult(n);
  }

  /** getString returns the object's bytes as UTF-8 text (JSON for a json task's result). */
  getString(timeoutMs: i64 = -1): string | null {
    const b = this.getBytes(timeoutMs);
    if (b == null) return null;
    return String.UTF8.decodeUnsafe(b.dataStart, b.length);
  }

  /** release says this call no longer needs the object. */
  release(): bool {
    return ok(host_object_release(this.handle));
  }

  /** cancel asks for the task whose result this is to be cancelled. */
  cancel(): bool {
    return ok(host_task_cancel(this.handle));
  }

  /** json is the ref as a JSON argument: {"$ref": handle}. */
  json(): string {
    return '{"$ref":' + this.handle.toString() + "}";
  }
}

function ok(r: i32): bool {
  if (r < 0) {
    hostFail(<i64>r);
    return false;
  }
  return true;
}

function handleOrNull(r: i64): Ref | null {
  if (r < 0) {
    hostFail(r);
    return null;
  }
  return new Ref(r);
}

/** put stores the bytes as an immutable object. Needs the objects capability. */
export function put(data: Uint8Array): Ref | null {
  return handleOrNull(host_object_put(data.dataStart, data.length));
}

/** putString stores the string's UTF-8 bytes as an object. */
export function putString(s: string): Ref | null {
  return put(utf8(s));
}

// ---- Tasks ----

/** Task is a task_submit request: set what differs from the defaults, then submit(). */
export class Task {
  module: string = "";
  /** JSON text of a json function's input, or "" */
  args: string = "";
  /** the input of a bytes function, or null */
  argsBytes: Uint8Array | null = null;
  /** handles passed inside args as {"$ref": h} */
  refs: Ref[] = [];
  /** -1: the default (3) */
  maxRetries: i32 = -1;
  retryGuestErrors: bool = false;
  timeoutMs: i64 = 0;
  cpu: f64 = 0;
  memoryBytes: i64 = 0;
  gpu: f64 = 0;

  constructor(public func: string) {}

  /** submit starts the task and returns the ref of its result at once, or null (lastError). */
  submit(): Ref | null {
    let s = '{"function":' + jsonQuote(this.func);
    if (this.module.length > 0) s += ',"module":' + jsonQuote(this.module);
    if (this.args.length > 0) s += ',"args":' + this.args;
    const ab = this.argsBytes;
    if (ab != null && ab.length > 0) s += ',"args_bytes":"' + base64(ab) + '"';
    s += refsJSON(this.refs);
    if (this.cpu > 0 || this.memoryBytes > 0 || this.gpu > 0) {
      s += ',"resources":{"cpu":' + this.cpu.toString() + ',"memory_bytes":' + this.memoryBytes.toString() + ',"gpu":' + this.gpu.toString() + "}";
    }
    if (this.maxRetries >= 0) s += ',"max_retries":' + this.maxRetries.toString();
    if (this.retryGuestErrors) s += ',"retry_guest_errors":true';
    if (this.timeoutMs > 0) s += ',"timeout_ms":' + this.timeoutMs.toString();
    s += "}";
    const b = utf8(s);
    return handleOrNull(host_task_submit(b.dataStart, b.length));
  }
}

function refsJSON(refs: Ref[]): string {
  if (refs.length == 0) return "";
  let s = ',"refs":[';
  for (let i = 0; i < refs.length; i++) s += (i > 0 ? "," : "") + refs[i].handle.toString();
  return s + "]";
}

/** submit starts json function fn of this module with JSON args. Needs the tasks capability. */
export function submit(fn: string, argsJSON: string): Ref | null {
  const t = new Task(fn);
  t.args = argsJSON;
  return t.submit();
}

/** submitBytes starts bytes function fn of this module with input data. */
export function submitBytes(fn: string, data: Uint8Array): Ref | null {
  const t = new Task(fn);
  t.argsBytes = data;
  return t.submit();
}

/** WaitResult lists the refs that are ready and those that are not. */
export class WaitResult {
  ready: Ref[] = [];
  notReady: Ref[] = [];
}

/** wait blocks until numReturns of refs are ready or timeoutMs passes (-1: the call's
 * deadline). */
export function wait(refs: Ref[], numReturns: i32, timeoutMs: i64 = -1): WaitResult | null {
  let s = '{"handles":[';
  for (let i = 0; i < refs.length; i++) s += (i > 0 ? "," : "") + refs[i].handle.toString();
  s += '],"num_returns":' + numReturns.toString() + ',"timeout_ms":' + timeoutMs.toString() + "}";
  const b = utf8(s);
  const n = host_wait(b.dataStart, b.length);
  if (n < 0) {
    hostFail(n);
    return null;
  }
  const res = takeResult(n);
  const v = JsonValue.parse(String.UTF8.decodeUnsafe(res.dataStart, res.length));
  const w = new WaitResult();
  if (v == null) return w;
  const ready = v.get("ready");
  if (ready != null) for (let i = 0; i < ready.items.length; i++) w.ready.push(new Ref(ready.items[i].int));
  const notReady = v.get("not_ready");
  if (notReady != null) for (let i = 0; i < notReady.items.length; i++) w.notReady.push(new Ref(notReady.items[i].int));
  return w;
}

// ---- Actors ----

/** ActorOptions is an actor_create request. */
export class ActorOptions {
  module: string = "";
  /** JSON arguments of the constructor, or "" */
  args: string = "";
  name: string = "";
  namespace: string = "";
  detached: bool = false;
  /** -1: without limit */
  maxRestarts: i32 = 0;
  maxConcurrency: i32 = 0;

  constructor(public actorType: string) {}

  /** create creates the actor, or returns null (lastError). Needs the actors capability. */
  create(): Actor | null {
    let s = '{"actor":' + jsonQuote(this.actorType);
    if (this.module.length > 0) s += ',"module":' + jsonQuote(this.module);
    if (this.args.length > 0) s += ',"args":' + this.args;
    if (this.name.length > 0) s += ',"name":' + jsonQuote(this.name);
    if (this.namespace.length > 0) s += ',"namespace":' + jsonQuote(this.namespace);
    if (this.detached) s += ',"detached":true';
    if (this.maxRestarts != 0) s += ',"max_restarts":' + this.maxRestarts.toString();
    if (this.maxConcurrency != 0) s += ',"max_concurrency":' + this.maxConcurrency.toString();
    s += "}";
    const b = utf8(s);
    const h = host_actor_create(b.dataStart, b.length);
    if (h < 0) {
      hostFail(h);
      return null;
    }
    return new Actor(h);
  }
}

/** Actor is a live actor. */
export class Actor {
  constructor(public handle: i64) {}

  /** create creates an actor of type actorType of this module with JSON args. */
  static create(actorType: string, argsJSON: string = ""): Actor | null {
    const o = new ActorOptions(actorType);
    o.args = argsJSON;
    return o.create();
  }

  /** call calls method (without the type: "incr") with JSON args and returns the ref of its
   * result at once. Calls from one caller run in order. */
  call(method: string, argsJSON: string = "", refs: Ref[] = []): Ref | null {
    let s = '{"actor":' + this.handle.toString() + ',"method":' + jsonQuote(method);
    if (argsJSON.length > 0) s += ',"args":' + argsJSON;
    s += refsJSON(refs) + "}";
    const b = utf8(s);
    return handleOrNull(host_actor_call(b.dataStart, b.length));
  }

  /** callBytes calls a bytes method with input data. */
  callBytes(method: string, data: Uint8Array): Ref | null {
    let s = '{"actor":' + this.handle.toString() + ',"method":' + jsonQuote(method);
    if (data.length > 0) s += ',"args_bytes":"' + base64(data) + '"';
    s += "}";
    const b = utf8(s);
    return handleOrNull(host_actor_call(b.dataStart, b.length));
  }

  /** kill stops the actor without restarting it. */
  kill(): bool {
    return ok(host_actor_kill(this.handle));
  }
}

// ---- Tensors ----

// sdkFail records a failure of the SDK itself, worded as a host error of status st.
function sdkFail(st: i32, message: string): void {
  const e = new LumenError();
  e.status = st;
  e.message = message;
  lastErr = e;
}

function tensorOrNull(r: i64): Tensor | null {
  if (r < 0) {
    hostFail(r);
    return null;
  }
  return new Tensor(r);
}

function intsJSON(v: i64[]): string {
  let s = "[";
  for (let i = 0; i < v.length; i++) s += (i > 0 ? "," : "") + v[i].toString();
  return s + "]";
}

/** TensorInfo is a tensor's dtype ("f32", "i32" or "i64") and shape. */
export class TensorInfo {
  dtype: string = "";
  shape: i64[] = [];
}

/** Tensor is a tensor that lives on the host (on its GPU when it has one), driven by handle.
 * Needs the tensors capability. Ops run on the host and return new tensors; autograd records
 * them, so backward() on a loss fills the gradients of leaves made with requiresGrad. A tensor
 * lives until free() or the end of the call that made it (an actor's, as long as the actor).
 * Functions return null or false after a failure, with lastError() saying why. */
export class Tensor {
  constructor(public handle: i64) {}

  /** fromRaw makes a tensor of dtype and shape from data, its little-endian raw values in
   * row-major order (empty: zeros). requiresGrad (f32 only) makes a leaf with a gradient. */
  static fromRaw(dtype: string, shape: i64[], data: Uint8Array, requiresGrad: bool = false): Tensor | null {
    let spec = '{"dtype":' + jsonQuote(dtype) + ',"shape":' + intsJSON(shape);
    if (requiresGrad) spec += ',"requires_grad":true';
    const b = utf8(spec + "}");
    return tensorOrNull(host_tensor_create(b.dataStart, b.length, data.dataStart, data.length));
  }

  /** create makes a float32 tensor of shape from data (empty: zeros). */
  static create(shape: i64[], data: f32[], requiresGrad: bool = false): Tensor | null {
    const raw = new Uint8Array(data.length * 4);
    for (let i = 0; i < data.length; i++) store<f32>(raw.dataStart + (<usize>i << 2), data[i]);
    return Tensor.fromRaw("f32", shape, raw, requiresGrad);
  }

  /** fromI64 makes an int64 tensor (labels, embedding indices) of shape from data. */
  static fromI64(shape: i64[], data: i64[]): Tensor | null {
    const raw = new Uint8Array(data.length * 8);
    for (let i = 0; i < data.length; i++) store<i64>(raw.dataStart + (<usize>i << 3), data[i]);
    return Tensor.fromRaw("i64", shape, raw);
  }

  /** op runs host op name (docs/abi.md §3: matmul, add, relu, sum, reshape, conv2d, ...) on
   * inputs with attrsJSON, a JSON object of the op's attributes ("" for none). */
  static op(name: string, inputs: Tensor[], attrsJSON: string = ""): Tensor | null {
    let s = '{"op":' + jsonQuote(name) + ',"inputs":[';
    for (let i = 0; i < inputs.length; i++) s += (i > 0 ? "," : "") + inputs[i].handle.toString();
    s += "]";
    if (attrsJSON.length > 0) s += ',"attrs":' + attrsJSON;
    const b = utf8(s + "}");
    return tensorOrNull(host_tensor_op(b.dataStart, b.length));
  }

  /** matmul is the (batched, broadcasting) matrix product this·other. */
  matmul(other: Tensor): Tensor | null {
    return Tensor.op("matmul", [this, other]);
  }

  /** add is this + other, broadcasting. */
  add(other: Tensor): Tensor | null {
    return Tensor.op("add", [this, other]);
  }

  /** sub is this - other, broadcasting. */
  sub(other: Tensor): Tensor | null {
    return Tensor.op("sub", [this, other]);
  }

  /** mul is this · other elementwise, broadcasting. */
  mul(other: Tensor): Tensor | null {
    return Tensor.op("mul", [this, other]);
  }

  /** relu is max(this, 0). */
  relu(): Tensor | null {
    return Tensor.op("relu", [this]);
  }

  /** reshape is a view with shape (one dim may be -1). */
  reshape(shape: i64[]): Tensor | null {
    return Tensor.op("reshape", [this], '{"shape":' + intsJSON(shape) + "}");
  }

  /** sum adds over every axis, to one element. */
  sum(): Tensor | null {
    return Tensor.op("sum", [this]);
  }

  /** mean averages over every axis, to one element. */
  mean(): Tensor | null {
    return Tensor.op("mean", [this]);
  }

  /** info returns the tensor's dtype and shape. */
  info(): TensorInfo | null {
    const n = host_tensor_info(this.handle);
    if (n < 0) {
      hostFail(n);
      return null;
    }
    const b = takeResult(n);
    const text = String.UTF8.decodeUnsafe(b.dataStart, b.length);
    const v = JsonValue.parse(text);
    const shape = v != null ? v.get("shape") : null;
    if (v == null || shape == null || shape.kind != JsonKind.ARRAY || v.getString("dtype").length == 0) {
      sdkFail(Status.INTERNAL, "tensor_info: " + text);
      return null;
    }
    const info = new TensorInfo();
    info.dtype = v.getString("dtype");
    for (let i = 0; i < shape.items.length; i++) info.shape.push(shape.items[i].int);
    return info;
  }

  /** readRaw returns the tensor's raw little-endian values, row-major. */
  readRaw(): Uint8Array | null {
    const n = host_tensor_read(this.handle);
    if (n < 0) {
      hostFail(n);
      return null;
    }
    return takeResult(n);
  }

  /** toArray reads a float32 tensor's values, row-major. */
  toArray(): f32[] | null {
    const info = this.info();
    if (info == null) return null;
    if (info.dtype != "f32") {
      sdkFail(Status.BAD_PAYLOAD, "tensor " + this.handle.toString() + ": a " + info.dtype + " tensor, not f32");
      return null;
    }
    const raw = this.readRaw();
    if (raw == null) return null;
    if (raw.length % 4 != 0) {
      sdkFail(Status.BAD_PAYLOAD, "tensor " + this.handle.toString() + ": no whole number of f32s");
      return null;
    }
    const out = new Array<f32>(raw.length >> 2);
    for (let i = 0; i < out.length; i++) out[i] = load<f32>(raw.dataStart + (<usize>i << 2));
    return out;
  }

  /** backward runs reverse-mode autograd from this one-element tensor (a loss). */
  backward(): bool {
    return ok(host_tensor_backward(this.handle));
  }

  /** grad returns a copy of the gradient backward accumulated in this leaf. */
  grad(): Tensor | null {
    return tensorOrNull(host_tensor_grad(this.handle));
  }

  /** free frees the tensor now; its handle is unknown after. */
  free(): bool {
    return ok(host_tensor_free(this.handle));
  }
}

/** Optimizer updates parameter tensors from their gradients, on the host. */
export class Optimizer {
  constructor(public handle: i64) {}

  /** create makes an optimiser of kind ("sgd" or "adamw") with learning rate lr over params;
   * optionsJSON holds the kind's other members without braces ('"momentum":0.9'), or "". */
  static create(kind: string, params: Tensor[], lr: f64, optionsJSON: string = ""): Optimizer | null {
    let s = '{"kind":' + jsonQuote(kind) + ',"params":[';
    for (let i = 0; i < params.length; i++) s += (i > 0 ? "," : "") + params[i].handle.toString();
    s += '],"lr":' + lr.toString();
    if (optionsJSON.length > 0) s += "," + optionsJSON;
    const b = utf8(s + "}");
    const r = host_optim_create(b.dataStart, b.length);
    if (r < 0) {
      hostFail(r);
      return null;
    }
    return new Optimizer(r);
  }

  /** sgd makes an SGD optimiser with momentum. */
  static sgd(params: Tensor[], lr: f64, momentum: f64): Optimizer | null {
    return Optimizer.create("sgd", params, lr, '"momentum":' + momentum.toString());
  }

  /** adamw makes an AdamW optimiser (decoupled weight decay; the host's betas and eps). */
  static adamw(params: Tensor[], lr: f64, weightDecay: f64): Optimizer | null {
    return Optimizer.create("adamw", params, lr, '"weight_decay":' + weightDecay.toString());
  }

  /** step updates the parameters from their gradients. */
  step(): bool {
    return ok(host_optim_step(this.handle));
  }

  /** zeroGrad clears the parameters' gradients; call it before each backward. */
  zeroGrad(): bool {
    return ok(host_optim_zero_grad(this.handle));
  }
}

// ---- JSON ----

/** jsonQuote returns s as a quoted JSON string, escaped as Go's encoding/json escapes it. */
export function jsonQuote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += '\\"';
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20 || c == 0x3c || c == 0x3e || c == 0x26 || c == 0x2028 || c == 0x2029) {
      const h = c.toString(16);
      out += "\\u" + "0000".substring(h.length) + h;
    } else out += String.fromCharCode(c);
  }
  return out + '"';
}

export enum JsonKind {
  NULL = 0,
  BOOL = 1,
  NUMBER = 2,
  STRING = 3,
  ARRAY = 4,
  OBJECT = 5,
}

/** JsonValue is a parsed JSON value. Numbers keep an exact i64 when they are integers. */
export class JsonValue {
  kind: i32 = JsonKind.NULL;
  bool: bool = false;
  num: f64 = 0;
  int: i64 = 0;
  isInt: bool = false;
  str: string = "";
  items: JsonValue[] = [];
  keys: string[] = [];

  /** parse parses one JSON value, or returns null when src is not JSON. */
  static parse(src: string): JsonValue | null {
    const p = new JsonParser(src);
    p.ws();
    const v = p.value(0);
    p.ws();
    if (v == null || p.i != src.length) return null;
    return v;
  }

  /** get returns member key of an object, or null. */
  get(key: string): JsonValue | null {
    if (this.kind != JsonKind.OBJECT) return null;
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.items[i];
    return null;
  }

  /** getInt returns member key as an integer, or def. */
  getInt(key: string, def: i64 = 0): i64 {
    const v = this.get(key);
    return v != null && v.kind == JsonKind.NUMBER ? v.int : def;
  }

  /** getNumber returns member key as a number, or def. */
  getNumber(key: string, def: f64 = 0): f64 {
    const v = this.get(key);
    return v != null && v.kind == JsonKind.NUMBER ? v.num : def;
  }

  /** getString returns member key as a string, or def. */
  getString(key: string, def: string = ""): string {
    const v = this.get(key);
    return v != null && v.kind == JsonKind.STRING ? v.str : def;
  }

  /** getBool returns member key as a boolean, or def. */
  getBool(key: string, def: bool = false): bool {
    const v = this.get(key);
    return v != null && v.kind == JsonKind.BOOL ? v.bool : def;
  }

  has(key: string): bool {
    return this.get(key) != null;
  }

  toString(): string {
    switch (this.kind) {
      case JsonKind.BOOL: return this.bool ? "true" : "false";
      case JsonKind.NUMBER: return this.isInt ? this.int.toString() : this.num.toString();
      case JsonKind.STRING: return jsonQuote(this.str);
      case JsonKind.ARRAY: {
        let s = "[";
        for (let i = 0; i < this.items.length; i++) s += (i > 0 ? "," : "") + this.items[i].toString();
        return s + "]";
      }
      case JsonKind.OBJECT: {
        let s = "{";
        for (let i = 0; i < this.items.length; i++) s += (i > 0 ? "," : "") + jsonQuote(this.keys[i]) + ":" + this.items[i].toString();
        return s + "}";
      }
    }
    return "null";
  }
}

class JsonParser {
  i: i32 = 0;
  constructor(public s: string) {}

  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.i++;
    }
  }

  lit(word: string): bool {
    if (this.s.substr(this.i, word.length) != word) return false;
    this.i += word.length;
    return true;
  }

  value(depth: i32): JsonValue | null {
    if (this.i >= this.s.length || depth > 128) return null;
    const v = new JsonValue();
    const c = this.s.charCodeAt(this.i);
    if (c == 0x6e) return this.lit("null") ? v : null;
    if (c == 0x74 || c == 0x66) {
      v.kind = JsonKind.BOOL;
      v.bool = c == 0x74;
      return this.lit(v.bool ? "true" : "false") ? v : null;
    }
    if (c == 0x22) {
      const s = this.string();
      if (s == null) return null;
      v.kind = JsonKind.STRING;
      v.str = s;
      return v;
    }
    if (c == 0x5b || c == 0x7b) {
      const obj = c == 0x7b;
      v.kind = obj ? JsonKind.OBJECT : JsonKind.ARRAY;
      this.i++;
      this.ws();
      if (this.i < this.s.length && this.s.charCodeAt(this.i) == (obj ? 0x7d : 0x5d)) {
        this.i++;
        return v;
      }
      while (true) {
        this.ws();
        if (obj) {
          if (this.i >= this.s.length || this.s.charCodeAt(this.i) != 0x22) return null;
          const k = this.string();
          if (k == null) return null;
          this.ws();
          if (this.i >= this.s.length || this.s.charCodeAt(this.i) != 0x3a) return null;
          this.i++;
          this.ws();
          v.keys.push(k);
        }
        const item = this.value(depth + 1);
        if (item == null) return null;
        v.items.push(item);
        this.ws();
        if (this.i >= this.s.length) return null;
        const d = this.s.charCodeAt(this.i++);
        if (d == 0x2c) continue;
        if (d == (obj ? 0x7d : 0x5d)) return v;
        return null;
      }
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) {
      const start = this.i;
      let isFloat = false;
      while (this.i < this.s.length) {
        const d = this.s.charCodeAt(this.i);
        if (d == 0x2e || d == 0x65 || d == 0x45) isFloat = true;
        else if (!(d == 0x2d || d == 0x2b || (d >= 0x30 && d <= 0x39))) break;
        this.i++;
      }
      const text = this.s.substring(start, this.i);
      v.kind = JsonKind.NUMBER;
      v.num = parseFloat(text);
      if (isNaN(v.num)) return null;
      v.isInt = !isFloat && text.length < 19;
      v.int = v.isInt ? I64.parseInt(text) : <i64>v.num;
      return v;
    }
    return null;
  }

  string(): string | null {
    this.i++; // the opening quote
    let out = "";
    let start = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 0x22) {
        out += this.s.substring(start, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) return null;
      if (c != 0x5c) {
        this.i++;
        continue;
      }
      out += this.s.substring(start, this.i);
      if (this.i + 1 >= this.s.length) return null;
      const e = this.s.charCodeAt(this.i + 1);
      this.i += 2;
      if (e == 0x6e) out += "\n";
      else if (e == 0x74) out += "\t";
      else if (e == 0x72) out += "\r";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x22 || e == 0x5c || e == 0x2f) out += String.fromCharCode(e);
      else if (e == 0x75) {
        if (this.i + 4 > this.s.length) return null;
        const code = I32.parseInt(this.s.substr(this.i, 4), 16);
        this.i += 4;
        out += String.fromCharCode(code); // surrogate pairs arrive as two escapes: UTF-16 joins them
      } else return null;
      start = this.i;
    }
    return null;
  }
}

// ---- base64 ----

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** base64 encodes bytes as standard base64 with padding, as Go's encoding/json writes []byte. */
export function base64(b: Uint8Array): string {
  let s = "";
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const v = (<u32>b[i] << 16) | (<u32>b[i + 1] << 8) | <u32>b[i + 2];
    s += B64.charAt(v >> 18) + B64.charAt((v >> 12) & 63) + B64.charAt((v >> 6) & 63) + B64.charAt(v & 63);
  }
  if (b.length - i == 1) {
    const v = <u32>b[i] << 16;
    s += B64.charAt(v >> 18) + B64.charAt((v >> 12) & 63) + "==";
  } else if (b.length - i == 2) {
    const v = (<u32>b[i] << 16) | (<u32>b[i + 1] << 8);
    s += B64.charAt(v >> 18) + B64.charAt((v >> 12) & 63) + B64.charAt((v >> 6) & 63) + "=";
  }
  return s;
}
