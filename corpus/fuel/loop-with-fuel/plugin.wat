(module (func (export "spin") (loop $l (br $l))))
