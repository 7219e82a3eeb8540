;; loop.wat: a counting loop and nothing else, to measure what the deadline check wazero inserts
;; at every loop back-edge (WithCloseOnContextDone) costs compute-bound guest code.
(module
  (func (export "count") (param $n i32) (result i32)
    (local $i i32)
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $i)))
