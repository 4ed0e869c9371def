//! The catalog of finding and outcome codes: one row per code.
//!
//! Codes are part of Stockade's public contract (JSON, SARIF rule ids, `[severity]` overrides,
//! corpus expectations). They are never renamed; a new code is a new row.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How serious a finding is. Any `error` makes the verdict `fail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the pipeline a code is produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Decided from the bytes, manifest, signature and policy, before anything is compiled.
    Static,
    /// Produced while compiling, instantiating or calling the plugin.
    Runtime,
    /// Decided when a set of plugins is loaded together (`stockade plan`, `stockade::Host`).
    Plan,
}

macro_rules! codes {
    ($(
        $variant:ident = $name:literal, $stage:ident, $severity:ident, overridable: $overridable:literal,
        $summary:literal,
        $explanation:literal;
    )*) => {
        /// A stable, kebab-case code naming one kind of finding or runtime outcome.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant),* }

        impl Code {
            /// Every code, in catalog order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name),* }
            }

            pub fn stage(self) -> Stage {
                match self { $(Code::$variant => Stage::$stage),* }
            }

            /// The severity a finding with this code has unless the policy overrides it.
            pub fn default_severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity),* }
            }

            /// Whether a policy may change this code's severity. Codes that mean "this cannot
            /// be loaded at all" are not: downgrading them would only move the failure later.
            pub fn overridable(self) -> bool {
                match self { $(Code::$variant => $overridable),* }
            }

            /// One line: what the code means.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary),* }
            }

            /// A paragraph: why it matters and what to do about it.
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$variant => $explanation),* }
            }
        }

        impl FromStr for Code {
            type Err = UnknownCode;
            fn from_str(s: &str) -> Result<Code, UnknownCode> {
                match s {
                    $($name => Ok(Code::$variant),)*
                    _ => Err(UnknownCode(s.to_string())),
                }
            }
        }
    };
}

