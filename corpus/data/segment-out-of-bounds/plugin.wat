(module (memory 1)
  (data (i32.const 65530) "0123456789")
  (func (export "run") (result i32) (i32.const 0)))
