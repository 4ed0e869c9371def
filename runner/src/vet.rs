//! The static decision: may this plugin load under this policy, and if not, why.
//!
//! Everything here is decided from the bytes, the manifest, the signature files and the policy;
//! nothing is compiled or run.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analyze::{self, Analysis, Import, Rejection, ValidatedBodies};
use crate::capability::{self, Family, ImportClass, Need};
use crate::code::{Code, Severity};
use crate::document::{DocumentError, Origin};
use crate::manifest::{MANIFEST_SECTION, Manifest};
use crate::policy::Policy;
use crate::signature::{self, FileVerdict, Outcome, SignatureFile};
use crate::source::{PluginFile, ReadError, Sha256};

/// The host API version the `stockade` CLI offers; a host embedding Stockade sets its own.
pub const HOST_API_VERSION: semver::Version = semver::Version::new(1, 0, 0);

/// Repeated findings of one kind past this many are summarised in one more.
const MAX_REPEATED_FINDINGS: usize = 5;

/// The import a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportRef {
    pub module: String,
    pub name: String,
}

/// A position in a text file (the manifest), for findings that are not about module bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextLocation {
    pub path: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// One thing the loader found. Serialises to the `findings[]` objects of `stockade.vet/1`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Byte offset in the module (of its binary encoding, for a text module that encodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// What to do about it, for people (human and SARIF output).
    #[serde(skip)]
    pub help: Option<String>,
    /// Set when the finding is about a file other than the module (the manifest).
    #[serde(skip)]
    pub location: Option<TextLocation>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
}

/// Where the manifest came from, or why there is none.
#[derive(Clone, Debug)]
pub enum ManifestStatus {
    /// Neither a file nor a section: the plugin is taken to declare exactly what it imports.
    Absent,
    Loaded { origin: Origin, manifest: Box<Manifest> },
    Invalid(DocumentError),
}

impl ManifestStatus {
    pub fn manifest(&self) -> Option<&Manifest> {
        match self {
            ManifestStatus::Loaded { manifest, .. } => Some(manifest),
            _ => None,
        }
    }
}

/// The result of vetting one plugin.
#[derive(Clone, Debug)]
pub struct Vetting {
    pub path: PathBuf,
    pub sha256: Sha256,
    pub size: usize,
    pub findings: Vec<Finding>,
    /// `None` when the module could not be decoded or was not analysed (too large).
    pub analysis: Option<Analysis>,
    pub manifest: ManifestStatus,
    /// The signature files beside the module and what each showed.
    pub signatures: Vec<signature::Checked>,
    pub policy_name: String,
}

impl Vetting {
    pub fn verdict(&self) -> Verdict {
        if self.findings.iter().any(|f| f.severity == Severity::Error) { Verdict::Fail } else { Verdict::Pass }
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }
}

/// Keeps what validating a module's bodies found, by the module's cache key
/// ([`PluginFile::cache_key`]) and the features it
/// was validated under, for a later vetting of the same bytes. It is recorded only for bytes
/// that validated in full, and only a store that can prove it wrote what it hands back may
/// implement this (the compiled-module cache, under its private key): what it recalls stands
/// in for validating the module again (it is still decoded and analysed, under the policy's
/// caps).
pub trait ValidationMemo: std::fmt::Debug + Sync {
    fn recall(&self, cache_key: &str, features: wasmparser::WasmFeatures) -> Option<ValidatedBodies>;
    fn record(&self, cache_key: &str, features: wasmparser::WasmFeatures, validated: &ValidatedBodies);
}

/// How to vet.
#[derive(Clone, Debug)]
pub struct VetOptions<'a> {
    pub policy: &'a Policy,
    pub host_api: semver::Version,
    /// A manifest the operator named explicitly; otherwise the section, then `plugin.toml`.
    pub manifest: Option<&'a Path>,
    /// A manifest the host already holds (mapped from an Extism manifest), with where it came
    /// from: before everything else.
    pub given_manifest: Option<(&'a Manifest, &'a Origin)>,
    /// Where bodies validated before are remembered (a cached run); `None` validates them all.
    pub memo: Option<&'a dyn ValidationMemo>,
}

impl<'a> VetOptions<'a> {
    pub fn new(policy: &'a Policy) -> VetOptions<'a> {
        VetOptions { policy, host_api: HOST_API_VERSION, manifest: None, given_manifest: None, memo: None }
    }
}

/// Collects findings, applying the policy's severity overrides.
struct Findings<'a> {
    policy: &'a Policy,
    list: Vec<Finding>,
}

