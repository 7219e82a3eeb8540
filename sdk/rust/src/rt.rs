//! The machinery behind `export!`: the function table, the ABI exports' bodies and the actor
//! state. Not a stable API.

use std::any::Any;
use std::cell::RefCell;

use crate::json::{self, FromJson, ToJson, Value};
use crate::{sys, Error, Result};

/// What an entry of the function table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Task,
    Actor,
    Method,
}

/// One function of the module, as `export!` lists it.
pub struct Entry {
    pub name: &'static str,
    pub kind: Kind,
    pub json: bool,
    pub call: fn(&[u8]) -> Result<Vec<u8>>,
}

impl Entry {
    pub const fn task(name: &'static str, json: bool, call: fn(&[u8]) -> Result<Vec<u8>>) -> Entry {
        Entry { name, kind: Kind::Task, json, call }
    }
    pub const fn actor(name: &'static str, call: fn(&[u8]) -> Result<Vec<u8>>) -> Entry {
        Entry { name, kind: Kind::Actor, json: true, call }
    }
    pub const fn method(name: &'static str, json: bool, call: fn(&[u8]) -> Result<Vec<u8>>) -> Entry {
        Entry { name, kind: Kind::Method, json, call }
    }
}

struct State {
    /// Input buffers handed out by lumen_alloc and not yet taken by lumen_call: pointer and
    /// capacity.
    pending: Vec<(usize, usize)>,
    /// The last call's output, kept until the host has copied it.
    out: Vec<u8>,
    manifest: Vec<u8>,
    /// The actor this instance holds: its type and state.
    actor: Option<(&'static str, Box<dyn Any>)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State { pending: Vec::new(), out: Vec::new(), manifest: Vec::new(), actor: None });
}

fn pack(p: *const u8, n: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    (p as usize as u64) << 32 | n as u64
}

pub fn alloc(size: i32) -> *mut u8 {
    // Sizes and lengths cross the ABI as i32s read unsigned.
    let cap = (size as u32 as usize).max(1);
    let mut v: Vec<u8> = Vec::new();
    if v.try_reserve_exact(cap).is_err() {
        return std::ptr::null_mut();
    }
    let p = v.as_mut_ptr();
    let cap = v.capacity();
    std::mem::forget(v);
    STATE.with(|s| s.borrow_mut().pending.push((p as usize, cap)));
    p
}

pub fn manifest(entries: &[Entry], caps: &[&str], hints: (f64, i64, f64)) -> u64 {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.manifest.is_empty() {
            let fns: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let enc = if e.json { "json" } else { "bytes" };
                    let mut f = Value::object().with("name", e.name);
                    match e.kind {
                        Kind::Task => f.set("kind", "task"),
                        Kind::Actor => f.set("kind", "actor"),
                        Kind::Method => {
                            f.set("kind", "method");
                            f.set("actor", e.name.split('.').next().unwrap_or(""));
                        }
                    }
                    f.with("input", enc).with("output", enc)
                })
                .collect();
            let mut m = Value::object().with("abi", 1).with("functions", fns);
            if !caps.is_empty() {
                m.set("capabilities", caps.iter().map(|c| Value::from(*c)).collect::<Vec<_>>());
            }
            let (cpu, mem, gpu) = hints;
            if cpu > 0.0 || mem > 0 || gpu > 0.0 {
                let mut r = Value::object();
                if cpu > 0.0 {
                    r.set("cpu", cpu);
                }
                if mem > 0 {
                    r.set("memory_bytes", mem);
                }
                if gpu > 0.0 {
                    r.set("gpu", gpu);
                }
                m.set("resources", r);
            }
            s.manifest = m.to_bytes();
        }
        pack(s.manifest.as_ptr(), s.manifest.len())
    })
}

pub fn call(entries: &[Entry], f: i32, ptr: *mut u8, len: i32) -> u64 {
    let n = len as u32 as usize;
    let input: Vec<u8> = if ptr.is_null() {
        Vec::new()
    } else {
        let taken = STATE.with(|s| {
            let mut s = s.borrow_mut();
            let i = s.pending.iter().position(|&(p, _)| p == ptr as usize)?;
            Some(s.pending.swap_remove(i))
        });
        match taken {
            // Safety: the buffer came from lumen_alloc with this capacity, and the host wrote
            // n <= capacity bytes into it.
            Some((p, cap)) if n <= cap => unsafe { Vec::from_raw_parts(p as *mut u8, n, cap) },
            _ => {
                report(&Error::new("bad_input", "lumen_call: input buffer was not allocated by lumen_alloc"));
                return 0;
            }
        }
    };
    let result = match usize::try_from(f).ok().and_then(|i| entries.get(i)) {
        Some(e) => (e.call)(&input),
        None => Err(Error::Host {
            status: crate::Status::NotFound,
            message: format!("no function at index {f} (this module has {})", entries.len()),
        }),
    };
    drop(input);
    match result {
        Ok(out) => STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.out = out;
            pack(s.out.as_ptr(), s.out.len())
        }),
        Err(e) => {
            report(&e);
            0
        }
    }
}

