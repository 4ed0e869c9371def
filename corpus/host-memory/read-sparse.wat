(module
  ;; A file made 48 MiB long (sparse), read whole into one 47 MiB iovec: the host once read it
  ;; into a host buffer of the iovec's length before copying it in.
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $set_size (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 768)
  (data (i32.const 0) "f")
  (func (export "read-sparse") (result i32) (local $e i32)
    ;; oflags creat | trunc; rights fd_read | fd_write | fd_filestat_set_size
    (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 9) (i64.const 4194370) (i64.const 0) (i32.const 0) (i32.const 16)))
    (if (local.get $e) (then (return (i32.sub (i32.const 0) (local.get $e)))))
    (local.set $e (call $set_size (i32.load (i32.const 16)) (i64.const 50331648)))
    (if (local.get $e) (then (return (i32.sub (i32.const -1000) (local.get $e)))))
    (i32.store (i32.const 32) (i32.const 1048576))
    (i32.store (i32.const 36) (i32.const 49283072))
    (local.set $e (call $read (i32.load (i32.const 16)) (i32.const 32) (i32.const 1) (i32.const 40)))
    (if (local.get $e) (then (return (i32.sub (i32.const -2000) (local.get $e)))))
    (i32.load (i32.const 40))))