impl Findings<'_> {
    fn add(&mut self, code: Code, message: impl Into<String>) -> Option<&mut Finding> {
        let severity = self.policy.severity_of(code)?;
        let message = message.into();
        self.list.push(Finding {
            code,
            severity,
            // Messages quote what the plugin chose (names, manifest values): each is bounded, so
            // that a report is O(findings) whatever the module holds.
            message: crate::text::shorten(&message, MAX_MESSAGE_CHARS),
            offset: None,
            import: None,
            capability: None,
            help: None,
            location: None,
        });
        self.list.last_mut()
    }
}

impl Finding {
    fn at(&mut self, offset: usize) -> &mut Finding {
        self.offset = Some(offset);
        self
    }
    fn about_import(&mut self, import: &Import) -> &mut Finding {
        self.offset = Some(import.offset);
        self.import = Some(ImportRef { module: import.module.clone(), name: import.name.clone() });
        self
    }
    fn about_capability(&mut self, capability: impl ToString) -> &mut Finding {
        let capability = capability.to_string();
        self.capability = Some(crate::text::shorten(&capability, crate::analyze::MAX_LISTED_NAME_CHARS));
        self
    }
    fn help(&mut self, help: impl Into<String>) -> &mut Finding {
        let help = help.into();
        self.help = Some(crate::text::shorten(&help, MAX_MESSAGE_CHARS));
        self
    }
    fn in_document(&mut self, origin: &Origin, line: Option<usize>, column: Option<usize>) -> &mut Finding {
        match origin {
            Origin::File(path) => self.location = Some(TextLocation { path: path.clone(), line, column }),
            Origin::Section { data_offset, .. } => {
                self.offset.get_or_insert(*data_offset);
            }
            Origin::Builtin(_) => {}
        }
        self
    }
}

/// Vets one plugin. Only the operator's own inputs (an explicit manifest path that cannot be
/// read) are errors; everything wrong with the plugin is a finding.
pub fn vet(file: &PluginFile, options: &VetOptions<'_>) -> Result<Vetting, ReadError> {
    let policy = options.policy;
    let mut findings = Findings { policy, list: Vec::new() };
    let mut vetting = Vetting {
        path: file.path.clone(),
        sha256: file.sha256(),
        size: file.size() as usize,
        findings: Vec::new(),
        analysis: None,
        manifest: ManifestStatus::Absent,
        signatures: Vec::new(),
        policy_name: policy.name().to_string(),
    };

    let limit = policy.limits.module_size;
    if file.size() > limit.get() {
        // The limit protects the loader itself, so nothing further is read.
        if let Some(f) = findings.add(
            Code::ModuleTooLarge,
            format!("the module is {} bytes; policy `{}` allows at most {limit}", file.size(), policy.name()),
        ) {
            f.help("strip custom sections (debug info, names) and optimise for size, or raise limits.module-size");
        }
        vetting.findings = findings.list;
        return Ok(vetting);
    }
    // The text parser holds every token and a tree of the whole module at once, up to about 24
    // times the text in memory: a text module is bounded on its own, before it is parsed, so
    // that the loader's memory stays bounded.
    if file.is_text() && file.size() > MAX_TEXT_MODULE_BYTES {
        if let Some(f) = findings.add(
            Code::ModuleTooLarge,
            format!("the text module is {} bytes; a text module may have at most {MAX_TEXT_MODULE_BYTES}", file.size()),
        ) {
            f.help("compile it to a binary module (`wasm-tools parse`), which is bounded by limits.module-size");
        }
        vetting.findings = findings.list;
        return Ok(vetting);
    }

    // The SHA-256 does not depend on the analysis, so a module big enough to be validated on
    // the thread pool is hashed there too, beside its parsing: hashed first on this thread,
    // sql.js's 688 KB kept both cores waiting 0.45 ms. Below the threshold the hand-off costs
    // more than it saves (measured with benches/vet: a 55 KB module went from 1.22x to 1.39x of
    // bare validation), and the digest is taken when a report shows it. With a memo (the
    // sandbox loading the plugin) it is not taken here: the memo is keyed by the cache key, and
    // a run's report does not show the SHA-256.
    let analysis = if let Some(memo) = options.memo {
        decode(file, policy, Some(memo), &mut findings)
    } else if file.bytes().len() >= analyze::PARALLEL_MODULE_BYTES {
        let sha256 = &vetting.sha256;
        rayon::join(|| { let _ = sha256.as_str(); }, || decode(file, policy, None, &mut findings)).1
    } else {
        decode(file, policy, None, &mut findings)
    };
    vetting.analysis = analysis;
    vetting.manifest = match options.given_manifest {
        Some((manifest, origin)) => ManifestStatus::Loaded { origin: origin.clone(), manifest: Box::new(manifest.clone()) },
        None => find_manifest(file, options.manifest, vetting.analysis.as_ref())?,
    };
    match &vetting.manifest {
        ManifestStatus::Invalid(error) => {
            if let Some(f) = findings.add(Code::ManifestInvalid, error.to_string()) {
                f.offset = error.offset;
                f.in_document(&error.origin, error.line, error.column)
                    .help("fix the manifest; until then the plugin is checked as if it declared exactly what it imports");
            }
        }
        ManifestStatus::Loaded { origin, manifest } => check_manifest(manifest, origin, options, &mut findings),
        ManifestStatus::Absent => {}
    }
    vetting.signatures = check_signatures(file, policy, &mut findings);
    if let Some(analysis) = &vetting.analysis {
        let declared = vetting.manifest.manifest().map(|m| (m, manifest_origin(&vetting.manifest)));
        check_capabilities(analysis, declared, policy, &mut findings);
        if let Some((manifest, origin)) = declared {
            check_exports(analysis, manifest, origin, &mut findings);
        }
        check_sizes(analysis, policy, &mut findings);
    }
    vetting.findings = findings.list;
    Ok(vetting)
}

