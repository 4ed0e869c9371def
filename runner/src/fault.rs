//! What a host function says when it refuses a call: one type for every layer that charges or
//! checks on the plugin's behalf (the budget, log lines, the ABIs, the sandbox), so that none of
//! them depends on another for it.

/// Why a host function refused a call. Returned to wasmtime as the call's error, so the call
/// traps, and classified into a runtime code afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostFault {
    /// A pointer, length or handle outside what the plugin owns.
    #[error("bad host call: {0}")]
    BadCall(String),
    /// Growing the plugin's memory (linear or Extism) past `limits.memory`.
    #[error("memory limit: {0}")]
    MemoryLimit(String),
    /// Output, logs or captured stdio past `limits.output`.
    #[error("output too large: {0}")]
    OutputTooLarge(String),
    /// A request the grants do not allow (an HTTP host, a path).
    #[error("host call denied: {0}")]
    Denied(String),
    /// A host call that was still waiting when the call's deadline came (HTTP, a WASI call).
    #[error("timeout: {0}")]
    Timeout(String),
    /// A function the host project registered (`host:NAME`) returned an error.
    #[error("{0}")]
    HostFunction(String),
}

impl HostFault {
    pub fn code(&self) -> crate::Code {
        match self {
            HostFault::BadCall(_) => crate::Code::BadHostCall,
            HostFault::MemoryLimit(_) => crate::Code::MemoryLimit,
            HostFault::OutputTooLarge(_) => crate::Code::OutputTooLarge,
            HostFault::Denied(_) => crate::Code::HostCallDenied,
            HostFault::Timeout(_) => crate::Code::Timeout,
            HostFault::HostFunction(_) => crate::Code::Trap,
        }
    }
}
