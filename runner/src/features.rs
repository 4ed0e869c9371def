//! The wasm features a policy can allow, as one table from policy key to wasmparser flag.
//!
//! The validator is configured from this table, and the engine will be too, so a module is
//! never accepted statically with a feature the runtime would then reject (or the reverse).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use wasmparser::WasmFeatures;

/// One policy key: its name, the wasmparser flags it turns on, and whether it is on when the
/// policy does not mention it.
pub struct Feature {
    pub key: &'static str,
    pub flags: WasmFeatures,
    pub default: bool,
}

const fn feature(key: &'static str, flags: WasmFeatures, default: bool) -> Feature {
    Feature { key, flags, default }
}

/// Standard WebAssembly (2.0 plus the finished proposals toolchains emit by default) is on;
/// proposals that change the sandbox's assumptions (shared memory, 64-bit memory, a GC heap,
/// unwinding) are off unless the policy turns them on.
pub const FEATURES: &[Feature] = &[
    feature("simd", WasmFeatures::SIMD, true),
    feature("relaxed-simd", WasmFeatures::RELAXED_SIMD, false),
    feature("bulk-memory", WasmFeatures::BULK_MEMORY, true),
    feature("reference-types", WasmFeatures::REFERENCE_TYPES, true),
    feature("multi-value", WasmFeatures::MULTI_VALUE, true),
    feature("tail-call", WasmFeatures::TAIL_CALL, true),
    feature("saturating-float-to-int", WasmFeatures::SATURATING_FLOAT_TO_INT, true),
    feature("sign-extension", WasmFeatures::SIGN_EXTENSION, true),
    feature("extended-const", WasmFeatures::EXTENDED_CONST, true),
    feature("function-references", WasmFeatures::FUNCTION_REFERENCES, false),
    feature("threads", WasmFeatures::THREADS, false),
    feature("memory64", WasmFeatures::MEMORY64, false),
    feature("multi-memory", WasmFeatures::MULTI_MEMORY, false),
    feature("gc", WasmFeatures::GC.union(WasmFeatures::GC_TYPES), false),
    feature("exceptions", WasmFeatures::EXCEPTIONS, false),
    feature("wide-arithmetic", WasmFeatures::WIDE_ARITHMETIC, false),
    feature("custom-page-sizes", WasmFeatures::CUSTOM_PAGE_SIZES, false),
    feature("component-model", WasmFeatures::COMPONENT_MODEL, true),
];

/// Always on: the MVP's own parts that wasmparser also models as flags. (GC_TYPES goes with
/// `gc`: wasmtime treats it as needing its GC runtime.)
const BASELINE: WasmFeatures = WasmFeatures::MUTABLE_GLOBAL.union(WasmFeatures::FLOATS);

/// The `[features]` table of a policy: a key per feature, unlisted ones at their default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FeatureSet {
    pub enabled: BTreeMap<&'static str, bool>,
}

impl Default for FeatureSet {
    fn default() -> FeatureSet {
        FeatureSet { enabled: FEATURES.iter().map(|f| (f.key, f.default)).collect() }
    }
}

impl FeatureSet {
    pub fn is_enabled(&self, key: &str) -> bool {
        self.enabled.get(key).copied().unwrap_or(false)
    }

    /// The wasmparser feature set for validation under this policy.
    pub fn wasm_features(&self) -> WasmFeatures {
        FEATURES
            .iter()
            .filter(|f| self.is_enabled(f.key))
            .fold(BASELINE, |acc, f| acc.union(f.flags))
    }

    /// The features this set leaves off, by key.
    pub fn denied(&self) -> impl Iterator<Item = &'static Feature> + '_ {
        FEATURES.iter().filter(|f| !self.is_enabled(f.key))
    }
}

impl<'de> Deserialize<'de> for FeatureSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FeatureSet, D::Error> {
        let listed = BTreeMap::<String, bool>::deserialize(deserializer)?;
        let mut set = FeatureSet::default();
        for (key, on) in listed {
            let Some(feature) = FEATURES.iter().find(|f| f.key == key) else {
                let known: Vec<_> = FEATURES.iter().map(|f| f.key).collect();
                return Err(serde::de::Error::custom(format!(
                    "unknown feature `{key}` (known: {})",
                    known.join(", ")
                )));
            };
            set.enabled.insert(feature.key, on);
        }
        Ok(set)
    }
}

/// The features wasmtime 48's baseline compiler, Winch, compiles on every target it runs on:
/// the rest (SIMD, which needs AVX and is partly implemented; tail calls, GC, function
/// references, exceptions, relaxed SIMD, threads …) go to Cranelift. A Winch engine is built
/// with the policy's features within these, so that it never meets what it cannot compile.
pub const WINCH_FEATURES: WasmFeatures = BASELINE
    .union(WasmFeatures::BULK_MEMORY)
    .union(WasmFeatures::REFERENCE_TYPES)
    .union(WasmFeatures::MULTI_VALUE)
    .union(WasmFeatures::SATURATING_FLOAT_TO_INT)
    .union(WasmFeatures::SIGN_EXTENSION)
    .union(WasmFeatures::EXTENDED_CONST);

/// Whether Winch compiles the operators of `proposal` (as wasmparser names proposals in its
/// operator table): the operator-level face of [`WINCH_FEATURES`], read by the analysis.
pub const fn winch_compiles(proposal: &str) -> bool {
    matches!(
        proposal.as_bytes(),
        b"mvp" | b"bulk_memory" | b"reference_types" | b"saturating_float_to_int" | b"sign_extension"
    )
}
