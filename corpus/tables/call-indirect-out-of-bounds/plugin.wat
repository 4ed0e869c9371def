(module (type $t (func)) (table 1 funcref)
  (func (export "jump") (call_indirect (type $t) (i32.const 99))))
