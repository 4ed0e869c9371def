(module
  ;; WASI poll_oneoff with one clock subscription: `sleep` waits 8 s, `forever` 2^63 - 1 ns,
  ;; `until` waits for an absolute time centuries away. Each returns poll_oneoff's errno.
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $clock (param $timeout i64) (param $flags i32) (result i32)
    (i64.store (i32.const 0) (i64.const 7))          ;; userdata
    (i32.store8 (i32.const 8) (i32.const 0))          ;; eventtype: clock
    (i32.store (i32.const 16) (i32.const 1))          ;; clock id: monotonic
    (i64.store (i32.const 24) (local.get $timeout))   ;; timeout (ns)
    (i64.store (i32.const 32) (i64.const 0))          ;; precision
    (i32.store16 (i32.const 40) (local.get $flags))   ;; 1: absolute time
    (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
  (func (export "sleep") (result i32) (call $clock (i64.const 8000000000) (i32.const 0)))
  (func (export "forever") (result i32) (call $clock (i64.const 0x7fffffffffffffff) (i32.const 0)))
  (func (export "until") (result i32) (call $clock (i64.const 0x7ffffffffffffff0) (i32.const 1))))
