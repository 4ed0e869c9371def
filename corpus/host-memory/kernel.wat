(module
  ;; Extism kernel calls in loops, each aimed at host memory the plugin does not see.
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (memory (export "memory") 1)
  ;; One-byte blocks until something stops it.
  (func (export "hoard") (result i32)
    (loop $l (drop (call $alloc (i64.const 1))) (br $l)) (i32.const 0))
  ;; Allocate two, free one, forever: the free list grows with the blocks.
  (func (export "churn") (result i32) (local $a i64)
    (loop $l
      (local.set $a (call $alloc (i64.const 3)))
      (drop (call $alloc (i64.const 1)))
      (call $free (local.get $a))
      (br $l)) (i32.const 0))
  ;; A one-byte log line, forever.
  (func (export "log") (result i32) (local $h i64)
    (local.set $h (call $alloc (i64.const 1)))
    (loop $l (call $log_info (local.get $h)) (br $l)) (i32.const 0))
  ;; 60 MiB of error text.
  (func (export "error") (result i32)
    (call $error_set (call $alloc (i64.const 62914560))) (i32.const 1))
  ;; A new var per iteration, keys 8 bytes, values 1 byte.
  (func (export "vars") (result i32) (local $k i64) (local $v i64) (local $i i64)
    (local.set $v (call $alloc (i64.const 1)))
    (local.set $k (call $alloc (i64.const 8)))
    (loop $l
      (call $store_u64 (local.get $k) (local.get $i))
      (call $var_set (local.get $k) (local.get $v))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l)) (i32.const 0))
  ;; One var, set again and again with a value one byte longer each time.
  (func (export "grow_var") (result i32) (local $k i64) (local $n i64)
    (local.set $k (call $alloc (i64.const 8)))
    (loop $l
      (local.set $n (i64.add (local.get $n) (i64.const 4096)))
      (call $var_set (local.get $k) (call $alloc (local.get $n)))
      (br $l)) (i32.const 0)))
