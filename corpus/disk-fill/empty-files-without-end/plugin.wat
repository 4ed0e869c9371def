(module
  ;; Creates empty files `00000000`, `00000001`, … in the first preopen until an open fails;
  ;; returns how many it made if the failure is ENOSPC (51), else -errno. Empty files write
  ;; no bytes, but each takes an inode and a directory entry.
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (memory (export "memory") 1)
  (func $name (param $i i32) (local $k i32) (local $d i32)
    (loop $digit
      (local.set $d (i32.and (i32.shr_u (local.get $i) (i32.mul (i32.sub (i32.const 7) (local.get $k)) (i32.const 4))) (i32.const 15)))
      (i32.store8 (i32.add (i32.const 100) (local.get $k))
        (i32.add (local.get $d) (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $d) (i32.const 10)))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $digit (i32.lt_u (local.get $k) (i32.const 8)))))
  (func (export "touch") (result i32) (local $i i32) (local $e i32)
    (block $done
      (loop $l
        (call $name (local.get $i))
        (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 8)
          (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16)))
        (br_if $done (local.get $e))
        (drop (call $close (i32.load (i32.const 16))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (select (local.get $i) (i32.sub (i32.const 0) (local.get $e)) (i32.eq (local.get $e) (i32.const 51)))))
