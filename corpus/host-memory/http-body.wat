(module
  ;; An HTTP request (the call's input) with a 40 MiB body block: the host once copied the body
  ;; twice before sending it, uncharged.
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input (result i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "http-body") (result i32)
    (drop (call $http_request (call $input) (call $alloc (i64.const 41943040)))) (i32.const 0)))
