//! Criterion benches live in benches/; see budgets.toml.
