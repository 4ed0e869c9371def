(module (table 100000 funcref) (func (export "run") (result i32) (i32.const 0)))
