//! stats: a worked example of the Rust SDK. Build with
//!
//!     PATH="$(getconf PATH)" cargo build --offline --release --target wasm32-wasi
//!
//! and find the module at target/wasm32-wasi/release/stats.wasm.

use std::time::Duration;

use lumen::json::{FromJson, Value};
use lumen::{Actor, Error, Result};

/// sum's input, decoded by hand from the JSON value: no serde needed.
struct Pair {
    a: i64,
    b: i64,
}

impl FromJson for Pair {
    fn from_json(v: &Value) -> Result<Self, String> {
        Ok(Pair { a: v.field("a")?, b: v.field("b")? })
    }
}

/// sum: JSON in ({"a": 1, "b": 2}), JSON out (3), a log line, and a guest error of its own.
fn sum(p: Pair) -> Result<i64> {
    lumen::logf!("sum {} + {}", p.a, p.b);
    p.a.checked_add(p.b).ok_or_else(|| Error::new("E_OVERFLOW", "the sum does not fit an i64"))
}

/// upper: bytes in, bytes out.
fn upper(b: &[u8]) -> Result<Vec<u8>> {
    Ok(b.to_ascii_uppercase())
}

/// Tally is an actor: its state lives on an instance of its own between calls.
struct Tally {
    total: i64,
}

impl Tally {
    fn new(start: Option<i64>) -> Result<Tally> {
        Ok(Tally { total: start.unwrap_or(0) })
    }

    fn add(&mut self, n: i64) -> Result<i64> {
        self.total += n;
        Ok(self.total)
    }
}

/// report drives the engine from inside a task: a nested task, wait, an object, an actor. `?`
/// passes each host failure on as a lumen::Error, which reaches the caller with the host's
/// message.
fn report(b: &[u8]) -> Result<Vec<u8>> {
    let up = lumen::submit_bytes("upper", b)?; // returns at once
    let (ready, _) = lumen::wait(&[up], 1, Some(Duration::from_secs(5)))?;
    if ready.is_empty() {
        return Err(Error::new("E_SLOW", "upper did not finish in 5 s"));
    }
    let text = up.get_bytes()?; // the task's output bytes

    let blob = lumen::put(&text)?; // an object of the job
    let again = blob.get_bytes_timeout(Some(Duration::ZERO))?;
    blob.release()?;

    let t = Actor::create("Tally", &10)?;
    let mut last = None;
    for i in 1..=3 {
        last = Some(t.call("add", &i)?); // calls from one caller run in order
    }
    let total: i64 = last.expect("three calls").get()?;

    let out = Value::object().with("upper", String::from_utf8_lossy(&again).into_owned()).with("total", total);
    Ok(out.to_bytes())
}

lumen::export! {
    capabilities = ["objects", "tasks", "actors"];
    task "sum" => sum,
    bytes_task "upper" => upper,
    actor "Tally" => Tally::new,
    method "Tally.add" => Tally::add,
    bytes_task "report" => report,
}
