;; sys.wat: a guest that reaches for the system through WASI. Without grants every attempt must
;; fail or see a fake; with grants it sees exactly what was granted.
;;
;;   0 read_file   opens its input as a path under the first preopened dir (fd 3) and returns
;;                 the file's bytes, or "errno=N"
;;   1 write_file  input "path\00content": creates or truncates path and writes content; "ok" or "errno=N"
;;   2 getenv      returns the environment block ("K=V\00" ...)
;;   3 clock       returns the realtime clock in nanoseconds, as decimal text
;;   4 random      returns 16 bytes from random_get
;;   5 symlink     input "target\00link": creates a symlink in fd 3; "ok" or "errno=N"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 8) "ok")
  (data (i32.const 16) "errno=")
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"read_file\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"write_file\",\"kind\":\"task\",\"input\":\"bytes\"},{\"name\":\"getenv\",\"kind\":\"task\",\"output\":\"bytes\"},{\"name\":\"clock\",\"kind\":\"task\"},{\"name\":\"random\",\"kind\":\"task\",\"output\":\"bytes\"},{\"name\":\"symlink\",\"kind\":\"task\",\"input\":\"bytes\"}],\"capabilities\":[\"clock\",\"random\",\"fs\",\"env\"]}\00")

  (global $heap_base i32 (i32.const 4096))
  (global $bump (mut i32) (i32.const 4096))

  (func (export "lumen_abi_v1"))

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

  ;; $errno returns the packed text "errno=N".
  (func $errno (param $e i32) (result i64)
    (local $out i32) (local $digits i64) (local $n i32)
    (local.set $out (call $alloc (i32.const 32)))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 6))
    (local.set $digits (call $itoa (i64.extend_i32_u (local.get $e))))
    (local.set $n (i32.wrap_i64 (local.get $digits)))
    (memory.copy (i32.add (local.get $out) (i32.const 6))
                 (i32.wrap_i64 (i64.shr_u (local.get $digits) (i64.const 32)))
                 (local.get $n))
    (call $pack (local.get $out) (i32.add (i32.const 6) (local.get $n))))

  ;; $nul returns the index of the first NUL in [p, p+n), or n.
  (func $nul (param $p i32) (param $n i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))

  (func $read_file (param $p i32) (param $n i32) (result i64)
    (local $fdp i32) (local $e i32) (local $buf i32) (local $iov i32) (local $total i32) (local $got i32)
    (local.set $fdp (call $alloc (i32.const 8)))
    ;; dirflags 1: follow symlinks; oflags 0; rights: fd_read (1<<1)
    (local.set $e (call $path_open (i32.const 3) (i32.const 1) (local.get $p) (local.get $n)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (local.get $fdp)))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (local.set $iov (call $alloc (i32.const 16)))
    (local.set $buf (call $alloc (i32.const 32768)))
    (block $eof
      (loop $more
        (i32.store (local.get $iov) (i32.add (local.get $buf) (local.get $total)))
        (i32.store offset=4 (local.get $iov) (i32.sub (i32.const 32768) (local.get $total)))
        (local.set $e (call $fd_read (i32.load (local.get $fdp)) (local.get $iov) (i32.const 1)
          (i32.add (local.get $iov) (i32.const 8))))
        (if (local.get $e) (then (return (call $errno (local.get $e)))))
        (local.set $got (i32.load offset=8 (local.get $iov)))
        (br_if $eof (i32.eqz (local.get $got)))
        (local.set $total (i32.add (local.get $total) (local.get $got)))
        (br_if $more (i32.lt_u (local.get $total) (i32.const 32768)))))
    (drop (call $fd_close (i32.load (local.get $fdp))))
    (call $pack (local.get $buf) (local.get $total)))

  (func $write_file (param $p i32) (param $n i32) (result i64)
    (local $fdp i32) (local $e i32) (local $iov i32) (local $split i32)
    (local.set $split (call $nul (local.get $p) (local.get $n)))
    (local.set $fdp (call $alloc (i32.const 8)))
    ;; oflags: creat (1) | trunc (8); rights: fd_write (1<<6)
    (local.set $e (call $path_open (i32.const 3) (i32.const 1) (local.get $p) (local.get $split)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (local.get $fdp)))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (local.set $iov (call $alloc (i32.const 16)))
    (i32.store (local.get $iov) (i32.add (i32.add (local.get $p) (local.get $split)) (i32.const 1)))
    (i32.store offset=4 (local.get $iov) (i32.sub (i32.sub (local.get $n) (local.get $split)) (i32.const 1)))
    (local.set $e (call $fd_write (i32.load (local.get $fdp)) (local.get $iov) (i32.const 1)
      (i32.add (local.get $iov) (i32.const 8))))
    (drop (call $fd_close (i32.load (local.get $fdp))))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (call $pack (i32.const 8) (i32.const 2)))

  (func $getenv (result i64)
    (local $sizes i32) (local $ptrs i32) (local $buf i32) (local $e i32)
    (local.set $sizes (call $alloc (i32.const 8)))
    (local.set $e (call $environ_sizes_get (local.get $sizes) (i32.add (local.get $sizes) (i32.const 4))))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (local.set $ptrs (call $alloc (i32.mul (i32.load (local.get $sizes)) (i32.const 4))))
    (local.set $buf (call $alloc (i32.load offset=4 (local.get $sizes))))
    (local.set $e (call $environ_get (local.get $ptrs) (local.get $buf)))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (call $pack (local.get $buf) (i32.load offset=4 (local.get $sizes))))

  (func $clock (result i64)
    (local $t i32) (local $e i32)
    (local.set $t (call $alloc (i32.const 8)))
    (local.set $e (call $clock_time_get (i32.const 0) (i64.const 1) (local.get $t)))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (call $itoa (i64.load (local.get $t))))

  (func $random (result i64)
    (local $b i32) (local $e i32)
    (local.set $b (call $alloc (i32.const 16)))
    (local.set $e (call $random_get (local.get $b) (i32.const 16)))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (call $pack (local.get $b) (i32.const 16)))

  (func $symlink (param $p i32) (param $n i32) (result i64)
    (local $split i32) (local $e i32)
    (local.set $split (call $nul (local.get $p) (local.get $n)))
    (local.set $e (call $path_symlink (local.get $p) (local.get $split) (i32.const 3)
      (i32.add (i32.add (local.get $p) (local.get $split)) (i32.const 1))
      (i32.sub (i32.sub (local.get $n) (local.get $split)) (i32.const 1))))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (call $pack (i32.const 8) (i32.const 2)))

  (func (export "lumen_call") (param $fn i32) (param $p i32) (param $n i32) (result i64)
    (block $unknown
      (block $symlink
        (block $random
          (block $clock
            (block $getenv
              (block $write
                (block $read
                  (br_table $read $write $getenv $clock $random $symlink $unknown (local.get $fn)))
                (return (call $read_file (local.get $p) (local.get $n))))
              (return (call $write_file (local.get $p) (local.get $n))))
            (return (call $getenv)))
          (return (call $clock)))
        (return (call $random)))
      (return (call $symlink (local.get $p) (local.get $n))))
    unreachable)
)
