(module (type $t (func)) (table 2 funcref) (elem (i32.const 0) $a $b)
  (func $a (call_indirect (type $t) (i32.const 1)))
  (func $b (call_indirect (type $t) (i32.const 0)))
  (export "ping" (func $a)))
