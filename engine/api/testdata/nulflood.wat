;; nulflood.wat: a guest whose output is NUL bytes, the form JSON escapes six-fold (\u0000).
;; Written by hand; nulflood.wasm beside it is `wat2wasm nulflood.wat`.
;;
;; Functions (the manifest's order is lumen_call's fn index):
;;   0 nuls          writes 512 KiB of NULs to stdout, then returns 60 MiB of NULs
;;   1 flood_stdout  writes NULs to stdout for ever (the host stops it at its output limit)
;;   2 text          returns its input (the bytes given, as they are)
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"nuls\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"flood_stdout\",\"kind\":\"task\",\"input\":\"bytes\"},{\"name\":\"text\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"}]}\00")

  ;; Input lands at 65536 + 16 (page 1, after an iovec); nothing else is kept between calls.
  (func (export "lumen_abi_v1"))

  (func (export "lumen_alloc") (param $size i32) (result i32)
    (local $need i32)
    (local.set $need (i32.sub
      (i32.shr_u (i32.add (i32.add (local.get $size) (i32.const 65552)) (i32.const 65535)) (i32.const 16))
      (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
        (then (return (i32.const 0))))))
    (i32.const 65552))

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

  ;; $nulsOut writes n bytes of zeros (from fresh pages) to stdout, 64 KiB at a time.
  (func $stdoutNuls (param $base i32) (param $chunks i32)
    ;; iovec at 1024: {ptr = base, len = 65536}; bytes written at 1032
    (i32.store (i32.const 1024) (local.get $base))
    (i32.store (i32.const 1028) (i32.const 65536))
    (block $done
      (loop $w
        (br_if $done (i32.eqz (local.get $chunks)))
        (drop (call $fd_write (i32.const 1) (i32.const 1024) (i32.const 1) (i32.const 1032)))
        (local.set $chunks (i32.sub (local.get $chunks) (i32.const 1)))
        (br $w))))

  (func (export "lumen_call") (param $fn i32) (param $p i32) (param $n i32) (result i64)
    (local $base i32)
    (block $text
      (block $flood
        (block $nuls
          (br_table $nuls $flood $text $text (local.get $fn)))
        ;; 960 fresh pages (60 MiB) are zeros: they are the output.
        (local.set $base (memory.grow (i32.const 960)))
        (if (i32.eq (local.get $base) (i32.const -1)) (then unreachable))
        (local.set $base (i32.shl (local.get $base) (i32.const 16)))
        (call $stdoutNuls (local.get $base) (i32.const 8))
        (return (call $pack (local.get $base) (i32.const 62914560))))
      (local.set $base (memory.grow (i32.const 1)))
      (if (i32.eq (local.get $base) (i32.const -1)) (then unreachable))
      (call $stdoutNuls (i32.shl (local.get $base) (i32.const 16)) (i32.const -1))
      (unreachable))
    (call $pack (local.get $p) (local.get $n)))
)
