//! The Rust guest SDK for Lumen, host ABI v1 (`docs/abi.md`). Std only.
//!
//! Write tasks and actor methods as ordinary functions returning [`Result`], list them once with
//! [`export!`], and build the crate as a `cdylib` for `wasm32-wasi`:
//!
//! ```ignore
//! use lumen::json::Value;
//!
//! fn add(v: Value) -> lumen::Result<i64> {
//!     Ok(v.field::<i64>("a")? + v.field::<i64>("b")?)
//! }
//!
//! fn echo(b: &[u8]) -> lumen::Result<Vec<u8>> {
//!     Ok(b.to_vec())
//! }
//!
//! lumen::export! {
//!     task "add" => add,
//!     bytes_task "echo" => echo,
//! }
//! ```
//!
//! `PATH="$(getconf PATH)" cargo build --offline --release --target wasm32-wasi`
//!
//! Inside a call, [`put`], [`Ref::get`], [`submit`], [`wait`] and [`Actor`] reach the engine
//! through the host ABI; each failure of the host comes back as an [`Error`] that says which
//! status the host returned and why, never as a default value. Built for another target, every
//! host function fails with [`Status::Unavailable`], so task functions can be unit tested natively.
//!
//! An instance runs one call at a time; the SDK keeps per-call state in statics and is not
//! thread-safe, nor need it be.

use std::fmt;
use std::time::Duration;

pub mod json;
mod sys;
mod tensor;

pub use tensor::{DType, Optimizer, Tensor};

#[doc(hidden)]
pub mod rt;

use json::{FromJson, ToJson, Value};

/// The ABI version this SDK speaks.
pub const ABI_VERSION: u32 = 1;

/// A host function's failure status (docs/abi.md §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    BadPointer = 1,
    BadPayload = 2,
    Denied = 3,
    NotFound = 4,
    Timeout = 5,
    Limit = 6,
    Failed = 7,
    Unavailable = 8,
    Cancelled = 9,
    Internal = 10,
    TooLarge = 11,
    NoResult = 12,
    BadLevel = 13,
}

impl Status {
    /// The status a negative host function return value stands for.
    pub fn from_return(r: i64) -> Status {
        use Status::*;
        match -r {
            1 => BadPointer,
            2 => BadPayload,
            3 => Denied,
            4 => NotFound,
            5 => Timeout,
            6 => Limit,
            7 => Failed,
            8 => Unavailable,
            9 => Cancelled,
            11 => TooLarge,
            12 => NoResult,
            13 => BadLevel,
            _ => Internal,
        }
    }

    /// The snake_case name the ABI gives the status.
    pub fn name(self) -> &'static str {
        use Status::*;
        match self {
            BadPointer => "bad_pointer",
            BadPayload => "bad_payload",
            Denied => "denied",
            NotFound => "not_found",
            Timeout => "timeout",
            Limit => "limit",
            Failed => "failed",
            Unavailable => "unavailable",
            Cancelled => "cancelled",
            Internal => "internal",
            TooLarge => "too_large",
            NoResult => "no_result",
            BadLevel => "bad_level",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error. Returned from a task or method, [`Error::Guest`] reaches the caller as a guest
/// error with its code and message; the other variants describe a host function that failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The guest's own error, made with [`Error::new`].
    Guest { code: String, message: String },
    /// A host function failed with `status`; `message` is the host's explanation.
    Host { status: Status, message: String },
    /// A task or actor call this call waited on failed (status `failed`): the engine's kind
    /// (`guest_error`, `trap`, `limit_exceeded`, ...), limit, code and message.
    Failed { kind: String, limit: String, code: String, message: String },
}

impl Error {
    /// An error with a code, for a task to return.
    pub fn new(code: &str, message: impl Into<String>) -> Error {
        Error::Guest { code: code.to_string(), message: message.into() }
    }

