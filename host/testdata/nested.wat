;; nested.wat: a guest that drives the engine through the object, task and actor host functions.
;; Except child and boom, every function returns 8 bytes (the host function's i64 return value,
;; little endian) followed by the pending result, if there is one.
;;
;;    0 child         returns "child:" + input
;;    1 parent        task_submit(input), then object_get(handle, -1): a nested task
;;    2 put_get       object_put(input), then object_get(handle, 0)
;;    3 submit        task_submit(input)
;;    4 get           object_get(input[0:8], input[8:16]) (handle and timeout_ms, little endian)
;;    5 wait          wait(input)
;;    6 boom          reports its input as a guest error
;;    7 release       object_release(input[0:8])
;;    8 cancel        task_cancel(input[0:8])
;;    9 actor_create  actor_create(input)
;;   10 actor_call    actor_call(input)
;;   11 actor_kill    actor_kill(input[0:8])
(module
  (import "lumen" "error" (func $error (param i32 i32) (result i32)))
  (import "lumen" "result_len" (func $result_len (result i32)))
  (import "lumen" "result_read" (func $result_read (param i32 i32) (result i32)))
  (import "lumen" "object_put" (func $object_put (param i32 i32) (result i64)))
  (import "lumen" "object_get" (func $object_get (param i64 i64) (result i64)))
  (import "lumen" "object_release" (func $object_release (param i64) (result i32)))
  (import "lumen" "task_submit" (func $task_submit (param i32 i32) (result i64)))
  (import "lumen" "task_cancel" (func $task_cancel (param i64) (result i32)))
  (import "lumen" "wait" (func $wait (param i32 i32) (result i64)))
  (import "lumen" "actor_create" (func $actor_create (param i32 i32) (result i64)))
  (import "lumen" "actor_call" (func $actor_call (param i32 i32) (result i64)))
  (import "lumen" "actor_kill" (func $actor_kill (param i64) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 8) "child:")
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"child\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"parent\",\"kind\":\"task\",\"output\":\"bytes\"},{\"name\":\"put_get\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"submit\",\"kind\":\"task\",\"output\":\"bytes\"},{\"name\":\"get\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"wait\",\"kind\":\"task\",\"output\":\"bytes\"},{\"name\":\"boom\",\"kind\":\"task\",\"input\":\"bytes\"},{\"name\":\"release\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"cancel\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"},{\"name\":\"actor_create\",\"kind\":\"task\",\"output\":\"bytes\"},{\"name\":\"actor_call\",\"kind\":\"task\",\"output\":\"bytes\"},{\"name\":\"actor_kill\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"}],\"capabilities\":[\"objects\",\"tasks\",\"actors\"]}\00")

  (global $heap_base i32 (i32.const 8192))
  (global $bump (mut i32) (i32.const 8192))

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

  ;; $with_pending returns code (8 bytes) followed by the pending result, which it reads.
  (func $with_pending (param $code i64) (result i64)
    (local $n i32) (local $buf i32) (local $r i32)
    (local.set $n (call $result_len))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
    (local.set $buf (call $alloc (i32.add (local.get $n) (i32.const 8))))
    (i64.store (local.get $buf) (local.get $code))
    (if (i32.gt_s (local.get $n) (i32.const 0)) (then
      (local.set $r (call $result_read (i32.add (local.get $buf) (i32.const 8)) (local.get $n)))
      (if (i32.lt_s (local.get $r) (i32.const 0)) (then (local.set $r (i32.const 0))))))
    (call $pack (local.get $buf) (i32.add (local.get $r) (i32.const 8))))

  (func $child (param $p i32) (param $n i32) (result i64)
    (local $out i32)
    (local.set $out (call $alloc (i32.add (local.get $n) (i32.const 6))))
    (memory.copy (local.get $out) (i32.const 8) (i32.const 6))
    (memory.copy (i32.add (local.get $out) (i32.const 6)) (local.get $p) (local.get $n))
    (call $pack (local.get $out) (i32.add (local.get $n) (i32.const 6))))

  (func $parent (param $p i32) (param $n i32) (result i64)
    (local $h i64)
    (local.set $h (call $task_submit (local.get $p) (local.get $n)))
    (if (i64.lt_s (local.get $h) (i64.const 0)) (then (return (call $with_pending (local.get $h)))))
    (call $with_pending (call $object_get (local.get $h) (i64.const -1))))

  (func $put_get (param $p i32) (param $n i32) (result i64)
    (local $h i64)
    (local.set $h (call $object_put (local.get $p) (local.get $n)))
    (if (i64.lt_s (local.get $h) (i64.const 0)) (then (return (call $with_pending (local.get $h)))))
    (call $with_pending (call $object_get (local.get $h) (i64.const 0))))

  (func (export "lumen_call") (param $fn i32) (param $p i32) (param $n i32) (result i64)
    (block $unknown
     (block $actor_kill
      (block $actor_call
       (block $actor_create
        (block $cancel
         (block $release
          (block $boom
           (block $wait
            (block $get
             (block $submit
              (block $put_get
               (block $parent
                (block $child
                  (br_table $child $parent $put_get $submit $get $wait $boom $release $cancel
                            $actor_create $actor_call $actor_kill $unknown (local.get $fn)))
                (return (call $child (local.get $p) (local.get $n))))
               (return (call $parent (local.get $p) (local.get $n))))
              (return (call $put_get (local.get $p) (local.get $n))))
             (return (call $with_pending (call $task_submit (local.get $p) (local.get $n)))))
            (return (call $with_pending (call $object_get (i64.load (local.get $p)) (i64.load offset=8 (local.get $p))))))
           (return (call $with_pending (call $wait (local.get $p) (local.get $n)))))
          (drop (call $error (local.get $p) (local.get $n)))
          (return (i64.const 0)))
         (return (call $with_pending (i64.extend_i32_s (call $object_release (i64.load (local.get $p)))))))
        (return (call $with_pending (i64.extend_i32_s (call $task_cancel (i64.load (local.get $p)))))))
       (return (call $with_pending (call $actor_create (local.get $p) (local.get $n)))))
      (return (call $with_pending (call $actor_call (local.get $p) (local.get $n)))))
     (return (call $with_pending (i64.extend_i32_s (call $actor_kill (i64.load (local.get $p)))))))
    unreachable)
)
