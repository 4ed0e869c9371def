(module
  ;; Opens `zero` in the first preopen (a grant of /dev) and reads it.
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "zero")
  (func (export "read") (result i32)
    (call $open (i32.const 3) (i32.const 1) (i32.const 0) (i32.const 4)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16))))
