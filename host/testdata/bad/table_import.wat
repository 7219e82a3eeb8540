;; imports a table from the lumen module, which provides none
(module
  (import "lumen" "table" (table 1 funcref))
  (memory (export "memory") 1)
  (func (export "lumen_abi_v1"))
  (func (export "lumen_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "lumen_manifest") (result i64) (i64.const 0))
  (func (export "lumen_call") (param i32 i32 i32) (result i64) (i64.const 0))
)
