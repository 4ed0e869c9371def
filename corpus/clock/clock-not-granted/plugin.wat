(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "now") (result i32) (call $now (i32.const 0) (i64.const 1) (i32.const 0))))
