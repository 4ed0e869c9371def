//! Rendering decisions for people (human), programs (JSON) and code scanning (SARIF), all
//! from the one [`Finding`](crate::vet::Finding) model.

pub mod human;
pub mod inspect;
pub mod run;
pub mod bench;
pub mod json;
pub mod plan;
pub mod verify;
pub mod sarif;
pub mod conformance;
