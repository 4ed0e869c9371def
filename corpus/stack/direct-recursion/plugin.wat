(module (func $f (export "recurse") (call $f)))
