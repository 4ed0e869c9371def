//! The host library: many plugins in one process, loaded together (dependencies, conflicts,
//! load order), called from many threads, given events, reloaded while in use.

pub mod discover;
pub mod plan;
