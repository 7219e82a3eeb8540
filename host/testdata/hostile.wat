;; hostile.wat: a guest that tries to hurt its host. Every function must be contained by the
;; sandbox while the same Runtime keeps answering other calls.
;;
;;   0 loop          spins for ever (stopped by the deadline)
;;   1 grow_pages    grows memory one page at a time, touching every page, until refused; then traps
;;   2 grow_huge     asks for 60000 pages in one memory.grow; traps when refused
;;   3 recurse       unbounded recursion (stack overflow)
;;   4 flood_stdout  writes 64 KB to stdout through WASI fd_write, for ever
;;   5 flood_log     writes 64 KB log lines through lumen.log, for ever
;;   6 bad_result    returns a packed pointer far outside its memory
;;   7 huge_len      returns pointer 0 with a length of 4 GiB - 1
;;   8 ok            returns "ok" (a canary)
;;   9 exit          calls WASI proc_exit(3) in the middle of a call
(module
  (import "lumen" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  ;; Page 0: constants, manifest, heap. Page 1: the flood buffer (its first 16 bytes are an iovec).
  (memory (export "memory") 2)
  (data (i32.const 8) "ok")
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"loop\",\"kind\":\"task\"},{\"name\":\"grow_pages\",\"kind\":\"task\"},{\"name\":\"grow_huge\",\"kind\":\"task\"},{\"name\":\"recurse\",\"kind\":\"task\"},{\"name\":\"flood_stdout\",\"kind\":\"task\"},{\"name\":\"flood_log\",\"kind\":\"task\"},{\"name\":\"bad_result\",\"kind\":\"task\"},{\"name\":\"huge_len\",\"kind\":\"task\"},{\"name\":\"ok\",\"kind\":\"task\"},{\"name\":\"exit\",\"kind\":\"task\"}]}\00")

  (global $bump (mut i32) (i32.const 4096))

  (func (export "lumen_abi_v1"))

  (func (export "lumen_alloc") (param $size i32) (result i32)
    ;; Inputs to this guest are small: anything up to 60 KB fits in page 0 above 4096.
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

  ;; $rec recurses without end; the locals make each frame bigger.
  (func $rec (param $x i64) (result i64)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64)
    (local.set $a (i64.add (local.get $x) (i64.const 1)))
    (local.set $b (i64.mul (local.get $a) (i64.const 3)))
    (local.set $c (i64.xor (local.get $b) (local.get $x)))
    (local.set $d (call $rec (local.get $c)))
    (i64.add (i64.add (local.get $a) (local.get $b)) (i64.add (local.get $c) (local.get $d))))

  ;; $grow_pages grows by one page at a time and writes a byte into each 4 KiB of the new page, so
  ;; the pages are really resident.
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
    (block $exit
      (block $ok
        (block $huge_len
          (block $bad_result
            (block $flood_log
              (block $flood_stdout
                (block $recurse
                  (block $grow_huge
                    (block $grow_pages
                      (block $loop
                        (br_table $loop $grow_pages $grow_huge $recurse $flood_stdout $flood_log $bad_result $huge_len $ok $exit $exit (local.get $fn)))
                      (loop $forever (br $forever))
                      (unreachable))
                    (call $grow_pages)
                    (unreachable))
                  (if (i32.eq (memory.grow (i32.const 60000)) (i32.const -1)) (then unreachable))
                  (return (call $pack (i32.const 8) (i32.const 2))))
                (drop (call $rec (i64.const 0)))
                (unreachable))
              ;; iovec at 65536: {ptr = 65536 + 16, len = 65000}
              (i32.store (i32.const 65536) (i32.const 65552))
              (i32.store (i32.const 65540) (i32.const 65000))
              (loop $w
                (drop (call $fd_write (i32.const 1) (i32.const 65536) (i32.const 1) (i32.const 65544)))
                (br $w))
              (unreachable))
            (loop $l
              (drop (call $log (i32.const 1) (i32.const 65552) (i32.const 65000)))
              (br $l))
            (unreachable))
          (return (i64.const 0xffffff0000010000)))
        (return (call $pack (i32.const 0) (i32.const -1))))
      (return (call $pack (i32.const 8) (i32.const 2))))
    (call $proc_exit (i32.const 3))
    (unreachable))
)