fn report(e: &Error) {
    sys::error(&e.guest_error_json());
}

fn decode<T: FromJson>(name: &str, b: &[u8]) -> Result<T> {
    let v = if b.is_empty() { Value::Null } else { json::parse(b).map_err(|e| bad_input(name, e.to_string()))? };
    T::from_json(&v).map_err(|e| bad_input(name, e))
}

fn bad_input(name: &str, why: String) -> Error {
    Error::new("bad_input", format!("{name}: input does not decode: {why}"))
}

pub fn json_task<I: FromJson, O: ToJson>(f: fn(I) -> Result<O>, name: &str, b: &[u8]) -> Result<Vec<u8>> {
    let out = f(decode(name, b)?)?;
    Ok(out.to_json().to_bytes())
}

pub fn actor<S: 'static, I: FromJson>(name: &'static str, f: fn(I) -> Result<S>, b: &[u8]) -> Result<Vec<u8>> {
    if let Some(t) = STATE.with(|s| s.borrow().actor.as_ref().map(|a| a.0)) {
        return Err(Error::new("", format!("lumen: this instance already holds actor \"{t}\"")));
    }
    let state = f(decode(name, b)?)?;
    STATE.with(|s| s.borrow_mut().actor = Some((name, Box::new(state))));
    Ok(b"null".to_vec())
}

/// with_state runs f on the actor state of type S that method `name` ("Type.method") needs. The
/// state is taken out of the table while f runs, so that f may call the host (and the SDK)
/// freely, and put back after.
fn with_state<S: 'static, R>(name: &str, f: impl FnOnce(&mut S) -> R) -> Result<R> {
    let want = name.split('.').next().unwrap_or("");
    let taken = STATE.with(|s| s.borrow_mut().actor.take());
    match taken {
        Some((t, mut boxed)) if t == want && boxed.is::<S>() => {
            let r = f(boxed.downcast_mut::<S>().expect("checked above"));
            STATE.with(|s| s.borrow_mut().actor = Some((t, boxed)));
            Ok(r)
        }
        other => {
            STATE.with(|s| s.borrow_mut().actor = other);
            Err(Error::new("", format!("lumen: method {name} called on an instance that holds no {want} actor")))
        }
    }
}

pub fn method<S: 'static, I: FromJson, O: ToJson>(name: &str, f: fn(&mut S, I) -> Result<O>, b: &[u8]) -> Result<Vec<u8>> {
    let input: I = decode(name, b)?;
    let out = with_state(name, |s: &mut S| f(s, input))??;
    Ok(out.to_json().to_bytes())
}

pub fn bytes_method<S: 'static>(name: &str, f: fn(&mut S, &[u8]) -> Result<Vec<u8>>, b: &[u8]) -> Result<Vec<u8>> {
    with_state(name, |s: &mut S| f(s, b))?
}

pub fn save<S: 'static>(name: &str, f: fn(&mut S) -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    with_state(name, |s: &mut S| f(s))?
}

pub fn load<S: 'static>(actor: &'static str, f: fn(&[u8]) -> Result<S>, b: &[u8]) -> Result<Vec<u8>> {
    let state = f(b)?;
    STATE.with(|s| s.borrow_mut().actor = Some((actor, Box::new(state))));
    Ok(Vec::new())
}

/// Standard base64 with padding, as Go's encoding/json writes []byte.
pub fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity((b.len() + 2) / 3 * 4);
    for c in b.chunks(3) {
        let v = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        s.push(T[(v >> 18) as usize] as char);
        s.push(T[(v >> 12 & 63) as usize] as char);
        s.push(if c.len() > 1 { T[(v >> 6 & 63) as usize] as char } else { '=' });
        s.push(if c.len() > 2 { T[(v & 63) as usize] as char } else { '=' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    }
}