    /// The host status behind the error, if a host function failed.
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::Guest { .. } => None,
            Error::Host { status, .. } => Some(*status),
            Error::Failed { .. } => Some(Status::Failed),
        }
    }

    /// Whether a get or wait ran out of time (the handles stay valid).
    pub fn is_timeout(&self) -> bool {
        self.status() == Some(Status::Timeout)
    }

    /// The JSON passed to the `error` host function. A host failure is reported with its
    /// message only, worded as the Go SDK words it.
    fn guest_error_json(&self) -> Vec<u8> {
        let mut v = Value::object();
        match self {
            Error::Guest { code, message } => {
                if !code.is_empty() {
                    v.set("code", code.as_str());
                }
                v.set("message", message.as_str());
            }
            other => v.set("message", other.to_string()),
        }
        v.to_bytes()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Guest { code, message } if code.is_empty() => f.write_str(message),
            Error::Guest { code, message } => write!(f, "{code}: {message}"),
            Error::Host { status, message } => write!(f, "lumen: {status}: {message}"),
            Error::Failed { kind, limit, message, .. } if !limit.is_empty() => {
                write!(f, "lumen: {kind} ({limit}): {message}")
            }
            Error::Failed { kind, message, .. } => write!(f, "lumen: {kind}: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<json::ParseError> for Error {
    fn from(e: json::ParseError) -> Error {
        Error::new("bad_input", e.to_string())
    }
}

/// A decoding error from [`json::FromJson`] or [`json::Value::field`].
impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::new("bad_input", message)
    }
}

/// `Result` with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// host_error turns a negative host function return into an [`Error`], reading the pending
/// result for the host's explanation.
fn host_error(r: i64) -> Error {
    let status = Status::from_return(r);
    let detail = sys::take_result(-1);
    let message = String::from_utf8_lossy(&detail).into_owned();
    if status == Status::Failed {
        if let Ok(v) = json::parse(&detail) {
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            if !s("kind").is_empty() {
                return Error::Failed { kind: s("kind"), limit: s("limit"), code: s("code"), message: s("message") };
            }
        }
    }
    let message = if message.is_empty() { status.name().to_string() } else { message };
    Error::Host { status, message }
}

fn check(r: i64) -> Result<i64> {
    if r < 0 {
        Err(host_error(r))
    } else {
        Ok(r)
    }
}

// ---- Logs ----

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// Writes a line to the call's log at info level. A log the host refuses (the call's output
/// budget is spent) is dropped: use [`log_at`] to see why.
pub fn log(msg: &str) {
    let _ = log_at(Level::Info, msg);
}

/// Writes a line to the call's log at `level`.
pub fn log_at(level: Level, msg: &str) -> Result<()> {
    check(sys::log(level as i32, msg.as_bytes()) as i64).map(|_| ())
}

/// Formats and writes a line to the call's log at info level.
#[macro_export]
macro_rules! logf {
    ($($arg:tt)*) => { $crate::log(&::std::format!($($arg)*)) };
}

// ---- Objects ----

/// A reference to an object: bytes put with [`put`], or the future result of a task or an actor
/// call. It crosses into arguments by reference, as `{"$ref": handle}`, never by copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ref(i64);

impl Ref {
    /// The ref of a handle the ABI numbers so (from another call's arguments, say).
    pub fn from_handle(h: i64) -> Ref {
        Ref(h)
    }

    /// The handle, as the ABI numbers it.
    pub fn handle(self) -> i64 {
        self.0
    }

    /// Blocks until the object is ready and returns its bytes. For a task's result those are the
    /// task's output; a failed task gives [`Error::Failed`].
    pub fn get_bytes(self) -> Result<Vec<u8>> {
        self.get_bytes_timeout(None)
    }

    /// [`Ref::get_bytes`] giving up after `timeout` (`None`: the call's own deadline) with an
    /// error whose [`Error::is_timeout`] is true.
    pub fn get_bytes_timeout(self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        let n = check(sys::object_get(self.0, timeout_ms(timeout)))?;
        Ok(sys::take_result(n))
    }

    /// Blocks until the object is ready and decodes it, as JSON, into a `T`.
    pub fn get<T: FromJson>(self) -> Result<T> {
        let b = self.get_bytes()?;
        let v = json::parse(&b)?;
        T::from_json(&v).map_err(|e| Error::new("bad_output", format!("object {}: {e}", self.0)))
    }

    /// Says this call no longer needs the object.
    pub fn release(self) -> Result<()> {
        check(sys::object_release(self.0) as i64).map(|_| ())
    }

    /// Asks for the task whose result this is to be cancelled.
    pub fn cancel(self) -> Result<()> {
        check(sys::task_cancel(self.0) as i64).map(|_| ())
    }
}

impl ToJson for Ref {
    fn to_json(&self) -> Value {
        Value::object().with("$ref", self.0)
    }
}

impl FromJson for Ref {
    fn from_json(v: &Value) -> Result<Self, String> {
        match v.get("$ref").and_then(Value::as_i64) {
            Some(h) if h > 0 => Ok(Ref(h)),
            _ => Err(format!("{v} is not an object ref ({{\"$ref\": handle}})")),
        }
    }
}