fn manifest_origin(status: &ManifestStatus) -> &Origin {
    match status {
        ManifestStatus::Loaded { origin, .. } => origin,
        _ => unreachable!("only called for a loaded manifest"),
    }
}

fn decode(
    file: &PluginFile,
    policy: &Policy,
    memo: Option<&dyn ValidationMemo>,
    findings: &mut Findings<'_>,
) -> Option<Analysis> {
    let limits = &policy.limits;
    let caps = analyze::SectionCaps { types: limits.types, imports: limits.imports, exports: limits.exports, globals: limits.globals, segments: limits.segments };
    let features = policy.features.wasm_features();
    let recalled = memo.and_then(|memo| memo.recall(file.cache_key(), features));
    let analyzed = file.binary().and_then(|bytes| analyze::analyze_within(&bytes, &policy.features, &caps, recalled.as_ref()));
    let rejection = match analyzed {
        Ok(analysis) => {
            if let Some(memo) = memo {
                let validated = analysis.validated_bodies();
                if recalled.as_ref() != Some(&validated) {
                    memo.record(file.cache_key(), features, &validated);
                }
            }
            return Some(analysis);
        }
        Err(rejection) => rejection,
    };
    match rejection {
        Rejection::Malformed { offset, message } => {
            let what = if file.is_text() { "the text module does not parse" } else { "the module does not decode" };
            if let Some(f) = findings.add(Code::Malformed, format!("{what}: {message}")) {
                f.at(offset).help("rebuild the plugin; if it was downloaded, check that it is complete");
            }
            None
        }
        Rejection::Invalid { offset, message } => {
            if let Some(f) = findings.add(Code::Invalid, format!("the module does not validate: {message}")) {
                f.at(offset);
            }
            None
        }
        Rejection::Limit { code, offset, message } => {
            if let Some(f) = findings.add(code, message) {
                f.at(offset);
            }
            None
        }
        Rejection::FeatureDenied { offset, message, feature, analysis } => {
            let named = feature.map_or(String::new(), |key| format!(" `{key}`"));
            let message = format!(
                "the module needs the wasm feature{named}, which policy `{}` does not allow: {message}",
                policy.name()
            );
            if let Some(f) = findings.add(Code::FeatureDenied, message) {
                f.at(offset);
                if let Some(key) = feature {
                    f.help(format!("build without `{key}`, or set `{key} = true` in the policy's [features]"));
                }
            }
            Some(*analysis)
        }
    }
}