codes! {
    Malformed = "malformed", Static, Error, overridable: false,
        "the module's bytes cannot be decoded as WebAssembly (binary or text)",
        "The file is not a WebAssembly binary or text module that can be decoded: a bad magic \
         number, a truncated section, an invalid LEB128, or a syntax error in a .wat file. The \
         finding carries the byte offset where decoding stopped. Rebuild the plugin; if the \
         file was downloaded, check that it was not truncated or altered.";
    Invalid = "invalid", Static, Error, overridable: false,
        "the module decodes but fails WebAssembly validation",
        "The module decodes, but does not validate even with every wasm feature enabled: a \
         type mismatch, an out-of-range index, an operator used wrongly. No engine will run it. \
         The offset points at the failing instruction or section. This usually means a broken \
         or hand-edited module.";
    FeatureDenied = "feature-denied", Static, Error, overridable: false,
        "the module uses a wasm feature the policy does not allow",
        "The module is valid WebAssembly, but only with a proposal that the policy's [features] \
         table leaves off (for example threads, memory64, GC or exceptions). Either build the \
         plugin without that feature, or, if the host can support it, enable the feature in the \
         policy. The engine is configured from the same table, so overriding this severity \
         would not make the plugin run.";
    UnknownImport = "unknown-import", Static, Error, overridable: false,
        "an import that maps to no capability in the catalog",
        "Every import must map to a capability in Stockade's catalog (the Extism kernel and \
         host functions, WASI preview 1, the component model's wasi:* interfaces, host \
         functions under extism:host/user). This import matches none of them, so no host \
         would provide it and the plugin could not be instantiated. Remove the import, or if \
         it is a function your host provides, register it as a host function and import it \
         from `extism:host/user`.";
    UndeclaredCapability = "undeclared-capability", Static, Error, overridable: true,
        "the module uses a capability its manifest does not declare",
        "An import needs a capability that the plugin's manifest does not list in \
         `capabilities`. A manifest is the plugin's promise of what it will do; using more \
         than it declares is either a mistake or a lie. Add the capability to the manifest \
         (and check the policy grants it), or remove the import.";
    CapabilityDenied = "capability-denied", Static, Error, overridable: false,
        "the plugin needs or declares a capability the policy does not grant",
        "The plugin declares (or, without a manifest, imports) a capability that the policy \
         does not grant. The plugin will not be linked against it. Either the plugin must do \
         without it, or the operator must grant it in the policy's [capabilities] table \
         (`allow` for plain capabilities, `http` for hosts, `fs` for directories, `host` for \
         host functions).";
    UnusedCapability = "unused-capability", Static, Warning, overridable: true,
        "the manifest declares a capability the module never uses",
        "The manifest declares a capability, but no import of the module needs it. Asking for \
         authority that is not used goes against least privilege and makes reviews harder. \
         Remove it from the manifest.";
    MissingExport = "missing-export", Static, Error, overridable: true,
        "a function the manifest lists in `exports` is not exported by the module",
        "The manifest promises that the host can call this function, but the module does not \
         export a function of that name. Export it, or remove it from the manifest.";
    ModuleTooLarge = "module-too-large", Static, Error, overridable: true,
        "the module is larger than the policy's `module-size` limit",
        "The module's size in bytes exceeds `limits.module-size`. Large modules cost compile \
         time and memory for every host that loads them; the limit keeps the loader itself \
         bounded, so nothing else is analysed. Strip debug sections and optimise for size, or \
         raise the limit.";
    TooManyFunctions = "too-many-functions", Static, Error, overridable: true,
        "the module defines more functions than the policy's `functions` limit",
        "The number of functions defined in the module exceeds `limits.functions`. Very many \
         functions are a compile-time bomb: compile time and code size grow with them.";
    FunctionTooLarge = "function-too-large", Static, Error, overridable: true,
        "a function body is larger, or has more locals, than the policy allows",
        "A function body exceeds `limits.function-size` bytes, or declares more than \
         `limits.locals` locals. Huge bodies, deep nesting and masses of locals are the usual \
         shapes of a compiler bomb: a module that keeps the compiler busy or hungry. The \
         offset points at the function body.";
    TooManyTypes = "too-many-types", Static, Error, overridable: false,
        "the module declares more types than the policy's `types` limit",
        "The validator keeps a record of every type a module declares, so a module of a \
         million types costs the loader about 100 MB. `limits.types` caps them (at most \
         100,000); the module is refused from its type section's count, before anything of it \
         is validated.";
    TooManyImports = "too-many-imports", Static, Error, overridable: false,
        "the module has more imports than the policy's `imports` limit",
        "Every import costs the loader (and the validator) a record: a module of a million \
         imports once took 250 MB to vet. `limits.imports` caps them (at most 100,000); the \
         module is refused from its import section's count, before anything of it is \
         validated, which is also why this cannot be lowered to a warning.";
    TooManyExports = "too-many-exports", Static, Error, overridable: false,
        "the module has more exports than the policy's `exports` limit",
        "Every export costs the loader a record; `limits.exports` caps them (at most 100,000).";
    TooManyGlobals = "too-many-globals", Static, Error, overridable: false,
        "the module defines more globals than the policy's `globals` limit",
        "Every global is a record in the validator and the compiler and a slot in every \
         instance: a module of a million globals took 721 MB to load. `limits.globals` caps them \
         (at most 100,000); the module is refused from its global section's count, before any \
         of it is validated.";
    TooManySegments = "too-many-segments", Static, Error, overridable: false,
        "the module has more data or element segments than the policy's `segments` limit",
        "Every data and element segment is a record in the validator and the compiler, and is \
         kept by every instance until it is dropped: 100,000 data segments took hundreds of \
         megabytes to load and compile. `limits.segments` caps each kind (at most 100,000); the \
         module is refused from the section's count, before any of it is validated.";
    FunctionTooComplex = "function-too-complex", Static, Error, overridable: true,
        "a function's control flow is over the policy's `function-control-flow` limit",
        "Compiling a function costs memory in proportion to its control flow (blocks, ifs, \
         loops, branch-table targets), not its size: a few hundred kilobytes of loops can make \
         the compiler take gigabytes and seconds. `limits.function-control-flow` caps it \
         (a block counts 1, an if 2, a loop 4, eight br_table targets 1), so that compiling \
         stays within the policy's memory limit plus a fixed overhead. Split the function, or \
         raise the limit on a host with memory to spare.";
    ModuleTooComplex = "module-too-complex", Static, Error, overridable: true,
        "the control flow of all functions together is over the policy's `control-flow` limit",
        "The compiled code and its metadata grow with the control flow of the whole module and \
         with its number of functions; `limits.control-flow` caps the sum over all functions, in \
         the units of `function-control-flow`, plus 6 units for every function (its code, symbol \
         and metadata are kept while the module compiles) and 10 more for every function that \
         is exported, in a table or referenced by `ref.func` (a trampoline is compiled for it).";
    EngineLimit = "engine-limit", Static, Error, overridable: false,
        "valid WebAssembly beyond an implementation limit of the engine",
        "The module validates, but uses more of something than the engine can compile (for \
         example a `br_table` with more than 65,520 targets, Cranelift's limit). No policy \
         can make it run here; the plugin must be rebuilt.";
    MemoryTooLarge = "memory-too-large", Static, Error, overridable: true,
        "the module's initial linear memory exceeds the policy's `memory` limit",
        "What instantiating the module takes from `limits.memory` is larger than the limit, so \
         it could never be instantiated under this policy: the initial sizes of its linear \
         memories, 8 bytes for each initial table element, and the instance's own state (a few \
         KiB, and 16 bytes a global, 24 an imported function, 32 a function reference). Lower \
         the initial memory (for Rust, the linker's `--initial-memory`), or raise the limit.";
    TableTooLarge = "table-too-large", Static, Error, overridable: true,
        "the module's initial tables exceed the policy's `tables` limit",
        "The sum of the initial sizes of the module's tables is larger than `limits.tables` \
         elements, so it could never be instantiated under this policy.";
    DataTooLarge = "data-too-large", Static, Error, overridable: true,
        "the module's data segments exceed the policy's `data-size` limit",
        "The data segments add up to more than `limits.data-size` bytes. Data segments are \
         copied into memory at every instantiation; very large ones are a memory and time \
         bomb.";
    ImportTypeMismatch = "import-type-mismatch", Static, Error, overridable: false,
        "a host function is imported with a type the host does not define it with",
        "The import names a function the host provides (an Extism kernel function, say), but \
         with other parameter or result types than the host's. Such an import cannot be \
         linked, so the plugin could never be instantiated. Rebuild the plugin against the \
         official PDK, or fix the hand-written import's type.";
    TooManyCustomSections = "too-many-custom-sections", Static, Error, overridable: true,
        "the module has more custom sections than the policy's `custom-sections` limit",
        "Custom sections carry names, debug information and tool metadata; the engine ignores \
         them, but every tool that reads the module pays for each one. A module of millions of \
         tiny custom sections is a resource attack on loaders. Strip the module (for example \
         `wasm-tools strip`), or raise `limits.custom-sections`.";
    CustomSectionsTooLarge = "custom-sections-too-large", Static, Error, overridable: true,
        "the module's custom sections add up to more than the policy's `custom-section-size`",
        "The custom sections (names, debug information, producers, embedded manifests) add up \
         to more bytes than `limits.custom-section-size` allows. Strip debug information from \
         release builds, or raise the limit.";
    StartFunction = "start-function", Static, Warning, overridable: true,
        "the module has a start function, which runs during instantiation",
        "A start function runs as soon as the module is instantiated, before the host calls \
         any export. Stockade runs it under the same time, fuel and memory limits as a call, \
         but a plugin ABI has no need for it (Extism and WASI commands use exports). Policies \
         that want no code to run at load time can make this an error.";
    ManifestInvalid = "manifest-invalid", Static, Error, overridable: false,
        "the plugin's manifest cannot be read: bad syntax, wrong type, unknown field",
        "The manifest (plugin.toml beside the module, or the `stockade.manifest` custom \
         section) does not parse: bad TOML or JSON, a field of the wrong type, a field that \
         does not exist, a version that is not semver, or a capability that is not in the \
         catalog. The message names the file, line and field. Without a valid manifest \
         nothing the plugin declares can be trusted, so the plugin is checked as if it \
         declared exactly what it imports.";
    HostIncompatible = "host-incompatible", Static, Error, overridable: true,
        "the manifest's `host` range does not include this host's API version",
        "The manifest says which versions of the host API the plugin works with (`host`, a \
         semver requirement). The host API version of this host is outside that range, so \
         the plugin may call host functions that behave differently or do not exist.";
    SignatureMissing = "signature-missing", Static, Error, overridable: true,
        "the policy requires a signature and none was found beside the module",
        "The policy's [signatures] table says `required = true`, and neither \
         `PLUGIN.sig` (cosign's blob signature) nor `PLUGIN.sigstore.json` (a Sigstore \
         bundle) exists beside the module. Sign the plugin with a key the policy trusts \
         (`stockade sign PLUGIN --key KEY`, after `stockade annotate` so that its manifest \
         is signed with it) or keyless with Sigstore, and ship the signature with it.";
    SignatureInvalid = "signature-invalid", Static, Error, overridable: true,
        "a signature beside the plugin is broken or does not verify against its bytes",
        "A signature file was found and it does not hold: the module (its code, or the \
         embedded `stockade.manifest` section, which the signature covers with the code) \
         changed after signing; the file is not a signature or bundle at all; it was made \
         for another file; a Sigstore bundle's certificate does not chain to the trusted \
         root, or its transparency-log entry, inclusion proof or timestamps do not verify. \
         One broken signature fails the plugin even when another is good: something beside \
         it claims a signature it does not have. A blob signature (`.sig`) that no key of \
         the policy verifies is reported here too, since it does not say which key made it; \
         the bundle `stockade sign` writes beside it names its key, so that a file signed \
         with another key is told apart as `signer-untrusted`. Check with `stockade verify` \
         and `stockade inspect`, which show each signature and what was checked.";
    SignerUntrusted = "signer-untrusted", Static, Error, overridable: true,
        "the signatures are valid but not by the signers the policy trusts",
        "The signatures beside the plugin are not broken, but they do not meet the rule in \
         the policy's [signatures.signers] table: the key (a `pubKey` entry) or the \
         certificate's identity and issuer (a `keyless` entry) is not one the rule names, \
         an `allOf` lacks one of its signers, or an `anyOf` has fewer than `minimumMatches` \
         (one signer counts once, however many files it signed). A policy that requires a \
         signature but names no signer trusts none. Have the plugin signed by a trusted \
         signer, or add its signer to the rule.";
    CompileTimeout = "compile-timeout", Static, Error, overridable: false,
        "compiling the module took longer than the policy allows",
        "Compiling the module to machine code did not finish within the policy's compile \
         time limit. Modules crafted to make the optimiser work super-linearly are a known \
         denial-of-service; this limit keeps a host responsive.";

    Ok = "ok", Runtime, Note, overridable: false,
        "the call returned normally",
        "The call completed within every limit and the plugin reported no error.";
    PluginError = "plugin-error", Runtime, Error, overridable: false,
        "the plugin returned an error",
        "The plugin ran to completion but reported failure (a non-zero Extism return code, \
         with its error message when it set one).";
    Trap = "trap", Runtime, Error, overridable: false,
        "the plugin trapped (unreachable, out-of-bounds access, division by zero, …)",
        "The plugin executed an operation that WebAssembly defines as a trap. The outcome \
         carries the trap kind. The instance is discarded; the next call gets a fresh one.";
    Timeout = "timeout", Runtime, Error, overridable: false,
        "the call ran longer than the policy's `timeout`",
        "The call was interrupted at its wall-clock deadline: by the epoch checks in its code, or, where the process is the boundary (`run`, conformance and out-of-process workers), by the process watchdog, which reports the call and ends the process.";
    FuelExhausted = "fuel-exhausted", Runtime, Error, overridable: false,
        "the call used more instructions than the policy's `fuel`",
        "The call was stopped when it had executed the number of instructions the policy's \
         `fuel` allows.";
    MemoryLimit = "memory-limit", Runtime, Error, overridable: false,
        "the plugin tried to grow its memory past the policy's `memory` limit",
        "A memory.grow (or an instantiation) would have taken the plugin's linear memories \
         past `limits.memory`; it was refused.";
    TableLimit = "table-limit", Runtime, Error, overridable: false,
        "the plugin tried to grow its tables past the policy's `tables` limit",
        "A table.grow (or an instantiation) would have taken the plugin's tables past \
         `limits.tables` elements; it was refused.";
    StackOverflow = "stack-overflow", Runtime, Error, overridable: false,
        "the plugin exhausted its wasm stack",
        "The plugin recursed (directly or indirectly) deeper than the policy's `stack` allows.";
    OutputTooLarge = "output-too-large", Runtime, Error, overridable: false,
        "the plugin produced more output than the policy's `output` limit",
        "The plugin's output (or captured stdout/stderr, or logs) exceeded `limits.output`.";
    InputTooLarge = "input-too-large", Runtime, Error, overridable: false,
        "the input is larger than the policy's `input` limit",
        "The input given to the call exceeds `limits.input`; the plugin was not called.";
    GrantExposesCache = "grant-exposes-cache", Runtime, Error, overridable: false,
        "a directory grant reaches the compiled-module cache or its key",
        "The plugin would be given a directory that contains, or lies inside, the directory \
         where compiled modules are cached or the one holding the key that authenticates them. \
         A plugin that could read the key, or write beside the artifacts, could make a later run \
         of another plugin execute native code of its choosing, so the plugin is refused at load. \
         Grant a directory apart from both, or point the cache elsewhere (`--cache-dir`, \
         `STOCKADE_CACHE_DIR`).";
    HostCallDenied = "host-call-denied", Runtime, Error, overridable: false,
        "the plugin called a host function it was not granted, or to a target not allowed",
        "A host function refused the request: an HTTP request to a host outside the \
         allowlist, a path outside the preopened directories, or a capability that is not \
         granted.";
    BadHostCall = "bad-host-call", Runtime, Error, overridable: false,
        "a host function was given an invalid pointer, length or handle",
        "The plugin passed a host function an offset, length or handle outside what it owns. \
         The host refuses the call instead of reading or writing out of bounds.";
    Exit = "exit", Runtime, Error, overridable: false,
        "the WASI program exited with a non-zero status",
        "The WASI program called proc_exit with a non-zero code.";
    Crash = "crash", Runtime, Error, overridable: false,
        "the host process running the case died: a panic, an abort, a signal, the OOM killer",
        "`stockade conform` runs every case in a worker process. This one ended without \
         answering (a panic, an abort, a segmentation fault, the kernel's OOM killer, a file \
         past the 256 MiB cap) or answered with something that is not the worker protocol. \
         The case fails; the other cases run on in fresh workers. The case's report carries \
         how the worker ended and the end of its stderr.";
    Hang = "hang", Runtime, Error, overridable: false,
        "the host process running the case did not answer within the case's hard wall cap",
        "The worker running the case gave no answer within the hard cap (the time its calls may \
         take, each up to the timeout plus a slack, plus each module's compile timeout and a \
         slack for loading) and was killed. A \
         host call that blocks past the deadline, a deadline that never fires and a deadlock \
         in the host all end here.";
    HostRssExceeded = "host-rss-exceeded", Runtime, Error, overridable: false,
        "the host process's resident memory passed the case's bound",
        "The peak resident set size of the process running the case, as the kernel counts it \
         (`wait4`, or `VmHWM` reset per case), passed the case's `max-host-rss` bound (by \
         default the policy's memory limit per plugin plus a fixed overhead). This is memory \
         the host spent for the plugin that its limits did not charge. Past twice the bound \
         the worker is killed.";
    Busy = "busy", Runtime, Error, overridable: false,
        "every instance of the plugin stayed busy for the call's whole timeout",
        "A host (`stockade::Host`) gives each plugin a bounded set of instances for concurrent \
         calls. All of them were taken by other calls for as long as this call may last (the \
         policy's timeout), so it was not run. Raise the host's instances per plugin, or call \
         the plugin less often at once.";
    PluginUnreadable = "plugin-unreadable", Plan, Error, overridable: false,
        "a file of the plugin set cannot be read as a plugin",
        "A module file in the directory being planned cannot be read: it is not a regular file \
         (a FIFO, a device, a socket), a link that leads nowhere or in a loop, or it cannot be \
         opened. It is refused on its own, and the rest of the set is planned without it. \
         Replace it with the plugin's module, or remove it.";
    DependencyMissing = "dependency-missing", Plan, Error, overridable: false,
        "a plugin depends on one that is not there or was not loaded",
        "The manifest's [dependencies] names a plugin that is not in the set being loaded, or \
         that was itself refused (its own problem is reported beside this one). The plugin \
         is not loaded: it would call into something that does not exist.";
    DependencyIncompatible = "dependency-incompatible", Plan, Error, overridable: false,
        "a plugin depends on a version of another that the set does not have",
        "The manifest's [dependencies] gives a semver requirement that the version of the \
         plugin present does not meet. Install a matching version, or widen the requirement.";
    DependencyCycle = "dependency-cycle", Plan, Error, overridable: false,
        "plugins that must load before one another in a circle",
        "The dependencies, `before` and `after` of these plugins form a cycle (the message \
         names the whole circle), so no load order exists. None of them is loaded. Drop one \
         of the orderings.";
    Conflict = "conflict", Plan, Error, overridable: false,
        "two plugins cannot be loaded together",
        "A plugin's manifest lists another present plugin in `conflicts`, two plugins have the \
         same name, or two plugins claim the same event type exclusively. The plugin that \
         declared the conflict (or the later exclusive claim) is not loaded.";
}

/// A string that names no code in the catalog.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown code `{0}` (run `stockade explain` for the list)")]
pub struct UnknownCode(pub String);

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Code, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &code in Code::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate code {name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{name} is not kebab-case"
            );
            assert_eq!(name.parse::<Code>().unwrap(), code);
            assert!(code.summary().len() < 100, "{name}: summary must fit on one line");
        }
        assert!("no-such-code".parse::<Code>().is_err());
    }
}