/// Stores the bytes as an immutable object and returns its ref. Needs the objects capability.
pub fn put(b: &[u8]) -> Result<Ref> {
    check(sys::object_put(b)).map(Ref)
}

/// Stores `v`, encoded as JSON, as an object.
pub fn put_json<T: ToJson + ?Sized>(v: &T) -> Result<Ref> {
    put(&v.to_json().to_bytes())
}

// ---- Tasks ----

/// A task to submit: set what differs from the defaults, then [`Task::submit`].
#[derive(Debug, Clone, Default)]
pub struct Task {
    module: String,
    function: String,
    args: Option<Value>,
    args_bytes: Option<Vec<u8>>,
    refs: Vec<i64>,
    max_retries: Option<u32>,
    retry_guest_errors: bool,
    timeout_ms: i64,
    resources: Option<(f64, i64, f64)>,
}

impl Task {
    /// A task of function `function` of this module.
    pub fn new(function: &str) -> Task {
        Task { function: function.to_string(), ..Task::default() }
    }

    /// Runs the function of another module, by digest or name@version.
    pub fn module(mut self, module: &str) -> Task {
        self.module = module.to_string();
        self
    }

    /// JSON arguments. Refs inside them travel by reference and are listed for the engine.
    pub fn args<T: ToJson + ?Sized>(mut self, args: &T) -> Task {
        let v = args.to_json();
        collect_refs(&v, &mut self.refs);
        self.args = Some(v);
        self
    }

    /// The raw input of a bytes function.
    pub fn args_bytes(mut self, b: &[u8]) -> Task {
        self.args_bytes = Some(b.to_vec());
        self
    }

    /// How many times a system failure is retried (default 3); `guest_errors` retries the
    /// task's own errors too.
    pub fn retries(mut self, n: u32, guest_errors: bool) -> Task {
        self.max_retries = Some(n);
        self.retry_guest_errors = guest_errors;
        self
    }

    /// The task's own wall-clock limit.
    pub fn timeout(mut self, d: Duration) -> Task {
        self.timeout_ms = d.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// What the task needs from its node.
    pub fn resources(mut self, cpu: f64, memory_bytes: i64, gpu: f64) -> Task {
        self.resources = Some((cpu, memory_bytes, gpu));
        self
    }

    /// Submits the task and returns the ref of its result at once. Needs the tasks capability.
    pub fn submit(self) -> Result<Ref> {
        let mut v = Value::object();
        if !self.module.is_empty() {
            v.set("module", self.module);
        }
        v.set("function", self.function);
        if let Some(a) = self.args {
            v.set("args", a);
        }
        if let Some(b) = self.args_bytes {
            if !b.is_empty() {
                v.set("args_bytes", rt::base64(&b));
            }
        }
        if !self.refs.is_empty() {
            v.set("refs", self.refs);
        }
        if let Some((cpu, mem, gpu)) = self.resources {
            v.set("resources", Value::object().with("cpu", cpu).with("memory_bytes", mem).with("gpu", gpu));
        }
        if let Some(n) = self.max_retries {
            v.set("max_retries", n);
        }
        if self.retry_guest_errors {
            v.set("retry_guest_errors", true);
        }
        if self.timeout_ms > 0 {
            v.set("timeout_ms", self.timeout_ms);
        }
        check(sys::task_submit(&v.to_bytes())).map(Ref)
    }
}

/// Submits function `function` of this module with JSON `args`.
pub fn submit<T: ToJson + ?Sized>(function: &str, args: &T) -> Result<Ref> {
    Task::new(function).args(args).submit()
}

/// Submits bytes function `function` of this module with input `b`.
pub fn submit_bytes(function: &str, b: &[u8]) -> Result<Ref> {
    Task::new(function).args_bytes(b).submit()
}

/// Blocks until `num_returns` of `refs` are ready or `timeout` passes (`None`: the call's
/// deadline), and returns the ready and the not-ready refs.
pub fn wait(refs: &[Ref], num_returns: usize, timeout: Option<Duration>) -> Result<(Vec<Ref>, Vec<Ref>)> {
    let req = Value::object()
        .with("handles", refs.iter().map(|r| Value::Int(r.0)).collect::<Vec<_>>())
        .with("num_returns", num_returns)
        .with("timeout_ms", timeout_ms(timeout));
    let n = check(sys::wait(&req.to_bytes()))?;
    let res = json::parse(&sys::take_result(n))?;
    let list = |k: &str| -> Vec<Ref> {
        res.get(k).and_then(Value::as_array).unwrap_or(&[]).iter().filter_map(Value::as_i64).map(Ref).collect()
    };
    Ok((list("ready"), list("not_ready")))
}

// ---- Actors ----

/// An actor to create: set what differs from the defaults, then [`NewActor::create`].
#[derive(Debug, Clone, Default)]
pub struct NewActor {
    req: Vec<(String, Value)>,
}

impl NewActor {
    /// An actor of type `actor_type` of this module.
    pub fn new(actor_type: &str) -> NewActor {
        NewActor { req: vec![("actor".to_string(), actor_type.into())] }
    }

