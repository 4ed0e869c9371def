(module
  ;; One export per wasmtime advisory of 2025-2026 that touched a sandbox like this one. Each
  ;; returns 1 when the host refused what the advisory's bug allowed, 0 when it was allowed
  ;; (and, for the crash, 0 when the host survived). Paths come from the call's input (stdin).
  ;; Descriptor 3 is the first preopen, 4 the second.
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link" (func $link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_rename" (func $rename (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $renumber (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: 1024 bytes at 1024
  (data (i32.const 0) "\00\04\00\00\00\04\00\00")
  (data (i32.const 512) "inside.txt")
  (data (i32.const 544) "linked.txt")
  (func $path_len (result i32)
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.load (i32.const 16)))
  (func $refused (param $errno i32) (result i32) (i32.ne (local.get $errno) (i32.const 0)))
  ;; GHSA-vqjp-4c8c-hfgg: a path or symlink with a trailing slash must not lead out of the
  ;; preopen (input: the path, e.g. `escape/`). Directory open, following links.
  (func (export "open-dir") (result i32)
    (call $refused (call $open (i32.const 3) (i32.const 1) (i32.const 1024) (call $path_len)
      (i32.const 2) (i64.const 0x4000) (i64.const 0) (i32.const 0) (i32.const 20))))
  ;; GHSA-2r75-cxrj-cmph: O_TRUNC on a file of a read-only preopen, asking for no write right.
  (func (export "truncate-read-only") (result i32)
    (call $refused (call $open (i32.const 3) (i32.const 0) (i32.const 512) (i32.const 10)
      (i32.const 8) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 20))))
  ;; GHSA-4ch3-9j33-3pmj: a hard link from the read-only preopen into the read-write one.
  (func (export "link-across") (result i32)
    (call $refused (call $link (i32.const 3) (i32.const 0) (i32.const 512) (i32.const 10)
      (i32.const 4) (i32.const 544) (i32.const 10))))
  ;; GHSA-4ch3-9j33-3pmj: a rename from the read-only preopen into the read-write one.
  (func (export "rename-across") (result i32)
    (call $refused (call $rename (i32.const 3) (i32.const 512) (i32.const 10)
      (i32.const 4) (i32.const 544) (i32.const 10))))
  ;; GHSA-fm79-3f68-h2fc (CVE-2025-53901): fd_renumber onto itself, onto stdio and onto a
  ;; descriptor that does not exist panicked the host. Returns 0 when the host is still here.
  (func (export "renumber-odd") (result i32)
    (drop (call $renumber (i32.const 3) (i32.const 3)))
    (drop (call $renumber (i32.const 1) (i32.const 1)))
    (drop (call $renumber (i32.const 4) (i32.const 100000)))
    (drop (call $renumber (i32.const 100000) (i32.const 4)))
    (i32.const 0))
  ;; fd_readdir into buffers of 1 to 64 bytes must not write past them: a canary after each.
  ;; Returns 1 when every canary is intact.
  (func (export "readdir-small-buffers") (result i32) (local $len i32)
    (local.set $len (i32.const 1))
    (loop $l
      (i32.store (i32.add (i32.const 4096) (local.get $len)) (i32.const 0x5afe5afe))
      (drop (call $readdir (i32.const 3) (i32.const 4096) (local.get $len) (i64.const 0) (i32.const 20)))
      (if (i32.ne (i32.load (i32.add (i32.const 4096) (local.get $len))) (i32.const 0x5afe5afe))
        (then (return (i32.const 0))))
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (br_if $l (i32.le_u (local.get $len) (i32.const 64))))
    (i32.const 1)))
