;; bench.wat: the guest `lumen bench` measures, written by hand to be as small as a C guest.
;; It imports nothing and asks for no capabilities, so an instance costs what wazero's does.
;;
;; Functions (the manifest's order is lumen_call's fn index):
;;   0 noop    returns "ok"
;;   1 echo    returns its input
;;   2 A       actor constructor; returns "ok"
;;   3 A.noop  method of A; returns "ok"
;;   4 spin    counts to 100,000 (a few milliseconds of one core with the deadline check on every
;;             loop turn that Lumen's sandbox asks of wazero), then returns "ok"
;;   5 A.__save  returns "ok" (A's state, for a durable A)
;;   6 A.__load  takes a state; returns "ok"
;;
;; Memory: page 0 holds constants and the manifest; the heap starts at 4096. lumen_alloc hands out
;; the heap from its start on every call, growing memory when the input needs it.
(module
  (memory (export "memory") 1)
  (data (i32.const 8) "ok")
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"noop\",\"kind\":\"task\"},{\"name\":\"echo\",\"kind\":\"task\"},{\"name\":\"A\",\"kind\":\"actor\"},{\"name\":\"A.noop\",\"kind\":\"method\",\"actor\":\"A\"},{\"name\":\"spin\",\"kind\":\"task\"},{\"name\":\"A.__save\",\"kind\":\"method\",\"actor\":\"A\"},{\"name\":\"A.__load\",\"kind\":\"method\",\"actor\":\"A\"}]}")

  (global $heap i32 (i32.const 4096))
  ;; The manifest's length: the bytes of the data segment at 64.
  (global $manifest_len i32 (i32.const 283))

  (func (export "lumen_abi_v1"))

  ;; lumen_alloc returns the heap's start with room for size bytes, or 0 when memory cannot grow.
  (func (export "lumen_alloc") (param $size i32) (result i32)
    (local $end i64) (local $need i32)
    (local.set $end (i64.add (i64.extend_i32_u (global.get $heap)) (i64.extend_i32_u (local.get $size))))
    (local.set $need (i32.sub
      (i32.wrap_i64 (i64.shr_u (i64.add (local.get $end) (i64.const 65535)) (i64.const 16)))
      (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
        (then (return (i32.const 0))))))
    (global.get $heap))

  (func (export "lumen_manifest") (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.extend_i32_u (global.get $manifest_len))))

  ;; "ok", packed: pointer 8, length 2.
  (func $ok (result i64) (i64.const 0x0000000800000002))

  (func (export "lumen_call") (param $fn i32) (param $p i32) (param $n i32) (result i64)
    (local $i i32)
    (if (i32.eq (local.get $fn) (i32.const 4))
      (then
        (loop $spin
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $spin (i32.lt_u (local.get $i) (i32.const 100000))))
        (return (call $ok))))
    (block $echo
      (br_if $echo (i32.eq (local.get $fn) (i32.const 1)))
      (if (i32.le_u (local.get $fn) (i32.const 3)) (then (return (call $ok))))
      (if (i32.and (i32.ge_u (local.get $fn) (i32.const 5)) (i32.le_u (local.get $fn) (i32.const 6)))
        (then (return (call $ok))))
      unreachable)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
)
