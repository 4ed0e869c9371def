(module
  ;; GHSA-852m-cvvp-9p4w: WASI copied whatever a guest handed it, up to 128 MiB a call (paths,
  ;; iovec arrays; poll subscriptions in poll-subscriptions.wat). Each function returns the errno of its call: 48
  ;; (ENOMEM) when the copy is past what the sandbox lets one call hand the host.
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1000)
  ;; A path of 60 MiB: copied once to look it up and once to open it (261 MB of RSS before).
  (func (export "path-of-60mib") (result i32)
    (memory.fill (i32.const 1024) (i32.const 97) (i32.const 62914560))
    (call $open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 62914560)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
  ;; An iovec array of 7,340,033 entries (56 MiB), all empty but the last.
  (func (export "iovec-array-of-56mib") (result i32)
    (i32.store (i32.const 58721280) (i32.const 0))
    (i32.store (i32.const 58721284) (i32.const 1))
    (call $write (i32.const 1) (i32.const 1024) (i32.const 7340033) (i32.const 16)))
  ;; Not a copy of that kind: 2 MiB written to stdout in one call, under a 4 MiB output limit.
  ;; Returns the bytes written, or the negated errno.
  (func (export "stdout-one-write-of-2mib") (result i32) (local $e i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 2097152))
    (local.set $e (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (if (local.get $e) (then (return (i32.sub (i32.const 0) (local.get $e)))))
    (i32.load (i32.const 16))))
