(module
  ;; WASI calls whose buffers the host once sized from the plugin's request and did not charge.
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 768)
  ;; 490,000 clock subscriptions of 1 ms (48 bytes each, from 64 KiB on), their events after.
  (func (export "poll-many") (result i32) (local $i i32) (local $at i32)
    (local.set $at (i32.const 65536))
    (loop $l
      ;; userdata, tag 0 (clock), clock id 1 (monotonic), timeout 1 ms
      (i64.store (local.get $at) (i64.extend_i32_u (local.get $i)))
      (i32.store8 offset=8 (local.get $at) (i32.const 0))
      (i32.store offset=16 (local.get $at) (i32.const 1))
      (i64.store offset=24 (local.get $at) (i64.const 1000000))
      (local.set $at (i32.add (local.get $at) (i32.const 48)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 490000))))
    (call $poll (i32.const 65536) (local.get $at) (i32.const 490000) (i32.const 16)))
  ;; 48 MiB of randomness into the plugin's own 48 MiB memory.
  (func (export "random-48mib") (result i32)
    (call $random (i32.const 0) (i32.const 50331648))))
