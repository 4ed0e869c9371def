(module (import "evil" "backdoor" (func)) (func (export "run") (result i32) (i32.const 0)))