/// Precedence: the manifest the operator named, then the embedded section (the one a
/// signature covers), then `plugin.toml` beside the module.
fn find_manifest(
    file: &PluginFile,
    explicit: Option<&Path>,
    analysis: Option<&Analysis>,
) -> Result<ManifestStatus, ReadError> {
    // Read without blocking and within a bound: the operator's manifest that cannot be read is
    // the operator's error; the plugin's own (beside it) is a finding about the plugin.
    let from_file = |path: &Path, operators: bool| -> Result<ManifestStatus, ReadError> {
        let origin = Origin::File(path.display().to_string());
        let text = match crate::source::read_regular(path, crate::source::MAX_DOCUMENT_BYTES) {
            Ok(text) => text,
            Err(source) if operators => return Err(ReadError { path: path.display().to_string(), source }),
            Err(error) => return Ok(ManifestStatus::Invalid(DocumentError::new(origin, format!("cannot read it: {error}")))),
        };
        let Ok(text) = String::from_utf8(text) else {
            return Ok(ManifestStatus::Invalid(DocumentError::new(origin, "the manifest is not valid UTF-8")));
        };
        Ok(loaded(Manifest::from_toml(&text, origin.clone()), origin))
    };
    if let Some(path) = explicit {
        return from_file(path, true);
    }
    let embedded = analysis.map_or(&[][..], |a| &a.embedded_manifests[..]);
    if let Some((data_offset, data)) = embedded.first() {
        let origin = Origin::Section {
            module: file.path.display().to_string(),
            name: MANIFEST_SECTION.to_string(),
            data_offset: *data_offset,
        };
        if embedded.len() > 1 {
            let mut error = DocumentError::new(origin, format!("the module has {} `{MANIFEST_SECTION}` sections; it may have one", embedded.len()));
            error.offset = Some(embedded[1].0);
            return Ok(ManifestStatus::Invalid(error));
        }
        let Ok(text) = std::str::from_utf8(data) else {
            return Ok(ManifestStatus::Invalid(DocumentError::new(origin, "the embedded manifest is not valid UTF-8")));
        };
        return Ok(loaded(Manifest::from_json(text, origin.clone()), origin));
    }
    match file.sibling_manifest() {
        Some(path) => from_file(&path, false),
        None => Ok(ManifestStatus::Absent),
    }
}

fn loaded(result: Result<Manifest, DocumentError>, origin: Origin) -> ManifestStatus {
    match result {
        Ok(manifest) => ManifestStatus::Loaded { origin, manifest: Box::new(manifest) },
        Err(error) => ManifestStatus::Invalid(error),
    }
}

fn check_manifest(manifest: &Manifest, origin: &Origin, options: &VetOptions<'_>, findings: &mut Findings<'_>) {
    if let Some(range) = &manifest.host
        && !range.matches(&options.host_api)
    {
        let message = format!(
            "the manifest asks for host API `{range}`; this host offers {}",
            options.host_api
        );
        if let Some(f) = findings.add(Code::HostIncompatible, message) {
            f.in_document(origin, None, None)
                .help(format!("rebuild the plugin against host API {} and widen `host`", options.host_api));
        }
    }
}

/// A signature file is the plugin's own artifact: one far larger than any bundle (a
/// certificate chain, log entries and timestamps are a few KiB) is refused unread.
const SIGNATURE_FILE_MAX: u64 = 1 << 20;

/// Checks the signatures beside the module whatever the policy (`inspect` shows them); under
/// a policy that requires a signature, anything but a met `[signatures.signers]` rule is a
/// finding.
fn check_signatures(file: &PluginFile, policy: &Policy, findings: &mut Findings<'_>) -> Vec<signature::Checked> {
    let found: Vec<SignatureFile> = file
        .signature_files()
        .into_iter()
        .map(|path| {
            let bytes = crate::source::read_regular(&path, SIGNATURE_FILE_MAX);
            SignatureFile { path, bytes }
        })
        .collect();
    if found.is_empty() && !policy.signatures.required {
        return Vec::new();
    }
    let assessment = policy.signatures.trusted().assess(file.bytes(), &found);
    if !policy.signatures.required {
        return assessment.files;
    }
    let name = policy.name();
    match &assessment.outcome {
        Outcome::Trusted => {}
        Outcome::Missing => {
            let message = format!(
                "policy `{name}` requires a signature, and there is no {0}.sig or {0}.sigstore.json",
                file.path.display()
            );
            if let Some(f) = findings.add(Code::SignatureMissing, message) {
                f.help("sign the plugin (`stockade sign`) and ship the signature beside the module");
            }
        }
        Outcome::Invalid => {
            for checked in &assessment.files {
                let message = match &checked.verdict {
                    FileVerdict::Invalid { reason } => format!("{}: {reason}", checked.path.display()),
                    FileVerdict::Unattributed => format!(
                        "{} does not verify with any key policy `{name}` trusts: the module changed since it was \
                         signed, or another key signed it (a blob signature does not say which key)",
                        checked.path.display()
                    ),
                    _ => continue,
                };
                if let Some(f) = findings.add(Code::SignatureInvalid, message) {
                    f.help("sign the module again as it is now, or restore the module that was signed");
                }
            }
        }
        Outcome::Untrusted(reason) => {
            if let Some(f) = findings.add(Code::SignerUntrusted, reason.clone()) {
                f.help("have a signer the policy trusts sign the plugin, or add its signer to the policy's [signatures.signers]");
            }
        }
    }
    assessment.files
}


