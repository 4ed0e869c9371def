//! Stage 1: source text (`x = 1 + 2`, a statement a line) to the program as JSON.
use extism_pdk::*;

include!("../../ir/ir.rs");

#[plugin_fn]
pub fn parse(source: String) -> FnResult<String> {
    let mut stmts = Vec::new();
    for (n, line) in source.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let (name, expr) = line.split_once('=').ok_or_else(|| Error::msg(format!("line {}: expected `name = expression`", n + 1)))?;
        let words: Vec<&str> = expr.split_whitespace().collect();
        let stmt = match words[..] {
            [lhs] => Stmt { name: name.trim().into(), lhs: lhs.into(), op: None, rhs: None },
            [lhs, op @ ("+" | "-" | "*"), rhs] => Stmt { name: name.trim().into(), lhs: lhs.into(), op: Some(op.into()), rhs: Some(rhs.into()) },
            _ => return Err(Error::msg(format!("line {}: expected `a`, or `a OP b` with OP one of + - *", n + 1)).into()),
        };
        stmts.push(stmt);
    }
    Ok(serde_json::to_string(&Program { stmts })?)
}
