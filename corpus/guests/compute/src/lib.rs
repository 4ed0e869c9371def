//! Compute kernels as an Extism plugin, for the compute benches: the same source
//! (`kernels.rs`) is compiled natively by benches/benches/compute.rs.
use extism_pdk::*;

include!("kernels.rs");

/// Input: the grid size (decimal). Output: the total of the iteration counts.
#[plugin_fn]
pub fn mandel(size: String) -> FnResult<String> {
    let size: u32 = size.trim().parse().map_err(|_| Error::msg("the input is a grid size"))?;
    Ok(mandelbrot(size).to_string())
}

/// Input: `ROUNDS\nAST-JSON`. Output: the optimized AST.
#[plugin_fn]
pub fn optimize(input: String) -> FnResult<String> {
    let (rounds, ast) = input.split_once('\n').ok_or_else(|| Error::msg("expected ROUNDS, a newline, the AST"))?;
    let rounds: u32 = rounds.trim().parse().map_err(|_| Error::msg("ROUNDS is a number"))?;
    Ok(optimize_rounds(ast, rounds))
}
