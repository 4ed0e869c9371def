(module ;; a second plugin
 (memory (export "memory") 1)
  (func (export "write") (result i32) (i64.store (i32.const 256) (i64.const 0x5445524345530000)) (i32.const 0))
  (func (export "read") (result i64) (i64.load (i32.const 256))))
