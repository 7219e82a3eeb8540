;; guest.wasm is this module, as the tests encode it (guest.wasm in guest_test.go; regenerate
;; with `go test ./plugins/ -run TestGuestGolden -update`). It is the smallest ABI v1 guest: the
;; four required exports, a bump allocator, its manifest in a data segment and a lumen_call that
;; echoes its input.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))

  (func (export "lumen_abi_v1"))

  (func (export "lumen_alloc") (param $size i32) (result i32) (local $p i32)
    global.get $heap
    local.set $p
    global.get $heap
    local.get $size
    i32.add
    global.set $heap
    local.get $p)

  ;; Pack(1024, 53): the manifest below, 53 bytes at address 1024.
  (func (export "lumen_manifest") (result i64)
    i64.const 0x0000040000000035)

  ;; Returns its input: Pack(ptr, len).
  (func (export "lumen_call") (param $fn i32) (param $ptr i32) (param $len i32) (result i64)
    local.get $ptr
    i64.extend_i32_u
    i64.const 32
    i64.shl
    local.get $len
    i64.extend_i32_u
    i64.or)

  (data (i32.const 1024) "{\"abi\":1,\"functions\":[{\"name\":\"echo\",\"kind\":\"task\"}]}"))
