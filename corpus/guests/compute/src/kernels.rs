// The compute kernels, one source for both sides: included by this plugin (compiled to wasm) and
// by benches/benches/compute.rs (compiled natively), so that native and sandboxed run the same
// code. Plain functions of their input; no I/O.

/// A numeric loop: the Mandelbrot set on a `size`² grid, up to 200 iterations a point; the
/// total of the iteration counts.
pub fn mandelbrot(size: u32) -> u64 {
    let mut total = 0u64;
    for y in 0..size {
        for x in 0..size {
            let cr = f64::from(x) * 3.0 / f64::from(size) - 2.0;
            let ci = f64::from(y) * 2.0 / f64::from(size) - 1.0;
            let (mut zr, mut zi, mut i) = (0.0f64, 0.0f64, 0u32);
            while i < 200 && zr * zr + zi * zi <= 4.0 {
                let t = zr * zr - zi * zi + cr;
                zi = 2.0 * zr * zi + ci;
                zr = t;
                i += 1;
            }
            total += u64::from(i);
        }
    }
    total
}

/// A parse-transform-serialize pass, as an optimizer plugin makes it: the AST (JSON) parsed,
/// constant additions folded (`{"op":"+","l":N,"r":M}` to N+M), serialized again, `rounds`
/// times over.
pub fn optimize_rounds(ast: &str, rounds: u32) -> String {
    let mut text = ast.to_string();
    for _ in 0..rounds {
        let mut tree: serde_json::Value = serde_json::from_str(&text).expect("the AST is JSON");
        fold(&mut tree);
        text = serde_json::to_string(&tree).expect("serializes");
    }
    text
}

fn fold(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Array(items) => items.iter_mut().for_each(fold),
        serde_json::Value::Object(map) => {
            map.values_mut().for_each(fold);
            if map.get("op").and_then(|o| o.as_str()) == Some("+")
                && let (Some(l), Some(r)) = (map.get("l").and_then(|v| v.as_i64()), map.get("r").and_then(|v| v.as_i64()))
            {
                *node = serde_json::Value::from(l.wrapping_add(r));
            }
        }
        _ => {}
    }
}

/// The AST the benches feed the optimizer: `statements` assignments, each `x = (a + b) + c` with
/// nested constant additions, about 90 bytes of JSON each.
pub fn sample_ast(statements: u32) -> String {
    let stmts: Vec<serde_json::Value> = (0..statements)
        .map(|i| {
            let i = i64::from(i);
            serde_json::json!({"assign": format!("v{i}"), "value": {"op": "+", "l": {"op": "+", "l": i, "r": 2}, "r": {"op": "*", "l": i, "r": 3}}})
        })
        .collect();
    serde_json::json!({"program": stmts}).to_string()
}
