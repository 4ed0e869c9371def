//! Plugin ABIs implemented natively in the host.

pub mod extism;
pub mod http;
pub mod user;