/// The longest message (or help) a finding keeps.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// The largest WebAssembly text module read. Parsing takes up to about 24 times the text (8 MB
/// of `nop`s: 195 MB of RSS): 2 MiB stays within 64 MiB of parser memory, the overhead a run's
/// memory promise allows beside the plugin's limit.
pub const MAX_TEXT_MODULE_BYTES: u64 = 2 << 20;

/// Cranelift's limit on the targets of one `br_table` (wasmtime 48: "exceeds the
/// implementation limit of 65520").
const MAX_BR_TABLE_TARGETS: u32 = 65520;

/// A function type as wasm text writes it: `(param i64 i32) (result i64)`.
fn signature_text(params: &[wasmparser::ValType], results: &[wasmparser::ValType]) -> String {
    let list = |types: &[wasmparser::ValType]| types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" ");
    format!("(param {}) (result {})", list(params), list(results))
}

/// Declared vs granted vs used, for every capability.
fn check_capabilities(
    analysis: &Analysis,
    declared: Option<(&Manifest, &Origin)>,
    policy: &Policy,
    findings: &mut Findings<'_>,
) {
    // Each need with the imports that need it, in the order the module imports them.
    let mut needs: Vec<(Need, Vec<&Import>)> = Vec::new();
    for import in &analysis.imports {
        if let (Some(want), Some(have)) = (capability::core_import_signature(&import.module, &import.name), &import.signature)
            && (want.0, want.1) != (&have.0[..], &have.1[..])
        {
            let message = format!(
                "import `{}` has type {}, but the host defines it as {}",
                import.display_name(),
                signature_text(&have.0, &have.1),
                signature_text(want.0, want.1)
            );
            if let Some(f) = findings.add(Code::ImportTypeMismatch, message) {
                f.about_import(import);
            }
        }
        match &import.class {
            ImportClass::Core => {}
            ImportClass::Unknown => {
                let what = match import.kind {
                    analyze::ItemKind::Func | analyze::ItemKind::ComponentItem => "",
                    analyze::ItemKind::Memory => " (a memory: the sandbox provides none)",
                    analyze::ItemKind::Table => " (a table: the sandbox provides none)",
                    analyze::ItemKind::Global => " (a global: the sandbox provides none)",
                    analyze::ItemKind::Tag => " (a tag: the sandbox provides none)",
                };
                let message = format!("import `{}`{what} maps to no capability", import.display_name());
                if let Some(f) = findings.add(Code::UnknownImport, message) {
                    f.about_import(import).help(
                        "remove the import; a host function the host provides is imported from `extism:host/user`",
                    );
                }
            }
            ImportClass::Needs(need) => match needs.iter_mut().find(|(n, _)| n == need) {
                Some((_, imports)) => imports.push(import),
                None => needs.push((need.clone(), vec![import])),
            },
        }
    }

    let policy_name = policy.name();
    for (need, imports) in &needs {
        let first = imports[0];
        let also = match imports.len() {
            1 => String::new(),
            n => format!(" (and {} more import{})", n - 1, if n > 2 { "s" } else { "" }),
        };
        let declared_it = declared.is_some_and(|(m, _)| m.capabilities.iter().any(|c| c.covers(need)));
        if let Some((_, origin)) = declared
            && !declared_it
        {
            let message = format!(
                "import `{}`{also} needs capability `{need}`, which the manifest does not declare",
                first.display_name()
            );
            if let Some(f) = findings.add(Code::UndeclaredCapability, message) {
                f.about_import(first).about_capability(need).help(format!(
                    "add {} to `capabilities` in {origin}, or remove the import",
                    declaration_example(need)
                ));
            }
        }
        if !declared_it && !policy.grants_need(need) {
            let message = format!(
                "import `{}`{also} needs capability `{need}`, which policy `{policy_name}` does not grant",
                first.display_name()
            );
            if let Some(f) = findings.add(Code::CapabilityDenied, message) {
                f.about_import(first).about_capability(need).help(format!(
                    "`{need}` grants {}; the plugin must do without it, or the policy would have to {}",
                    need_family(need).grants(),
                    grant_hint_for_need(need)
                ));
            }
        }
    }

    let Some((manifest, origin)) = declared else { return };
    for capability in &manifest.capabilities {
        let users = needs.iter().find(|(need, _)| capability.covers(need)).map(|(_, imports)| imports[0]);
        if !policy.grants(capability) {
            let message = format!("the manifest declares `{capability}`, which policy `{policy_name}` does not grant");
            if let Some(f) = findings.add(Code::CapabilityDenied, message) {
                if let Some(import) = users {
                    f.about_import(import);
                }
                f.about_capability(capability)
                    .in_document(origin, None, None)
                    .help(format!("the policy would have to {}", Policy::grant_hint(capability)));
            }
        }
        if users.is_none() {
            let message = format!("the manifest declares `{capability}`, but no import of the module uses it");
            if let Some(f) = findings.add(Code::UnusedCapability, message) {
                f.about_capability(capability)
                    .in_document(origin, None, None)
                    .help(format!("remove `{capability}` from `capabilities` in {origin}"));
            }
        }
    }
}

