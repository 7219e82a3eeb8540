;; datasets.wat: drives the dataset_* host functions for the host's tests. The manifest requests
;; the "data" and "fs" capabilities. Every function writes its results at 32768 as little-endian
;; i64s and returns them, followed by the pending result (up to 16 KiB) where one is said to follow.
;;
;;   0 "read"   input: a spec. dataset_open, then dataset_next until it returns <= 0, then
;;              dataset_close. Output: open's return, the batches read, their total length,
;;              the last next's return, close's return (0 after a failed next, which leaves
;;              the dataset open); then the pending result: the failure's message, if any.
;;   1 "leave"  input: a spec. dataset_open and return its handle without closing it.
;;   2 "next"   input: 8 bytes, a handle. dataset_next on it; output: its return, then the
;;              pending result.
;;   3 "build"  input: a batch. dataset_create (no schema), dataset_append of the input twice,
;;              dataset_finish, then dataset_append on the finished handle. Output: the five
;;              returns, then the pending result.
;;   4 "wild"   dataset_open of [130000, +4096) (past the two pages of memory),
;;              dataset_create, dataset_append of [0xfffffff0, +64), dataset_next(-1),
;;              dataset_close(12345). Output: the five returns.
;;   5 "many"   dataset_create until it fails; output: how many succeeded, the failing return.
;;   6 "write"  input: a sink. dataset_create, then dataset_write of the input; output: write's
;;              return, then the pending result.
(module
  (import "lumen" "dataset_open" (func $open (param i32 i32) (result i64)))
  (import "lumen" "dataset_next" (func $next (param i64) (result i64)))
  (import "lumen" "dataset_create" (func $create (param i32 i32) (result i64)))
  (import "lumen" "dataset_append" (func $append (param i64 i32 i32) (result i32)))
  (import "lumen" "dataset_finish" (func $finish (param i64) (result i64)))
  (import "lumen" "dataset_close" (func $close (param i64) (result i32)))
  (import "lumen" "dataset_write" (func $write (param i64 i32 i32) (result i64)))
  (import "lumen" "result_len" (func $result_len (result i32)))
  (import "lumen" "result_read" (func $result_read (param i32 i32) (result i32)))

  (memory (export "memory") 2 2)
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"read\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"leave\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"next\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"build\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"wild\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"many\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"write\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"}],\"capabilities\":[\"data\",\"fs\"]}\00")

  (func (export "lumen_abi_v1"))

  ;; Input lands at 2048 (up to 30 KiB); output is built at 32768.
  (func (export "lumen_alloc") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 30720)) (then (return (i32.const 0))))
    (i32.const 2048))

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

  ;; out stores v as the k-th i64 of the output.
  (func $out (param $k i32) (param $v i64)
    (i64.store (i32.add (i32.const 32768) (i32.shl (local.get $k) (i32.const 3))) (local.get $v)))

  ;; finish returns the output: k i64s, then the pending result when $pending is set.
  (func $done (param $k i32) (param $pending i32) (result i64)
    (local $n i32) (local $at i32)
    (local.set $at (i32.add (i32.const 32768) (i32.shl (local.get $k) (i32.const 3))))
    (if (local.get $pending)
      (then
        (local.set $n (call $result_len))
        (if (i32.gt_u (local.get $n) (i32.const 16384)) (then (local.set $n (i32.const 16384))))
        (if (i32.gt_s (local.get $n) (i32.const 0))
          (then (local.set $n (call $result_read (local.get $at) (local.get $n)))))
        (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))))
    (call $pack (i32.const 32768) (i32.add (i32.shl (local.get $k) (i32.const 3)) (local.get $n))))

  (func (export "lumen_call") (param $fn i32) (param $ptr i32) (param $n i32) (result i64)
    (local $h i64) (local $r i64) (local $count i64) (local $total i64) (local $obj i64)
    ;; 0 read
    (if (i32.eqz (local.get $fn))
      (then
        (local.set $h (call $open (local.get $ptr) (local.get $n)))
        (call $out (i32.const 0) (local.get $h))
        (if (i64.le_s (local.get $h) (i64.const 0))
          (then (return (call $done (i32.const 1) (i32.const 1)))))
        (block $end
          (loop $more
            (local.set $r (call $next (local.get $h)))
            (br_if $end (i64.le_s (local.get $r) (i64.const 0)))
            (local.set $count (i64.add (local.get $count) (i64.const 1)))
            (local.set $total (i64.add (local.get $total) (local.get $r)))
            (drop (call $result_read (i32.const 16384) (i32.const 1)))
            (br $more)))
        (call $out (i32.const 1) (local.get $count))
        (call $out (i32.const 2) (local.get $total))
        (call $out (i32.const 3) (local.get $r))
        ;; after a failure keep its message (close would replace it) and leave the dataset open
        ;; for the host to close when the call ends
        (if (i64.lt_s (local.get $r) (i64.const 0))
          (then (return (call $done (i32.const 5) (i32.const 1)))))
        (call $out (i32.const 4) (i64.extend_i32_s (call $close (local.get $h))))
        (return (call $done (i32.const 5) (i32.const 1)))))
    ;; 1 leave
    (if (i32.eq (local.get $fn) (i32.const 1))
      (then
        (call $out (i32.const 0) (call $open (local.get $ptr) (local.get $n)))
        (return (call $done (i32.const 1) (i32.const 1)))))
    ;; 2 next
    (if (i32.eq (local.get $fn) (i32.const 2))
      (then
        (call $out (i32.const 0) (call $next (i64.load (local.get $ptr))))
        (return (call $done (i32.const 1) (i32.const 1)))))
    ;; 3 build
    (if (i32.eq (local.get $fn) (i32.const 3))
      (then
        (local.set $h (call $create (i32.const 0) (i32.const 0)))
        (call $out (i32.const 0) (local.get $h))
        (call $out (i32.const 1) (i64.extend_i32_s (call $append (local.get $h) (local.get $ptr) (local.get $n))))
        (call $out (i32.const 2) (i64.extend_i32_s (call $append (local.get $h) (local.get $ptr) (local.get $n))))
        (call $out (i32.const 3) (call $finish (local.get $h)))
        (call $out (i32.const 4) (i64.extend_i32_s (call $append (local.get $h) (local.get $ptr) (local.get $n))))
        (return (call $done (i32.const 5) (i32.const 1)))))
    ;; 4 wild
    (if (i32.eq (local.get $fn) (i32.const 4))
      (then
        (call $out (i32.const 0) (call $open (i32.const 130000) (i32.const 4096)))
        (local.set $h (call $create (i32.const 0) (i32.const 0)))
        (call $out (i32.const 1) (local.get $h))
        (call $out (i32.const 2) (i64.extend_i32_s (call $append (local.get $h) (i32.const 0xfffffff0) (i32.const 64))))
        (call $out (i32.const 3) (call $next (i64.const -1)))
        (call $out (i32.const 4) (i64.extend_i32_s (call $close (i64.const 12345))))
        (return (call $done (i32.const 5) (i32.const 0)))))
    ;; 5 many
    (if (i32.eq (local.get $fn) (i32.const 5))
      (then
        (block $end
          (loop $more
            (local.set $r (call $create (i32.const 0) (i32.const 0)))
            (br_if $end (i64.le_s (local.get $r) (i64.const 0)))
            (local.set $count (i64.add (local.get $count) (i64.const 1)))
            (br $more)))
        (call $out (i32.const 0) (local.get $count))
        (call $out (i32.const 1) (local.get $r))
        (return (call $done (i32.const 2) (i32.const 1)))))
    ;; 6 write
    (if (i32.eq (local.get $fn) (i32.const 6))
      (then
        (local.set $h (call $create (i32.const 0) (i32.const 0)))
        (call $out (i32.const 0) (call $write (local.get $h) (local.get $ptr) (local.get $n)))
        (return (call $done (i32.const 1) (i32.const 1)))))
    (unreachable))
)
