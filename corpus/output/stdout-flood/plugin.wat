(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\40\00\00\00\60\ea\00\00")
  (func (export "flood") (loop $l (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32))) (br $l))))
