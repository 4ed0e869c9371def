;; GHSA-852m-cvvp-9p4w: an iovec array as large as memory allows (134,209,000 empty iovecs,
;; 1 GiB), handed to fd_write 1,000 times. The host once walked the whole array for its first
;; non-empty buffer before refusing it: a second a call that no deadline could interrupt. It is
;; refused by its length (ENOMEM) before it is walked. Returns the errno of the last call.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 16383)
  (func (export "walk-1000-times") (result i32) (local $i i32) (local $e i32)
    (loop $l
      (local.set $e (call $write (i32.const 1) (i32.const 0) (i32.const 134209000) (i32.const 1073676280)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (local.get $e)))
