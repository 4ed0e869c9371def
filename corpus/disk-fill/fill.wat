(module
  ;; Creates `f` in the first preopen (read-write) and writes 64 KiB at a time until a write
  ;; fails. Returns the bytes written if the failure is ENOSPC (51), else -errno.
  ;; `grow` instead sets the file's size to 1 GiB and returns the errno.
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $set_size (param i32 i64) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "f")
  (func $create (result i32)
    ;; oflags: creat | trunc; rights: fd_write | fd_filestat_set_size
    (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 9) (i64.const 4194368) (i64.const 0) (i32.const 0) (i32.const 16)))
  (func (export "fill") (result i64) (local $e i32) (local $total i64)
    (local.set $e (call $create))
    (if (local.get $e) (then (return (i64.extend_i32_u (local.get $e)))))
    (i32.store (i32.const 32) (i32.const 65536))
    (i32.store (i32.const 36) (i32.const 65536))
    (block $done
      (loop $l
        (local.set $e (call $write (i32.load (i32.const 16)) (i32.const 32) (i32.const 1) (i32.const 40)))
        (br_if $done (local.get $e))
        (local.set $total (i64.add (local.get $total) (i64.extend_i32_u (i32.load (i32.const 40)))))
        (br $l)))
    (if (result i64) (i32.eq (local.get $e) (i32.const 51))
      (then (local.get $total))
      (else (i64.sub (i64.const 0) (i64.extend_i32_u (local.get $e))))))
  (func (export "grow") (result i32) (local $e i32)
    (local.set $e (call $create))
    (if (local.get $e) (then (return (local.get $e))))
    (call $set_size (i32.load (i32.const 16)) (i64.const 1073741824))))
