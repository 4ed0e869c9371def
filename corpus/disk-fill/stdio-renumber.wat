(module
  ;; Quota by number, attacked: the disk quota must follow the file, not descriptors 1 and 2.
  ;; `onto-stdout` creates `f` in the first preopen and renumbers it onto descriptor 1;
  ;; `after-close` closes descriptor 1 first, so that the file may get its number. Each then
  ;; writes 4 KiB at a time to the file until a write fails, and returns the bytes written if
  ;; the failure is ENOSPC (51), else -errno.
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $renumber (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "f")
  (func $create (result i32)
    ;; oflags: creat | trunc; rights: fd_write; the descriptor lands at 16
    (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16)))
  (func $fill (param $fd i32) (result i64) (local $e i32) (local $total i64)
    (i32.store (i32.const 32) (i32.const 4096))
    (i32.store (i32.const 36) (i32.const 4096))
    (block $done
      (loop $l
        (local.set $e (call $write (local.get $fd) (i32.const 32) (i32.const 1) (i32.const 40)))
        (br_if $done (local.get $e))
        (local.set $total (i64.add (local.get $total) (i64.extend_i32_u (i32.load (i32.const 40)))))
        (br_if $done (i64.gt_u (local.get $total) (i64.const 16777216)))
        (br $l)))
    (if (result i64) (i32.eq (local.get $e) (i32.const 51))
      (then (local.get $total))
      (else (i64.sub (i64.const 0) (i64.extend_i32_u (local.get $e))))))
  (func (export "onto-stdout") (result i64) (local $e i32)
    (local.set $e (call $create))
    (if (local.get $e) (then (return (i64.extend_i32_u (local.get $e)))))
    (local.set $e (call $renumber (i32.load (i32.const 16)) (i32.const 1)))
    (if (local.get $e) (then (return (i64.sub (i64.const -1000) (i64.extend_i32_u (local.get $e))))))
    (call $fill (i32.const 1)))
  (func (export "after-close") (result i64) (local $e i32)
    (drop (call $close (i32.const 1)))
    (local.set $e (call $create))
    (if (local.get $e) (then (return (i64.extend_i32_u (local.get $e)))))
    (call $fill (i32.load (i32.const 16)))))
