//! A plugin built with the official Rust extism-pdk gives the same output under Stockade as
//! under the official `extism` host crate.

use stockade::Policy;
use stockade::sandbox::{Input, Load, LoadOptions, Sandbox};
use stockade::source::PluginFile;

const GREET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/guests/extism-greet/extism-greet.wasm");

#[test]
fn same_outputs_as_the_extism_host() {
    let wasm = std::fs::read(GREET).unwrap();
    let manifest = extism::Manifest::new([extism::Wasm::data(wasm)]).with_config_key("greeting", "Howdy");
    let mut reference = extism::Plugin::new(&manifest, [], false).expect("the extism host loads the plugin");

    let policy = Policy::builtin_default();
    let sandbox = Sandbox::new(&policy).unwrap();
    let file = PluginFile::read(std::path::Path::new(GREET)).unwrap();
    let options = LoadOptions { config: [("greeting".to_string(), "Howdy".to_string())].into(), ..LoadOptions::default() };
    let Load::Ready(plugin) = sandbox.load(&file, &options).unwrap() else { panic!("Stockade loads the plugin") };

    let long = "x".repeat(10_000);
    for function in ["greet", "count_vowels"] {
        for input in ["world", "", "Ünïcödé ✓ and emoji 🦀", "AEIOU aeiou", long.as_str()] {
            let expected: String = reference.call(function, input).expect("extism call");
            let outcome = plugin.call(function, &Input { bytes: input.as_bytes().to_vec(), args: vec![] });
            assert_eq!(outcome.code, stockade::Code::Ok, "{function}({input:.20}): {outcome:?}");
            assert_eq!(
                String::from_utf8(outcome.output.unwrap()).unwrap(),
                expected,
                "{function}({input:.20})"
            );
        }
    }
}
