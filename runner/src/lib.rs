//! Stockade: a security-focused sandbox and conformance kit for WebAssembly plugins.
//!
//! The pipeline, one module per stage: [`source`] reads a plugin, [`analyze`] decodes,
//! validates and analyses it, [`manifest`] and [`policy`] read what the plugin declares and
//! what the operator allows, [`capability`] maps imports to capabilities, [`vet()`] decides, and
//! [`report`] renders the decision for people and machines. [`sandbox`] runs a vetted plugin
//! under its limits, and [`conform`] runs the corpus of hostile and benign plugins against it.
//!
//! The modules are layers, and no two use each other (`tests/layers.rs` holds them to it):
//!
//! - leaves: [`code`], [`units`], [`document`], [`text`], [`fault`], [`capability`],
//!   [`features`], [`atomic`];
//! - the loader: [`source`], [`analyze`], [`manifest`], [`policy`], [`signature`], [`grant`],
//!   [`vet()`];
//! - the sandbox: [`budget`], [`log`], [`abi`], [`sandbox`];
//! - on top of it: [`worker`] (child processes), [`host`] (the host library), [`conform`]
//!   (the conformance kit), [`bench`](mod@bench);
//! - [`report`] renders any of them, and nothing below it uses it.

// A document error carries its origin, position and field so that the one line it prints
// says where; it is built once per bad document, so its size on the error path is no cost.
#![allow(clippy::result_large_err)]

pub mod abi;
pub mod analyze;
pub mod atomic;
pub mod bench;
pub mod budget;
pub mod capability;
pub mod code;
pub mod conform;
pub mod document;
pub mod fault;
pub mod features;
pub mod grant;
pub mod host;
pub mod log;
pub mod manifest;
pub mod policy;
pub mod report;
pub mod sandbox;
pub mod signature;
pub mod source;
pub mod text;
pub mod units;
pub mod vet;
pub mod worker;

pub use code::{Code, Severity};

/// The engine and validator versions, as pinned in the workspace (reports name them).
pub const WASMTIME_VERSION: &str = "48.0.8";
pub const WASMPARSER_VERSION: &str = "0.254.2";
pub use policy::Policy;
pub use vet::{Finding, VetOptions, Vetting, vet};

#[cfg(test)]
mod tests {
    /// The versions reports name are the ones the workspace pins.
    #[test]
    fn reported_versions_are_the_pinned_ones() {
        let workspace = include_str!("../../Cargo.toml");
        assert!(workspace.contains(&format!("wasmtime = {{ version = \"={}\"", super::WASMTIME_VERSION)));
        assert!(workspace.contains(&format!("wasmparser = {{ version = \"={}\"", super::WASMPARSER_VERSION)));
    }
}
