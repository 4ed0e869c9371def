//! A plugin built with the official Extism Rust PDK: `greet` returns a greeting for its input,
//! logging as it goes and reading an optional `greeting` config value.

use extism_pdk::*;

#[plugin_fn]
pub fn greet(name: String) -> FnResult<String> {
    info!("greeting {}", name);
    let greeting = config::get("greeting")?.unwrap_or_else(|| "Hello".to_string());
    Ok(format!("{greeting}, {name}!"))
}

#[plugin_fn]
pub fn count_vowels(text: String) -> FnResult<String> {
    let count = text.chars().filter(|c| "aeiouAEIOU".contains(*c)).count();
    Ok(format!("{{\"count\":{count}}}"))
}
