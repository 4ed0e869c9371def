//! The peer of `stockade run` in whole-process benchmarks: the official extism host crate
//! loading a plugin and calling one export, as a host program built on it would.
//!
//!     extism-run PLUGIN FUNCTION INPUT [--no-cache]
//!
//! With its defaults the extism crate caches compiled modules in the user's cache directory
//! (wasmtime's cache); `--no-cache` turns that off for the cold path. Prints the output.

use std::io::Write;

use extism::{Manifest, PluginBuilder, Wasm};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plugin, function, input, rest @ ..] = args.as_slice() else {
        eprintln!("usage: extism-run PLUGIN FUNCTION INPUT [--no-cache]");
        return std::process::ExitCode::from(2);
    };
    let no_cache = rest.iter().any(|a| a == "--no-cache");
    let mut builder = PluginBuilder::new(Manifest::new([Wasm::file(plugin)])).with_wasi(true);
    if no_cache {
        builder = builder.with_cache_disabled();
    }
    let mut plugin = match builder.build() {
        Ok(plugin) => plugin,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match plugin.call::<&str, &[u8]>(function, input) {
        Ok(output) => {
            let _ = std::io::stdout().write_all(output);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
