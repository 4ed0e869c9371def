(module
  (memory 256)
  (func (export "copy")
    (loop $l (memory.copy (i32.const 0) (i32.const 8388608) (i32.const 8388608)) (br $l))))
