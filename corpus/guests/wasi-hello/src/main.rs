//! A plain WASI preview 1 command: reads stdin, greets on stdout. Nothing Stockade-specific,
//! so vetting it shows what an ordinary Rust program for wasm32-wasip1 imports.

use std::io::Read;

fn main() {
    let mut name = String::new();
    std::io::stdin().read_to_string(&mut name).expect("stdin is readable");
    let name = name.trim();
    println!("Hello, {}!", if name.is_empty() { "world" } else { name });
}
