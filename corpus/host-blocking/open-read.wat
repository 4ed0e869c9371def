(module
  ;; Opens `target` (from the data segment) in the first preopen (fd 3) and reads from it.
  ;; Returns path_open's errno if it fails, else 1000 + fd_read's errno.
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "target")
  (func (export "read") (result i32) (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 1) (i32.const 0) (i32.const 6)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
    (if (local.get $e) (then (return (local.get $e))))
    (i32.store (i32.const 32) (i32.const 256))   ;; iovec: buf
    (i32.store (i32.const 36) (i32.const 64))    ;; iovec: len
    (i32.add (i32.const 1000)
      (call $read (i32.load (i32.const 16)) (i32.const 32) (i32.const 1) (i32.const 40)))))
