(module
  ;; A plugin granted a directory but not stdio: fd_pwrite (a file call) aimed at stdout, 200
  ;; times 100 bytes. Returns the errno of the first refused write (70, ESPIPE), or the bytes
  ;; written if stdout took them.
  (import "wasi_snapshot_preview1" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "pwrite-stdout") (result i32) (local $i i32) (local $e i32) (local $n i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 100))
    (loop $l
      (local.set $e (call $pwrite (i32.const 1) (i32.const 0) (i32.const 1) (i64.const 0) (i32.const 16)))
      (if (local.get $e) (then (return (local.get $e))))
      (local.set $n (i32.add (local.get $n) (i32.load (i32.const 16))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 200))))
    (local.get $n)))
