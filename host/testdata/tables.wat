;; tables.wat: a guest that grows a table, which wazero keeps as 8 bytes an entry of host memory.
;; Tables count against the call's memory limit: this module's most (its table $t at its
;; declared maximum of 8,388,608 entries, 64 MiB, and $fixed at its 4) is reserved out of the limit,
;; and linear memory gets the rest.
;;
;;   0 grow_table   grows $t to its maximum in one table.grow; returns "ok" (traps when refused)
;;   1 grow_both    grows $t to its maximum, then memory one page at a time, touching every
;;                  page, until refused; then traps
(module
  (memory (export "memory") 1)
  (table $t 0 8388608 funcref)
  (table $fixed 4 funcref)
  (data (i32.const 8) "ok")
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"grow_table\",\"kind\":\"task\"},{\"name\":\"grow_both\",\"kind\":\"task\"}]}\00")

  (func (export "lumen_abi_v1"))

  (func (export "lumen_alloc") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 61440)) (then (return (i32.const 0))))
    (i32.const 4096))

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

  (func $grow_table
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 8388608)) (i32.const -1)) (then unreachable)))

  (func $grow_pages
    (local $base i32) (local $off i32)
    (loop $more
      (local.set $base (memory.grow (i32.const 1)))
      (if (i32.eq (local.get $base) (i32.const -1)) (then unreachable))
      (local.set $base (i32.shl (local.get $base) (i32.const 16)))
      (local.set $off (i32.const 0))
      (loop $touch
        (i32.store8 (i32.add (local.get $base) (local.get $off)) (i32.const 1))
        (local.set $off (i32.add (local.get $off) (i32.const 4096)))
        (br_if $touch (i32.lt_u (local.get $off) (i32.const 65536))))
      (br $more)))

  (func (export "lumen_call") (param $fn i32) (param $p i32) (param $n i32) (result i64)
    (block $both
      (block $table
        (br_table $table $both (local.get $fn)))
      (call $grow_table)
      (return (call $pack (i32.const 8) (i32.const 2))))
    (call $grow_table)
    (call $grow_pages)
    (i64.const 0))
)
