//! An optimizer: folds `1 + 2` to `3`. Version 2 (feature `v2`) also folds `x * 0` to `0`.
use extism_pdk::*;

include!("../../ir/ir.rs");

#[plugin_fn]
pub fn optimize(program: String) -> FnResult<String> {
    let mut program: Program = serde_json::from_str(&program)?;
    for stmt in &mut program.stmts {
        let (Some(op), Some(rhs)) = (&stmt.op, &stmt.rhs) else { continue };
        let folded = match (stmt.lhs.parse::<i64>(), rhs.parse::<i64>(), op.as_str()) {
            (Ok(a), Ok(b), "+") => Some(a.wrapping_add(b)),
            (Ok(a), Ok(b), "-") => Some(a.wrapping_sub(b)),
            (Ok(a), Ok(b), "*") => Some(a.wrapping_mul(b)),
            #[cfg(feature = "v2")]
            (_, Ok(0), "*") | (Ok(0), _, "*") => Some(0),
            _ => None,
        };
        if let Some(value) = folded {
            *stmt = Stmt { name: stmt.name.clone(), lhs: value.to_string(), op: None, rhs: None };
        }
    }
    Ok(serde_json::to_string(&program)?)
}