    fn set(mut self, k: &str, v: impl Into<Value>) -> NewActor {
        self.req.push((k.to_string(), v.into()));
        self
    }

    /// The JSON arguments of its constructor.
    pub fn args<T: ToJson + ?Sized>(self, args: &T) -> NewActor {
        self.set("args", args.to_json())
    }

    /// An actor type of another module, by digest or name@version.
    pub fn module(self, module: &str) -> NewActor {
        self.set("module", module)
    }

    /// A name others can find the actor by, within `namespace` ("" for the job's).
    pub fn named(self, name: &str, namespace: &str) -> NewActor {
        let a = self.set("name", name);
        if namespace.is_empty() {
            a
        } else {
            a.set("namespace", namespace)
        }
    }

    /// Lets the actor outlive the job that created it.
    pub fn detached(self) -> NewActor {
        self.set("detached", true)
    }

    /// How many times the actor is restarted after a failure (-1: without limit).
    pub fn max_restarts(self, n: i32) -> NewActor {
        self.set("max_restarts", n)
    }

    /// Lets the actor run up to `n` calls at once.
    pub fn max_concurrency(self, n: u32) -> NewActor {
        self.set("max_concurrency", n)
    }

    /// Creates the actor. Needs the actors capability.
    pub fn create(self) -> Result<Actor> {
        check(sys::actor_create(&Value::Object(self.req).to_bytes())).map(Actor)
    }
}

/// A live actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Actor(i64);

impl Actor {
    /// Creates an actor of type `actor_type` of this module, passing `args` to its constructor.
    pub fn create<T: ToJson + ?Sized>(actor_type: &str, args: &T) -> Result<Actor> {
        NewActor::new(actor_type).args(args).create()
    }

    /// The actor of a handle the ABI numbers so.
    pub fn from_handle(h: i64) -> Actor {
        Actor(h)
    }

    /// The actor's handle.
    pub fn handle(self) -> i64 {
        self.0
    }

    /// Calls `method` (without the type: "incr") with JSON `args` and returns the ref of its
    /// result at once. Calls from one caller run in the order made.
    pub fn call<T: ToJson + ?Sized>(self, method: &str, args: &T) -> Result<Ref> {
        let a = args.to_json();
        let mut refs = Vec::new();
        collect_refs(&a, &mut refs);
        let mut v = Value::object().with("actor", self.0).with("method", method).with("args", a);
        if !refs.is_empty() {
            v.set("refs", refs);
        }
        check(sys::actor_call(&v.to_bytes())).map(Ref)
    }

    /// Calls a bytes method with input `b`.
    pub fn call_bytes(self, method: &str, b: &[u8]) -> Result<Ref> {
        let mut v = Value::object().with("actor", self.0).with("method", method);
        if !b.is_empty() {
            v.set("args_bytes", rt::base64(b));
        }
        check(sys::actor_call(&v.to_bytes())).map(Ref)
    }

