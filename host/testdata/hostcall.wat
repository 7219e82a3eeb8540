;; hostcall.wat: forwards raw arguments to any lumen host function, for fuzzing the host side.
;;
;; Function 0, "call", reads its input as
;;   byte 0: which host function (0 log, 1 error, 2 result_len, 3 result_read, 4 object_put,
;;           5 object_get, 6 object_release, 7 task_submit, 8 task_cancel, 9 wait,
;;           10 actor_create, 11 actor_call, 12 actor_kill, 13 tensor_create, 14 tensor_op,
;;           15 tensor_read, 16 tensor_info, 17 tensor_backward, 18 tensor_grad, 19 tensor_free,
;;           20 optim_create, 21 optim_step, 22 optim_zero_grad)
;;   bytes 8, 16, 24: three i64 arguments (wrapped to i32 where the function takes i32;
;;           tensor_create takes its data pointer from the low and its data length from the
;;           high 32 bits of the third)
;;   bytes 32...: free payload, addressable at 1024+32 because input always lands at 1024
;; and returns the host function's return value as 8 bytes, little endian (-999 for an unknown
;; function number). Memory is exactly one page (min = max = 1), so any pointer + length beyond
;; 65536 is out of bounds.
(module
  (import "lumen" "log" (func $log (param i32 i32 i32) (result i32)))
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
  (import "lumen" "tensor_create" (func $tensor_create (param i32 i32 i32 i32) (result i64)))
  (import "lumen" "tensor_op" (func $tensor_op (param i32 i32) (result i64)))
  (import "lumen" "tensor_read" (func $tensor_read (param i64) (result i64)))
  (import "lumen" "tensor_info" (func $tensor_info (param i64) (result i64)))
  (import "lumen" "tensor_backward" (func $tensor_backward (param i64) (result i32)))
  (import "lumen" "tensor_grad" (func $tensor_grad (param i64) (result i64)))
  (import "lumen" "tensor_free" (func $tensor_free (param i64) (result i32)))
  (import "lumen" "optim_create" (func $optim_create (param i32 i32) (result i64)))
  (import "lumen" "optim_step" (func $optim_step (param i64) (result i32)))
  (import "lumen" "optim_zero_grad" (func $optim_zero_grad (param i64) (result i32)))

  (memory (export "memory") 1 1)
  (data (i32.const 64) "{\"abi\":1,\"functions\":[{\"name\":\"call\",\"kind\":\"task\",\"input\":\"bytes\",\"output\":\"bytes\"}],\"capabilities\":[\"objects\",\"tasks\",\"actors\",\"tensors\"]}\00")

  (func (export "lumen_abi_v1"))

  (func (export "lumen_alloc") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 60000)) (then (return (i32.const 0))))
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

  (func $dispatch (param $fn i32) (param $a i64) (param $b i64) (param $c i64) (result i64)
    (block $unknown
     (block $optim_zero_grad
      (block $optim_step
       (block $optim_create
        (block $tensor_free
         (block $tensor_grad
          (block $tensor_backward
           (block $tensor_info
            (block $tensor_read
             (block $tensor_op
              (block $tensor_create
               (block $actor_kill
                (block $actor_call
                 (block $actor_create
                  (block $wait
                   (block $task_cancel
                    (block $task_submit
                     (block $object_release
                      (block $object_get
                       (block $object_put
                        (block $result_read
                         (block $result_len
                          (block $error
                           (block $log
                            (br_table $log $error $result_len $result_read $object_put $object_get $object_release $task_submit $task_cancel $wait $actor_create $actor_call $actor_kill $tensor_create $tensor_op $tensor_read $tensor_info $tensor_backward $tensor_grad $tensor_free $optim_create $optim_step $optim_zero_grad $unknown
                                      (local.get $fn)))
                           (return (i64.extend_i32_s (call $log (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)) (i32.wrap_i64 (local.get $c))))))
                          (return (i64.extend_i32_s (call $error (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b))))))
                         (return (i64.extend_i32_s (call $result_len))))
                        (return (i64.extend_i32_s (call $result_read (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b))))))
                       (return (call $object_put (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)))))
                      (return (call $object_get (local.get $a) (local.get $b))))
                     (return (i64.extend_i32_s (call $object_release (local.get $a)))))
                    (return (call $task_submit (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)))))
                   (return (i64.extend_i32_s (call $task_cancel (local.get $a)))))
                  (return (call $wait (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)))))
                 (return (call $actor_create (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)))))
                (return (call $actor_call (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)))))
               (return (i64.extend_i32_s (call $actor_kill (local.get $a)))))
              (return (call $tensor_create (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)) (i32.wrap_i64 (local.get $c)) (i32.wrap_i64 (i64.shr_u (local.get $c) (i64.const 32))))))
             (return (call $tensor_op (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)))))
            (return (call $tensor_read (local.get $a))))
           (return (call $tensor_info (local.get $a))))
          (return (i64.extend_i32_s (call $tensor_backward (local.get $a)))))
         (return (call $tensor_grad (local.get $a))))
        (return (i64.extend_i32_s (call $tensor_free (local.get $a)))))
       (return (call $optim_create (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)))))
      (return (i64.extend_i32_s (call $optim_step (local.get $a)))))
     (return (i64.extend_i32_s (call $optim_zero_grad (local.get $a)))))
    (i64.const -999))

  (func (export "lumen_call") (param $fn i32) (param $p i32) (param $n i32) (result i64)
    ;; Short inputs read as zeroes: clear the argument area past the input first.
    (if (i32.lt_u (local.get $n) (i32.const 32))
      (then (memory.fill (i32.add (local.get $p) (local.get $n)) (i32.const 0) (i32.sub (i32.const 32) (local.get $n)))))
    (i64.store (i32.const 512)
      (call $dispatch (i32.load8_u (local.get $p))
        (i64.load offset=8 (local.get $p)) (i64.load offset=16 (local.get $p)) (i64.load offset=24 (local.get $p))))
    (call $pack (i32.const 512) (i32.const 8)))
)
