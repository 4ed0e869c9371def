(module (memory 1)
  (func (export "grow") (result i32) (memory.grow (i32.const 2048))))
