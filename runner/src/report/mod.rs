//! Rendering decisions for people (human), programs (JSON) and code scanning (SARIF), all
//! from the one [`Finding`](crate::vet::Finding) model.

pub mod escape;
pub mod human;
pub mod inspect;
pub mod run;
pub mod json;
pub mod sarif;
pub mod conformance;

/// A path as reports show it: with forward slashes, so output is the same on every OS.
pub fn display_path(path: &std::path::Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
