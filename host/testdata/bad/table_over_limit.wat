;; grows a table whose declared maximum, 100 M entries (763 MiB), is over the default memory limit
;; of 256 MiB: refused when compiled, since the limit has to hold what the tables may take
(module
  (memory (export "memory") 1)
  (table $t 0 100000000 funcref)
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"f\",\"kind\":\"task\"}]}\00")
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
  (func (export "lumen_abi_v1"))
  (func (export "lumen_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "lumen_manifest") (result i64) (call $pack (i32.const 64) (call $strlen (i32.const 64))))
  (func (export "lumen_call") (param i32 i32 i32) (result i64)
    (drop (table.grow $t (ref.null func) (i32.const 100000000)))
    (i64.const 0))
)
