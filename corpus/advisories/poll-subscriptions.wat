;; poll_oneoff and fuel (GHSA-852m-cvvp-9p4w): wasmtime-wasi copies every subscription and
;; event, up to 128 MiB a call by default. Returns poll_oneoff's errno: 48 (ENOMEM) when the
;; subscriptions are past what one call may hand the host.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 150)
  ;; 40,000 clock subscriptions of timeout 0: 1.9 MB of subscriptions and as many events.
  (func (export "poll-40k-subscriptions") (result i32) (local $i i32)
    (loop $l
      (i32.store8 (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 48))) (i32.const 0))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 40000))))
    (call $poll (i32.const 1024) (i32.const 8000000) (i32.const 40000) (i32.const 16))))
