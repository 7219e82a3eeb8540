;; good.wat: a well-behaved ABI v1 guest, written by hand.
;;
;; Functions (the manifest's order is lumen_call's fn index):
;;   0 echo          bytes in, the same bytes out
;;   1 add           sums the unsigned integers in its input ({"a":40,"b":2} -> 42)
;;   2 log           writes its input to the log (lumen.log) and to stdout; returns "ok"
;;   3 fail          reports its input as a guest error (lumen.error)
;;   4 Counter       actor constructor: resets the counter; returns null
;;   5 Counter.incr  adds one to the counter and returns it
;;   6 bump          the same counter, as a task: shows whether an instance is reused
;;   7 trap          executes unreachable
;;
;; Memory: page 0 holds constants and the manifest; the heap starts at 4096. lumen_alloc resets
;; the bump allocator, so each call starts with an empty heap.
(module
  (import "lumen" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "lumen" "error" (func $error (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 8) "ok")
  (data (i32.const 12) "null")
  (data (i32.const 32) "unknown function\00")
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"echo\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"add\",\"kind\":\"task\"},{\"name\":\"log\",\"kind\":\"task\",\"input\":\"bytes\"},{\"name\":\"fail\",\"kind\":\"task\",\"input\":\"bytes\"},{\"name\":\"Counter\",\"kind\":\"actor\"},{\"name\":\"Counter.incr\",\"kind\":\"method\",\"actor\":\"Counter\"},{\"name\":\"bump\",\"kind\":\"task\"},{\"name\":\"trap\",\"kind\":\"task\"}]}\00")

  (global $heap_base i32 (i32.const 4096))
  (global $bump (mut i32) (i32.const 4096))
  (global $counter (mut i64) (i64.const 0))

  (func (export "lumen_abi_v1"))

  ;; $alloc reserves size bytes (8-aligned) from the bump heap, growing memory as needed; 0 on failure.
  (func $alloc (param $size i32) (result i32)
    (local $p i32) (local $end i64) (local $need i32)
    (local.set $p (global.get $bump))
    (local.set $end (i64.add (i64.extend_i32_u (local.get $p))
                             (i64.and (i64.add (i64.extend_i32_u (local.get $size)) (i64.const 7)) (i64.const -8))))
    (if (i64.gt_u (local.get $end) (i64.const 0xffffffff)) (then (return (i32.const 0))))
    (local.set $need (i32.sub
      (i32.wrap_i64 (i64.shr_u (i64.add (local.get $end) (i64.const 65535)) (i64.const 16)))
      (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
        (then (return (i32.const 0))))))
    (global.set $bump (i32.wrap_i64 (local.get $end)))
    (local.get $p))

  (func (export "lumen_alloc") (param $size i32) (result i32)
    (global.set $bump (global.get $heap_base))
    (call $alloc (local.get $size)))

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

  ;; $itoa returns the packed decimal text of an unsigned value.
  (func $itoa (param $v i64) (result i64)
    (local $buf i32) (local $i i32)
    (local.set $buf (call $alloc (i32.const 24)))
    (local.set $i (i32.const 24))
    (loop $digit
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $buf) (local.get $i))
                  (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (call $pack (i32.add (local.get $buf) (local.get $i)) (i32.sub (i32.const 24) (local.get $i))))

  ;; $add sums the runs of decimal digits in [p, p+n).
  (func $add (param $p i32) (param $n i32) (result i64)
    (local $i i32) (local $c i32) (local $sum i64) (local $cur i64) (local $in i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57)))
          (then
            (local.set $cur (i64.add (i64.mul (local.get $cur) (i64.const 10))
                                     (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48)))))
            (local.set $in (i32.const 1)))
          (else
            (if (local.get $in) (then
              (local.set $sum (i64.add (local.get $sum) (local.get $cur)))
              (local.set $cur (i64.const 0))
              (local.set $in (i32.const 0))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $itoa (i64.add (local.get $sum) (local.get $cur))))

  (func (export "lumen_call") (param $fn i32) (param $p i32) (param $n i32) (result i64)
    (local $iov i32)
    (block $unknown
      (block $trap
        (block $bump
          (block $incr
            (block $ctor
              (block $fail
                (block $logfn
                  (block $addfn
                    (block $echo
                      (br_table $echo $addfn $logfn $fail $ctor $incr $bump $trap $unknown (local.get $fn)))
                    (return (call $pack (local.get $p) (local.get $n))))
                  (return (call $add (local.get $p) (local.get $n))))
                ;; log: to the log, then to stdout through WASI.
                (drop (call $log (i32.const 1) (local.get $p) (local.get $n)))
                (local.set $iov (call $alloc (i32.const 16)))
                (i32.store (local.get $iov) (local.get $p))
                (i32.store offset=4 (local.get $iov) (local.get $n))
                (drop (call $fd_write (i32.const 1) (local.get $iov) (i32.const 1) (i32.add (local.get $iov) (i32.const 8))))
                (return (call $pack (i32.const 8) (i32.const 2))))
              (drop (call $error (local.get $p) (local.get $n)))
              (return (i64.const 0)))
            (global.set $counter (i64.const 0))
            (return (call $pack (i32.const 12) (i32.const 4))))
          (global.set $counter (i64.add (global.get $counter) (i64.const 1)))
          (return (call $itoa (global.get $counter))))
        (global.set $counter (i64.add (global.get $counter) (i64.const 1)))
        (return (call $itoa (global.get $counter))))
      unreachable)
    (drop (call $error (i32.const 32) (call $strlen (i32.const 32))))
    (i64.const 0))
)
