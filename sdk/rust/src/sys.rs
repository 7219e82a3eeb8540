//! The `lumen` import module. Built for another target than wasm32, every host function fails
//! with `unavailable`, so that task functions can be unit tested natively.

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "lumen")]
    extern "C" {
        #[link_name = "log"]
        pub fn log(level: i32, ptr: *const u8, len: i32) -> i32;
        #[link_name = "error"]
        pub fn error(ptr: *const u8, len: i32) -> i32;
        #[link_name = "result_len"]
        pub fn result_len() -> i32;
        #[link_name = "result_read"]
        pub fn result_read(ptr: *mut u8, len: i32) -> i32;
        #[link_name = "object_put"]
        pub fn object_put(ptr: *const u8, len: i32) -> i64;
        #[link_name = "object_get"]
        pub fn object_get(handle: i64, timeout_ms: i64) -> i64;
        #[link_name = "object_release"]
        pub fn object_release(handle: i64) -> i32;
        #[link_name = "task_submit"]
        pub fn task_submit(ptr: *const u8, len: i32) -> i64;
        #[link_name = "task_cancel"]
        pub fn task_cancel(handle: i64) -> i32;
        #[link_name = "wait"]
        pub fn wait(ptr: *const u8, len: i32) -> i64;
        #[link_name = "actor_create"]
        pub fn actor_create(ptr: *const u8, len: i32) -> i64;
        #[link_name = "actor_call"]
        pub fn actor_call(ptr: *const u8, len: i32) -> i64;
        #[link_name = "actor_kill"]
        pub fn actor_kill(handle: i64) -> i32;
        // Extension point: later ABI additions (tensor_*, model_chat) are declared here and
        // wrapped in lib.rs; a module that does not call them does not import them.
        #[link_name = "tensor_create"]
        pub fn tensor_create(spec_ptr: *const u8, spec_len: i32, data_ptr: *const u8, data_len: i32) -> i64;
        #[link_name = "tensor_op"]
        pub fn tensor_op(ptr: *const u8, len: i32) -> i64;
        #[link_name = "tensor_read"]
        pub fn tensor_read(handle: i64) -> i64;
        #[link_name = "tensor_info"]
        pub fn tensor_info(handle: i64) -> i64;
        #[link_name = "tensor_backward"]
        pub fn tensor_backward(handle: i64) -> i32;
        #[link_name = "tensor_grad"]
        pub fn tensor_grad(handle: i64) -> i64;
        #[link_name = "tensor_free"]
        pub fn tensor_free(handle: i64) -> i32;
        #[link_name = "optim_create"]
        pub fn optim_create(ptr: *const u8, len: i32) -> i64;
        #[link_name = "optim_step"]
        pub fn optim_step(handle: i64) -> i32;
        #[link_name = "optim_zero_grad"]
        pub fn optim_zero_grad(handle: i64) -> i32;
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::imports as i;

    pub fn log(level: i32, b: &[u8]) -> i32 {
        unsafe { i::log(level, b.as_ptr(), b.len() as i32) }
    }
    pub fn error(b: &[u8]) -> i32 {
        unsafe { i::error(b.as_ptr(), b.len() as i32) }
    }
    pub fn result_len() -> i32 {
        unsafe { i::result_len() }
    }
    pub fn result_read(b: &mut [u8]) -> i32 {
        unsafe { i::result_read(b.as_mut_ptr(), b.len() as i32) }
    }
    pub fn object_put(b: &[u8]) -> i64 {
        unsafe { i::object_put(b.as_ptr(), b.len() as i32) }
    }
    pub fn object_get(h: i64, timeout_ms: i64) -> i64 {
        unsafe { i::object_get(h, timeout_ms) }
    }
    pub fn object_release(h: i64) -> i32 {
        unsafe { i::object_release(h) }
    }
    pub fn task_submit(b: &[u8]) -> i64 {
        unsafe { i::task_submit(b.as_ptr(), b.len() as i32) }
    }
    pub fn task_cancel(h: i64) -> i32 {
        unsafe { i::task_cancel(h) }
    }
    pub fn wait(b: &[u8]) -> i64 {
        unsafe { i::wait(b.as_ptr(), b.len() as i32) }
    }
    pub fn actor_create(b: &[u8]) -> i64 {
        unsafe { i::actor_create(b.as_ptr(), b.len() as i32) }
    }
    pub fn actor_call(b: &[u8]) -> i64 {
        unsafe { i::actor_call(b.as_ptr(), b.len() as i32) }
    }
    pub fn actor_kill(h: i64) -> i32 {
        unsafe { i::actor_kill(h) }
    }
    pub fn tensor_create(spec: &[u8], data: &[u8]) -> i64 {
        unsafe { i::tensor_create(spec.as_ptr(), spec.len() as i32, data.as_ptr(), data.len() as i32) }
    }
    pub fn tensor_op(b: &[u8]) -> i64 {
        unsafe { i::tensor_op(b.as_ptr(), b.len() as i32) }
    }
    pub fn tensor_read(h: i64) -> i64 {
        unsafe { i::tensor_read(h) }
    }
    pub fn tensor_info(h: i64) -> i64 {
        unsafe { i::tensor_info(h) }
    }
    pub fn tensor_backward(h: i64) -> i32 {
        unsafe { i::tensor_backward(h) }
    }
    pub fn tensor_grad(h: i64) -> i64 {
        unsafe { i::tensor_grad(h) }
    }
    pub fn tensor_free(h: i64) -> i32 {
        unsafe { i::tensor_free(h) }
    }
    pub fn optim_create(b: &[u8]) -> i64 {
        unsafe { i::optim_create(b.as_ptr(), b.len() as i32) }
    }
    pub fn optim_step(h: i64) -> i32 {
        unsafe { i::optim_step(h) }
    }
    pub fn optim_zero_grad(h: i64) -> i32 {
        unsafe { i::optim_zero_grad(h) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    const UNAVAILABLE: i64 = -8;
    pub fn log(_: i32, _: &[u8]) -> i32 {
        0
    }
    pub fn error(_: &[u8]) -> i32 {
        0
    }
    pub fn result_len() -> i32 {
        NATIVE.len() as i32
    }
    pub fn result_read(b: &mut [u8]) -> i32 {
        let n = b.len().min(NATIVE.len());
        b[..n].copy_from_slice(&NATIVE.as_bytes()[..n]);
        n as i32
    }
    const NATIVE: &str = "not running under a Lumen host";
    pub fn object_put(_: &[u8]) -> i64 {
        UNAVAILABLE
    }
    pub fn object_get(_: i64, _: i64) -> i64 {
        UNAVAILABLE
    }
    pub fn object_release(_: i64) -> i32 {
        UNAVAILABLE as i32
    }
    pub fn task_submit(_: &[u8]) -> i64 {
        UNAVAILABLE
    }
    pub fn task_cancel(_: i64) -> i32 {
        UNAVAILABLE as i32
    }
    pub fn wait(_: &[u8]) -> i64 {
        UNAVAILABLE
    }
    pub fn actor_create(_: &[u8]) -> i64 {
        UNAVAILABLE
    }
    pub fn actor_call(_: &[u8]) -> i64 {
        UNAVAILABLE
    }
    pub fn actor_kill(_: i64) -> i32 {
        UNAVAILABLE as i32
    }
    pub fn tensor_create(_: &[u8], _: &[u8]) -> i64 {
        UNAVAILABLE
    }
    pub fn tensor_op(_: &[u8]) -> i64 {
        UNAVAILABLE
    }
    pub fn tensor_read(_: i64) -> i64 {
        UNAVAILABLE
    }
    pub fn tensor_info(_: i64) -> i64 {
        UNAVAILABLE
    }
    pub fn tensor_backward(_: i64) -> i32 {
        UNAVAILABLE as i32
    }
    pub fn tensor_grad(_: i64) -> i64 {
        UNAVAILABLE
    }
    pub fn tensor_free(_: i64) -> i32 {
        UNAVAILABLE as i32
    }
    pub fn optim_create(_: &[u8]) -> i64 {
        UNAVAILABLE
    }
    pub fn optim_step(_: i64) -> i32 {
        UNAVAILABLE as i32
    }
    pub fn optim_zero_grad(_: i64) -> i32 {
        UNAVAILABLE as i32
    }
}

pub use host::*;

/// Copies the pending result out of the host: `n` bytes, or result_len's when `n` < 0.
pub fn take_result(n: i64) -> Vec<u8> {
    let n = if n < 0 { result_len() as i64 } else { n };
    if n <= 0 {
        return Vec::new();
    }
    let mut b = vec![0u8; n as usize];
    let got = result_read(&mut b);
    if got < 0 {
        return Vec::new();
    }
    b.truncate(got as usize);
    b
}
