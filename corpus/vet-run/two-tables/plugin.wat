(module
  ;; Two tables of one element each: valid, within `tables`, so it must instantiate.
  (table $a 1 funcref) (table $b 1 funcref)
  (memory (export "memory") 1)
  (func (export "run") (result i32) (i32.add (table.size $a) (table.size $b))))
