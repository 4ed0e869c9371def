(module
  ;; `put N` keeps a number in linear memory; `get` returns what is there.
  (memory (export "memory") 1)
  (func (export "put") (param $x i32) (result i32) (i32.store (i32.const 64) (local.get $x)) (i32.const 0))
  (func (export "get") (result i32) (i32.load (i32.const 64))))