fn need_family(need: &Need) -> Family {
    match need {
        Need::Family(family) => *family,
        Need::HostFunction(_) => Family::Host,
    }
}

fn grant_hint_for_need(need: &Need) -> String {
    match need {
        Need::Family(Family::Http) => "list the hosts in [capabilities] http".to_string(),
        Need::Family(Family::Fs) => "list the directory in [capabilities] fs".to_string(),
        Need::Family(family) => format!("add \"{family}\" to [capabilities] allow"),
        Need::HostFunction(name) => format!("add \"{name}\" to [capabilities] host"),
    }
}

fn declaration_example(need: &Need) -> String {
    match need {
        Need::Family(Family::Http) => "\"http:HOST\" (one per host it calls)".to_string(),
        Need::Family(Family::Fs) => "\"fs:ro:/PATH\" or \"fs:rw:/PATH\"".to_string(),
        other => format!("\"{other}\""),
    }
}

fn check_exports(analysis: &Analysis, manifest: &Manifest, origin: &Origin, findings: &mut Findings<'_>) {
    for name in &manifest.exports {
        if !analysis.exports_function(name) {
            let message = format!("the manifest lists export `{name}`, but the module exports no function of that name");
            if let Some(f) = findings.add(Code::MissingExport, message) {
                f.in_document(origin, None, None)
                    .help(format!("export `{name}` from the plugin, or remove it from `exports` in {origin}"));
            }
        }
    }
}

