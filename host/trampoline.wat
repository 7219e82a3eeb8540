;; trampoline.wat: one entry into wasm per call. wazero starts a goroutine to watch the context of
;; every call into wasm when it must stop guests at their deadline; entering once to run both
;; lumen_alloc and lumen_call halves that cost. Instantiated per guest instance, with "guest"
;; resolved to that instance.
(module
  (import "guest" "lumen_alloc" (func $alloc (param i32) (result i32)))
  (import "guest" "lumen_call" (func $call (param i32 i32 i32) (result i64)))
  ;; input(ptr, len) copies the call's input to the guest's [ptr, ptr+len): 1 if it could, else 0.
  (import "lumen_internal" "input" (func $input (param i32 i32) (result i32)))
  (func (export "run") (param $fn i32) (param $n i32) (result i64)
    (local $p i32)
    (if (local.get $n)
      (then
        (local.set $p (call $alloc (local.get $n)))
        (if (i32.eqz (call $input (local.get $p) (local.get $n)))
          (then (return (i64.const 0))))))
    (call $call (local.get $fn) (local.get $p) (local.get $n))))
