(module
  ;; Reads a path from stdin and opens it in the first preopen (fd 3). Returns WASI's errno:
  ;; 0 when the file opened.
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: 1024 bytes at 1024
  (data (i32.const 0) "\00\04\00\00\00\04\00\00")
  (func $read_path (result i32)
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.load (i32.const 16)))
  ;; follow symlinks; rights FD_READ
  (func (export "open") (result i32)
    (call $path_open (i32.const 3) (i32.const 1) (i32.const 1024) (call $read_path)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 20)))
  ;; O_CREAT; rights FD_WRITE
  (func (export "create") (result i32)
    (call $path_open (i32.const 3) (i32.const 1) (i32.const 1024) (call $read_path)
      (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 20))))
