//! The conformance guest in Rust: the same functions, with the same results, as the Go, C and
//! AssemblyScript guests beside it (see ../conformance_test.go).

use lumen::json::Value;
use lumen::{Actor, Error, Ref, Result, Tensor};

fn echo(b: &[u8]) -> Result<Vec<u8>> {
    Ok(b.to_vec())
}

fn add(v: Value) -> Result<i64> {
    Ok(v.field::<i64>("a")? + v.field::<i64>("b")?)
}

fn greet(v: Value) -> Result<String> {
    let name: String = v.field("name")?;
    lumen::logf!("greeting {name}");
    Ok(format!("hello, {name}"))
}

fn fail(_: ()) -> Result<()> {
    Err(Error::new("E_CONF", "conformance failure"))
}

fn trap(_: ()) -> Result<()> {
    core::arch::wasm32::unreachable()
}

fn nested(b: &[u8]) -> Result<Vec<u8>> {
    lumen::submit_bytes("echo", b)?.get_bytes()
}

fn nested_fail(_: ()) -> Result<i64> {
    lumen::submit("fail", &())?.get::<i64>()
}

struct Counter {
    n: i64,
}

impl Counter {
    fn new(start: Option<i64>) -> Result<Counter> {
        Ok(Counter { n: start.unwrap_or(0) })
    }

    fn incr(&mut self, by: Option<i64>) -> Result<i64> {
        self.n += by.unwrap_or(1);
        Ok(self.n)
    }
}

fn counter(_: ()) -> Result<i64> {
    let a = Actor::create("Counter", &0)?;
    let mut last = None;
    for _ in 0..3 {
        last = Some(a.call("incr", &1)?);
    }
    last.expect("three calls").get::<i64>()
}

fn objects(b: &[u8]) -> Result<Vec<u8>> {
    let r = lumen::put(b)?;
    let out = r.get_bytes()?;
    r.release()?;
    Ok(out)
}

fn ints(t: Tensor) -> Result<Vec<i64>> {
    Ok(t.to_vec()?.into_iter().map(|x| x as i64).collect())
}

fn tensors(_: ()) -> Result<Value> {
    let a = Tensor::new(&[2, 2], &[1.0, 2.0, 3.0, 4.0], true)?;
    let b = Tensor::new(&[2, 2], &[5.0, 6.0, 7.0, 8.0], false)?;
    let c = a.matmul(b)?;
    c.sum()?.backward()?;
    let grad = a.grad()?;
    let out = Value::object().with("c", ints(c)?).with("grad", ints(grad)?);
    grad.free()?;
    Ok(out)
}

fn missing(_: ()) -> Result<()> {
    Ref::from_handle(999999).get_bytes_timeout(Some(std::time::Duration::ZERO))?;
    Err(Error::new("E_CONF", "object 999999 exists"))
}

static mut SINK: u64 = 0;

fn spin(_: ()) -> Result<()> {
    let mut n: u64 = 1;
    loop {
        n = n.wrapping_mul(31).wrapping_add(7);
        unsafe { std::ptr::write_volatile(std::ptr::addr_of_mut!(SINK), n) };
    }
}

static mut HOARD: Vec<Vec<u8>> = Vec::new();

fn grow(_: ()) -> Result<()> {
    // When memory.grow fails, the allocator's failure aborts: a trap, at the memory limit.
    loop {
        let mut b = vec![0u8; 1 << 20];
        for j in (0..b.len()).step_by(4096) {
            b[j] = j as u8 | 1;
        }
        unsafe { HOARD.push(b) };
    }
}

lumen::export! {
    capabilities = ["objects", "tasks", "actors", "tensors"];
    bytes_task "echo" => echo,
    task "add" => add,
    task "greet" => greet,
    task "fail" => fail,
    task "trap" => trap,
    bytes_task "nested" => nested,
    task "nested_fail" => nested_fail,
    actor "Counter" => Counter::new,
    method "Counter.incr" => Counter::incr,
    task "counter" => counter,
    bytes_task "objects" => objects,
    task "tensors" => tensors,
    task "missing" => missing,
    task "loop" => spin,
    task "grow" => grow,
}