fn check_sizes(analysis: &Analysis, policy: &Policy, findings: &mut Findings<'_>) {
    let limits = &policy.limits;
    let name = policy.name();
    if analysis.defined_functions > u64::from(limits.functions) {
        let message = format!(
            "the module defines {} functions; policy `{name}` allows at most {}",
            analysis.defined_functions, limits.functions
        );
        if let Some(f) = findings.add(Code::TooManyFunctions, message)
            && let Some(first) = analysis.bodies.first()
        {
            f.at(first.offset);
        }
    }

    let oversized: Vec<_> = analysis
        .bodies
        .iter()
        .filter(|b| b.size as u64 > limits.function_size.get() || b.locals > u64::from(limits.locals))
        .collect();
    for body in oversized.iter().take(MAX_REPEATED_FINDINGS) {
        let message = if body.size as u64 > limits.function_size.get() {
            format!(
                "function {} has a body of {} bytes; policy `{name}` allows at most {}",
                body.index, body.size, limits.function_size
            )
        } else {
            format!("function {} declares {} locals; policy `{name}` allows at most {}", body.index, body.locals, limits.locals)
        };
        if let Some(f) = findings.add(Code::FunctionTooLarge, message) {
            f.at(body.offset);
        }
    }
    if oversized.len() > MAX_REPEATED_FINDINGS {
        let rest = &oversized[MAX_REPEATED_FINDINGS..];
        let message = format!("{} more functions are over the size or locals limit", rest.len());
        if let Some(f) = findings.add(Code::FunctionTooLarge, message) {
            f.at(rest[0].offset);
        }
    }

    // What instantiating charges the memory budget, as the sandbox charges it: linear memory,
    // table elements and the instance itself.
    let memory = analysis.initial_memory_bytes();
    let tables = analysis.initial_table_elements().saturating_mul(crate::budget::TABLE_ELEMENT_BYTES);
    let instance = analysis.instance_bytes();
    let needed = memory.saturating_add(tables).saturating_add(instance);
    if needed > limits.memory.get() {
        let message = format!(
            "the module needs {needed} bytes to instantiate ({memory} of linear memory, {tables} of tables, {instance} of instance state); policy `{name}` allows at most {}",
            limits.memory
        );
        let first = analysis.memories.first().map(|m| m.offset).or(analysis.tables.first().map(|t| t.offset));
        if let (Some(f), Some(offset)) = (findings.add(Code::MemoryTooLarge, message), first) {
            f.at(offset);
        }
    }
    if analysis.memories.len() as u64 > u64::from(limits.memories) {
        let message = format!(
            "the module has {} linear memories; policy `{name}` allows at most {}",
            analysis.memories.len(),
            limits.memories
        );
        if let Some(f) = findings.add(Code::MemoryTooLarge, message) {
            f.at(analysis.memories[limits.memories as usize].offset);
        }
    }
    let tables = analysis.initial_table_elements();
    if tables > limits.tables {
        let message = format!(
            "the module's tables start with {tables} elements; policy `{name}` allows at most {}",
            limits.tables
        );
        if let Some(f) = findings.add(Code::TableTooLarge, message) {
            f.at(analysis.tables[0].offset);
        }
    }
    if analysis.data_bytes > limits.data_size.get() {
        let message = format!(
            "the module's {} data segments hold {} bytes; policy `{name}` allows at most {}",
            analysis.data_segments, analysis.data_bytes, limits.data_size
        );
        findings.add(Code::DataTooLarge, message);
    }
    for body in analysis.bodies.iter().filter(|b| b.compile_cost() > limits.function_control_flow).take(MAX_REPEATED_FINDINGS) {
        let message = format!(
            "function {} has {} units of control flow and locals; policy `{name}` allows at most {} per function",
            body.index, body.compile_cost(), limits.function_control_flow
        );
        if let Some(f) = findings.add(Code::FunctionTooComplex, message) {
            f.at(body.offset);
        }
    }
    let total = analysis.compile_cost();
    if total > limits.control_flow {
        let message = format!(
            "the module costs {total} units to compile in all (control flow, locals, and {} functions); policy `{name}` allows at most {}",
            analysis.bodies.len(),
            limits.control_flow
        );
        findings.add(Code::ModuleTooComplex, message);
    }
    if let Some(body) = analysis.bodies.iter().find(|b| b.max_br_table_targets > MAX_BR_TABLE_TARGETS) {
        let message = format!(
            "function {} has a br_table with {} targets; the engine compiles at most {MAX_BR_TABLE_TARGETS}",
            body.index, body.max_br_table_targets
        );
        if let Some(f) = findings.add(Code::EngineLimit, message) {
            f.at(body.offset);
        }
    }
    if analysis.custom_section_count > u64::from(limits.custom_sections) {
        let message = format!(
            "the module has {} custom sections; policy `{name}` allows at most {}",
            analysis.custom_section_count, limits.custom_sections
        );
        findings.add(Code::TooManyCustomSections, message);
    }
    if analysis.custom_section_bytes > limits.custom_section_size.get() {
        let message = format!(
            "the module's custom sections hold {} bytes; policy `{name}` allows at most {}",
            analysis.custom_section_bytes, limits.custom_section_size
        );
        findings.add(Code::CustomSectionsTooLarge, message);
    }
    if let Some(start) = &analysis.start {
        let message = format!("the module has a start function (function {}), which runs at instantiation", start.function);
        if let Some(f) = findings.add(Code::StartFunction, message) {
            f.at(start.offset)
                .help("move the initialisation into an exported function the host calls (Extism: `_start` is not needed)");
        }
    }
}