    /// Stops the actor without restarting it.
    pub fn kill(self) -> Result<()> {
        check(sys::actor_kill(self.0) as i64).map(|_| ())
    }
}

fn collect_refs(v: &Value, refs: &mut Vec<i64>) {
    match v {
        Value::Object(m) if m.len() == 1 && m[0].0 == "$ref" => {
            if let Some(h) = m[0].1.as_i64() {
                refs.push(h);
            }
        }
        Value::Object(m) => m.iter().for_each(|(_, v)| collect_refs(v, refs)),
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

fn timeout_ms(d: Option<Duration>) -> i64 {
    match d {
        None => -1,
        Some(d) => d.as_millis().min(i64::MAX as u128) as i64,
    }
}

/// Lists a module's functions and generates its ABI exports (`lumen_abi_v1`, `lumen_alloc`,
/// `lumen_manifest`, `lumen_call`). Use it once, at the crate root of a `cdylib`:
///
/// ```ignore
/// lumen::export! {
///     capabilities = ["objects", "tasks", "actors"];   // optional: what the module asks for
///     hints = (1.0, 64 << 20, 0.0);                    // optional: cpu, memory_bytes, gpu
///     task "add" => add,                   // fn(In) -> Result<Out>; In: FromJson, Out: ToJson
///     bytes_task "echo" => echo,           // fn(&[u8]) -> Result<Vec<u8>>
///     actor "Counter" => Counter::new,     // fn(In) -> Result<State>
///     method "Counter.incr" => Counter::incr,         // fn(&mut State, In) -> Result<Out>
///     bytes_method "Counter.dump" => Counter::dump,   // fn(&mut State, &[u8]) -> Result<Vec<u8>>
///     save "Counter" => Counter::save,     // fn(&mut State) -> Result<Vec<u8>>: "Counter.__save"
///     load "Counter" => Counter::load,     // fn(&[u8]) -> Result<State>: "Counter.__load"
/// }
/// ```
///
/// An empty JSON input decodes as `null`: take `()` or `Option<T>` where the input may be
/// missing.
#[macro_export]
macro_rules! export {
    (capabilities = [$($cap:literal),* $(,)?]; hints = ($cpu:expr, $mem:expr, $gpu:expr); $($rest:tt)*) => {
        $crate::__lumen_export!(@caps [$($cap),*] @hints ($cpu as f64, $mem as i64, $gpu as f64) $($rest)*);
    };
    (capabilities = [$($cap:literal),* $(,)?]; $($rest:tt)*) => {
        $crate::__lumen_export!(@caps [$($cap),*] @hints (0.0f64, 0i64, 0.0f64) $($rest)*);
    };
    (hints = ($cpu:expr, $mem:expr, $gpu:expr); $($rest:tt)*) => {
        $crate::__lumen_export!(@caps [] @hints ($cpu as f64, $mem as i64, $gpu as f64) $($rest)*);
    };
    ($($rest:tt)*) => {
        $crate::__lumen_export!(@caps [] @hints (0.0f64, 0i64, 0.0f64) $($rest)*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __lumen_export {
    (@caps [$($cap:literal),*] @hints $hints:tt $($kind:ident $name:literal => $f:path),* $(,)?) => {
        static __LUMEN_ENTRIES: &[$crate::rt::Entry] = &[$($crate::__lumen_entry!($kind $name => $f)),*];
        static __LUMEN_CAPS: &[&str] = &[$($cap),*];

        #[no_mangle]
        pub extern "C" fn lumen_abi_v1() {}

        /// Runs the module's static constructors once per instance, as a reactor's
        /// `_initialize` does; without it the linker would rerun them around every export.
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn _initialize() {
            extern "C" {
                fn __wasm_call_ctors();
            }
            unsafe { __wasm_call_ctors() }
        }

        #[no_mangle]
        pub extern "C" fn lumen_alloc(size: i32) -> *mut u8 {
            $crate::rt::alloc(size)
        }

        #[no_mangle]
        pub extern "C" fn lumen_manifest() -> u64 {
            $crate::rt::manifest(__LUMEN_ENTRIES, __LUMEN_CAPS, $hints)
        }

        #[no_mangle]
        pub extern "C" fn lumen_call(f: i32, ptr: *mut u8, len: i32) -> u64 {
            $crate::rt::call(__LUMEN_ENTRIES, f, ptr, len)
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __lumen_entry {
    (task $name:literal => $f:path) => {
        $crate::rt::Entry::task($name, true, |b| $crate::rt::json_task($f, $name, b))
    };
    (bytes_task $name:literal => $f:path) => {
        $crate::rt::Entry::task($name, false, |b| $f(b))
    };
    (actor $name:literal => $f:path) => {
        $crate::rt::Entry::actor($name, |b| $crate::rt::actor($name, $f, b))
    };
    (method $name:literal => $f:path) => {
        $crate::rt::Entry::method($name, true, |b| $crate::rt::method($name, $f, b))
    };
    (bytes_method $name:literal => $f:path) => {
        $crate::rt::Entry::method($name, false, |b| $crate::rt::bytes_method($name, $f, b))
    };
    (save $actor:literal => $f:path) => {
        $crate::rt::Entry::method(concat!($actor, ".__save"), false, |_| {
            $crate::rt::save(concat!($actor, ".__save"), $f)
        })
    };
    (load $actor:literal => $f:path) => {
        $crate::rt::Entry::method(concat!($actor, ".__load"), false, |b| $crate::rt::load($actor, $f, b))
    };
}
