(module
  ;; The input is the Extism PDK's request JSON ({"url": ..., "method": ...}). The response body
  ;; is the output; returns 0 when the status is 200.
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "http_request" (func $http (param i64 i64) (result i64)))
  (import "extism:host/env" "http_status_code" (func $status (result i32)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "fetch") (result i32) (local $r i64)
    (local.set $r (call $http (call $input_offset) (i64.const 0)))
    (call $output_set (local.get $r) (call $length (local.get $r)))
    (i32.sub (call $status) (i32.const 200))))
