//! The code generator: the program to a stack machine's instructions.
use extism_pdk::*;

include!("../../ir/ir.rs");

#[plugin_fn]
pub fn codegen(program: String) -> FnResult<String> {
    let program: Program = serde_json::from_str(&program)?;
    let mut out = String::new();
    for stmt in &program.stmts {
        out.push_str(&format!("push {}\n", stmt.lhs));
        if let (Some(op), Some(rhs)) = (&stmt.op, &stmt.rhs) {
            let instruction = match op.as_str() { "+" => "add", "-" => "sub", _ => "mul" };
            out.push_str(&format!("push {rhs}\n{instruction}\n"));
        }
        out.push_str(&format!("store {}\n", stmt.name));
    }
    Ok(out)
}
