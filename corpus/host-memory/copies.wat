(module
  ;; Host calls whose arguments the host once copied before charging them. Each export makes
  ;; one Extism block of 60 MiB (charged: the memory limit is 64 MiB) and hands it to a host
  ;; function as the argument the host used to copy: a config key, a var key, a var value, an
  ;; HTTP body (http-body.wat). The copy, uncharged, took the worker past the memory limit + 48 MiB.
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (memory (export "memory") 1)
  (func $big (result i64) (call $alloc (i64.const 62914560)))
  (func (export "config-key") (result i32)
    (drop (call $config_get (call $big))) (i32.const 0))
  (func (export "var-key") (result i32)
    (drop (call $var_get (call $big))) (i32.const 0))
  (func (export "var-value") (result i32) (local $k i64)
    (local.set $k (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $k) (i32.const 107))
    (call $var_set (local.get $k) (call $big)) (i32.const 0)))
