;; modelchat.wat: function 0, "chat", passes its input to model_chat and returns the host's
;; return value as 8 bytes, little endian, followed by the pending result (the completion, or
;; the error). The manifest requests the "model" capability.
(module
  (import "lumen" "model_chat" (func $model_chat (param i32 i32) (result i64)))
  (import "lumen" "result_len" (func $result_len (result i32)))
  (import "lumen" "result_read" (func $result_read (param i32 i32) (result i32)))

  (memory (export "memory") 2 2)
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"chat\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"}],\"capabilities\":[\"model\"]}\00")

  (func (export "lumen_abi_v1"))

  ;; Input lands at 1024 (up to 31 KiB); output is built at 32768.
  (func (export "lumen_alloc") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 31744)) (then (return (i32.const 0))))
    (i32.const 1024))

  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))

  (func $strlen (param $p i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))

  (func (export "lumen_manifest") (result i64)
    (call $pack (i32.const 64) (call $strlen (i32.const 64))))

  (func (export "lumen_call") (param $fn i32) (param $ptr i32) (param $n i32) (result i64)
    (local $n2 i32)
    (i64.store (i32.const 32768) (call $model_chat (local.get $ptr) (local.get $n)))
    (local.set $n2 (call $result_len))
    (if (i32.gt_u (local.get $n2) (i32.const 32760)) (then (local.set $n2 (i32.const 32760))))
    (if (i32.gt_s (local.get $n2) (i32.const 0))
      (then (local.set $n2 (call $result_read (i32.const 32776) (local.get $n2)))))
    (if (i32.lt_s (local.get $n2) (i32.const 0)) (then (local.set $n2 (i32.const 0))))
    (call $pack (i32.const 32768) (i32.add (i32.const 8) (local.get $n2)))))
