(module
  ;; fd_readdir of a directory of 50,000 entries, 40 or 20 times, into a 4 KiB buffer. The host once
  ;; read the whole directory into host memory and stat-ed every entry twice on every call,
  ;; whatever the cookie and the buffer (a quarter of a second a call for 50,000 entries, a
  ;; second and 17 MB for 200,000): 20 calls outlast any timeout. Each function returns the bytes
  ;; the last call wrote.
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func $pages (param $cookie i64) (param $times i32) (result i32) (local $i i32) (local $e i32)
    (loop $again
      (local.set $e (call $readdir (i32.const 3) (i32.const 1024) (i32.const 4096) (local.get $cookie) (i32.const 64)))
      (if (local.get $e) (then (return (i32.sub (i32.const 0) (local.get $e)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (local.get $times))))
    (i32.load (i32.const 64)))
  ;; The first page: the cookie at the start.
  (func (export "first-page") (result i32) (call $pages (i64.const 0) (i32.const 40)))
  ;; The last page, 20 times: entries 49,990 to 50,001 (with "." and ".."), 12 entries of
  ;; 13-byte names; each call skips the 49,990 before it.
  (func (export "last-page") (result i32) (call $pages (i64.const 49990) (i32.const 20))))
