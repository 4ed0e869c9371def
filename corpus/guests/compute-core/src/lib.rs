//! The compute kernels as a plain core module (no Extism ABI, no imports), so that the compute
//! benches can run the very same wasm under raw wasmtime and under Stockade's sandbox: how close
//! the sandbox is to raw wasmtime, apart from the plugin ABI. Same source as the plugin
//! (`../compute/src/kernels.rs`).

include!("../../compute/src/kernels.rs");

/// The total of the iteration counts over a `size`² grid.
#[unsafe(no_mangle)]
pub extern "C" fn mandel(size: u32) -> u64 {
    mandelbrot(size)
}

/// Builds the sample AST of `statements` statements, optimizes it `rounds` times; the length
/// of the result (the input is made inside, so that the call needs no memory from its caller).
#[unsafe(no_mangle)]
pub extern "C" fn optimize(statements: u32, rounds: u32) -> u64 {
    optimize_rounds(&sample_ast(statements), rounds).len() as u64
}
