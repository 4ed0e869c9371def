//! Decoding, validation and static analysis of a module or component, in one pass.
//!
//! Validation runs with exactly the features the policy allows. A module that fails is
//! checked once more with every feature on, to tell a denied feature (`feature-denied`) from
//! a broken module (`malformed` when it does not decode, `invalid` when it does not validate).

use serde::{Deserialize, Serialize};
use wasmparser::{
    BinaryReaderError, Encoding, ExternalKind, FuncToValidate, FuncValidatorAllocations, Parser, Payload, TypeRef,
    ValidPayload, Validator, ValidatorResources, WasmFeatures,
};

use crate::capability::{self, Abi, ImportClass};
use crate::features::FeatureSet;
use crate::manifest::MANIFEST_SECTION;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleKind {
    Module,
    Component,
}

/// What kind of thing an import or export is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    Func,
    Table,
    Memory,
    Global,
    Tag,
    /// A component import or export (an interface instance, a function, a type …).
    ComponentItem,
}

/// The longest name (of an import, export or custom section) the analysis keeps whole: a name's
/// length is the module's to choose (a hundred kilobytes of control characters, 190 times, made
/// `vet` print 228 MB), and everything that shows names shows the analysis's. Longer ones are
/// kept cut, with their length; an import is classified by its whole name before that.
pub const MAX_LISTED_NAME_CHARS: usize = 1024;

fn listed_name(name: &str) -> String {
    crate::text::shorten(name, MAX_LISTED_NAME_CHARS)
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Import {
    /// The import module (core) or the interface name (component, e.g. `wasi:cli/stdout@0.2.0`).
    pub module: String,
    /// The item name; empty for component imports, which import a whole interface.
    pub name: String,
    pub kind: ItemKind,
    pub offset: usize,
    #[serde(skip)]
    pub class: ImportClass,
    /// The ABI the catalog row belongs to, when it matched one.
    pub abi: Option<Abi>,
    /// A function import's type (parameters, results).
    #[serde(skip)]
    pub signature: Option<(Vec<wasmparser::ValType>, Vec<wasmparser::ValType>)>,
}

impl Import {
    /// `module.name`, or the interface name alone for a component import.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() { self.module.clone() } else { format!("{}.{}", self.module, self.name) }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Export {
    pub name: String,
    pub kind: ItemKind,
    pub offset: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// Initial size in pages.
    pub initial: u64,
    pub maximum: Option<u64>,
    pub page_size: u64,
    pub memory64: bool,
    pub shared: bool,
    pub imported: bool,
    pub offset: usize,
}

impl Memory {
    pub fn initial_bytes(&self) -> u64 {
        self.initial.saturating_mul(self.page_size)
    }
    pub fn maximum_bytes(&self) -> Option<u64> {
        self.maximum.map(|m| m.saturating_mul(self.page_size))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Table {
    pub initial: u64,
    pub maximum: Option<u64>,
    pub imported: bool,
    pub offset: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunctionBody {
    /// Index in the function index space of the module that defines it.
    pub index: u32,
    pub offset: usize,
    pub size: usize,
    pub locals: u64,
    /// What compiling the body costs, in control-flow units (see [`ControlFlow`]).
    pub control_flow: u64,
    /// The most targets of one `br_table` in the body.
    pub max_br_table_targets: u32,
}

impl FunctionBody {
    /// What compiling the body costs in the compile budget's units: its control flow, and its
    /// declared locals, which cost the compilers a slot each (Winch a stack slot and its
    /// bookkeeping: 5,000 functions of 50,000 locals took Winch to 970 MB). Derived, not
    /// stored: `control_flow` is what validation counted, which the validation memo keeps.
    pub fn compile_cost(&self) -> u64 {
        self.control_flow.saturating_add(self.locals / ControlFlow::LOCALS_PER_UNIT)
    }
}

/// Control flow a function body asks the compiler to build. Cranelift's memory grows with
/// the control-flow graph, not with the bytes: measured under `stockade run` (peak RSS per
/// construct, wasmtime 48, epoch checks on), a `loop` costs about 16 KB, a `block` or an `if`
/// about 3-4 KB, a `br_table` target well under 1 KB, while straight-line code costs a few
/// hundred bytes per byte. One unit is one block or call; an `if` is two, a loop four, and
/// straight-line code a unit per sixteen operators, and sixteen declared locals a unit.
#[derive(Clone, Copy, Debug, Default)]
pub struct ControlFlow {
    pub units: u64,
    pub max_br_table_targets: u32,
    /// Operators of any kind; every [`ControlFlow::OPS_PER_UNIT`] of them add a unit.
    pub operators: u64,
    /// An operator of a proposal Winch does not compile ([`crate::features::winch_compiles`]).
    pub beyond_winch: bool,
}

impl ControlFlow {
    pub const LOOP_UNITS: u64 = 4;
    /// An `if` builds two arms and a join.
    pub const IF_UNITS: u64 = 2;
    /// `br_table` targets per unit.
    pub const TARGETS_PER_UNIT: u64 = 8;
    /// Straight-line code costs too (about 160-210 bytes of compiler memory per byte of
    /// loads, stores and calls): sixteen operators are a unit, and a call one more.
    pub const OPS_PER_UNIT: u64 = 16;
    /// Declared locals per unit.
    pub const LOCALS_PER_UNIT: u64 = 16;
    /// What every function costs whatever its body: its compiled code, symbol, relocations
    /// and address map are kept until the module is done. Measured under `stockade run
    /// --no-cache` (peak RSS, Winch and Cranelift alike): about 5.5 KB per function of a
    /// module of 20,000 to 100,000 trivial functions (100,000 took 550 MB).
    pub const FUNCTION_UNITS: u64 = 6;
    /// What a function that can be called from outside its body costs on top (exported, in a
    /// table, or referenced by `ref.func`): a trampoline is compiled for it. Measured likewise:
    /// about 9.5 KB more per function (50,000 exported or tabled trivial functions took
    /// 730-750 MB against 283 MB).
    pub const ESCAPING_FUNCTION_UNITS: u64 = 10;

    /// All units, straight-line code included.
    pub fn total(&self) -> u64 {
        self.units.saturating_add(self.operators / ControlFlow::OPS_PER_UNIT)
    }
}

/// The validator's visitor, counting control flow on the way through: one decode per operator
/// serves both.
struct Counting<'c, V> {
    inner: V,
    counts: &'c mut ControlFlow,
}

impl<V: wasmparser::FrameStack> wasmparser::FrameStack for Counting<'_, V> {
    fn current_frame(&self) -> Option<wasmparser::FrameKind> {
        self.inner.current_frame()
    }
}

macro_rules! count_operator {
    ($c:ident, visit_loop $($rest:tt)*) => { $c.counts.units = $c.counts.units.saturating_add(ControlFlow::LOOP_UNITS) };
    ($c:ident, visit_block $($rest:tt)*) => { $c.counts.units = $c.counts.units.saturating_add(1) };
    ($c:ident, visit_if $($rest:tt)*) => { $c.counts.units = $c.counts.units.saturating_add(ControlFlow::IF_UNITS) };
    ($c:ident, visit_br_table $targets:ident) => {{
        let n = $targets.len();
        $c.counts.units = $c.counts.units.saturating_add(u64::from(n) / ControlFlow::TARGETS_PER_UNIT);
        $c.counts.max_br_table_targets = $c.counts.max_br_table_targets.max(n);
    }};
    ($c:ident, visit_call $($rest:tt)*) => { $c.counts.units = $c.counts.units.saturating_add(1) };
    ($c:ident, visit_call_indirect $($rest:tt)*) => { $c.counts.units = $c.counts.units.saturating_add(1) };
    ($c:ident, visit_call_ref $($rest:tt)*) => { $c.counts.units = $c.counts.units.saturating_add(1) };
    ($c:ident, $other:ident $($rest:tt)*) => {};
}

macro_rules! define_counting_visit {
    ($(@$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*))*) => {
        $(
            fn $visit(&mut self $($(,$arg: $argty)*)?) -> V::Output {
                self.counts.operators += 1;
                if const { !crate::features::winch_compiles(stringify!($proposal)) } {
                    self.counts.beyond_winch = true;
                }
                count_operator!(self, $visit $($($arg)*)?);
                self.inner.$visit($($($arg),*)?)
            }
        )*
    };
}

impl<'a, V: wasmparser::VisitOperator<'a>> wasmparser::VisitOperator<'a> for Counting<'_, V> {
    type Output = V::Output;

    fn simd_visitor(&mut self) -> Option<&mut dyn wasmparser::VisitSimdOperator<'a, Output = Self::Output>> {
        // Asked for at every SIMD operator, which Winch does not compile everywhere.
        self.counts.beyond_winch = true;
        self.inner.simd_visitor()
    }

    wasmparser::for_each_visit_operator!(define_counting_visit);
}

/// Validates one body, counting its control flow.
fn validate_counting(
    validator: &mut wasmparser::FuncValidator<wasmparser::ValidatorResources>,
    body: &wasmparser::FunctionBody<'_>,
    features: WasmFeatures,
) -> Result<ControlFlow, BinaryReaderError> {
    let mut counts = ControlFlow::default();
    let mut reader = body.get_binary_reader();
    validator.read_locals(&mut reader)?;
    reader.set_features(features);
    while !reader.eof() {
        let offset = reader.original_position();
        reader.visit_operator(&mut Counting { inner: validator.visitor(offset), counts: &mut counts })??;
    }
    reader.finish_expression(&validator.visitor(reader.original_position()))?;
    Ok(counts)
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CustomSection {
    pub name: String,
    pub offset: usize,
    pub size: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Start {
    pub function: u32,
    pub offset: usize,
}

/// Everything the loader learns from a module's bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    pub kind: ModuleKind,
    /// The host-facing imports: a core module's imports, or a component's top-level imports;
    /// the first [`LISTED_ITEMS`] of them (`import_count` counts them all).
    pub imports: Vec<Import>,
    pub import_count: u64,
    /// The host-facing exports, the first [`LISTED_ITEMS`] of them.
    pub exports: Vec<Export>,
    pub export_count: u64,
    /// Memories defined anywhere in the module (inside a component too) and imported ones.
    pub memories: Vec<Memory>,
    pub tables: Vec<Table>,
    pub defined_functions: u64,
    pub imported_functions: u64,
    /// At most this many functions can be called from outside their module's code: exported,
    /// in an element segment, or referenced from a global's initializer (counted with
    /// repeats, so an upper bound).
    #[serde(skip)]
    pub escaping_functions: u64,
    /// Globals the module defines.
    #[serde(skip)]
    pub defined_globals: u64,
    #[serde(skip)]
    pub bodies: Vec<FunctionBody>,
    pub data_segments: u64,
    pub data_bytes: u64,
    pub start: Option<Start>,
    /// The first [`LISTED_CUSTOM_SECTIONS`] custom sections; the counts below cover them all.
    pub custom_sections: Vec<CustomSection>,
    pub custom_section_count: u64,
    pub custom_section_bytes: u64,
    /// Core modules nested in a component.
    pub nested_modules: u64,
    /// The payload of the `stockade.manifest` custom section(s), with their data offsets.
    #[serde(skip)]
    pub embedded_manifests: Vec<(usize, Vec<u8>)>,
    /// A body uses an operator of a proposal Winch does not compile.
    #[serde(skip)]
    pub beyond_winch: bool,
}

/// Why a module was not accepted by the decoder or validator.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("{message} (at offset {offset:#x})")]
    Malformed { offset: usize, message: String },
    #[error("{message} (at offset {offset:#x})")]
    Invalid { offset: usize, message: String },
    /// A section announces more entries than the policy allows: refused before validating it.
    #[error("{message} (at offset {offset:#x})")]
    Limit { code: crate::code::Code, offset: usize, message: String },
    /// Valid with more features than the policy allows. The analysis made with every
    /// feature on comes along, so that the rest of the checks can still report.
    #[error("{message} (at offset {offset:#x})")]
    FeatureDenied {
        offset: usize,
        message: String,
        /// The policy key that would make it validate, when a single one does.
        feature: Option<&'static str>,
        analysis: Box<Analysis>,
    },
}

impl Rejection {
    pub fn malformed(offset: usize, message: impl Into<String>) -> Rejection {
        Rejection::Malformed { offset, message: message.into() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Decode,
    Validate,
}

/// How many entries the sections the validator keeps a record per entry of may announce:
/// checked from the section's count, before the validator spends memory on them (a million
/// imports cost it about 250 MB). A policy's `types`, `imports`, `exports`, `globals` and
/// `segments` limits.
#[derive(Clone, Copy, Debug)]
pub struct SectionCaps {
    pub types: u32,
    pub imports: u32,
    pub exports: u32,
    pub globals: u32,
    pub segments: u32,
}

impl Default for SectionCaps {
    fn default() -> SectionCaps {
        let most = LISTED_ITEMS as u32;
        SectionCaps { types: most, imports: most, exports: most, globals: most, segments: most }
    }
}

impl SectionCaps {
    /// The entries a payload announces past its cap, as the code that says so.
    /// `what` is the section's entries; its last word is the policy limit's name.
    fn exceeded(&self, payload: &Payload<'_>) -> Option<(crate::code::Code, &'static str, u32, u32, usize)> {
        use crate::code::Code;
        let (code, what, count, cap, offset) = match payload {
            Payload::TypeSection(r) => (Code::TooManyTypes, "types", r.count(), self.types, r.range().start),
            Payload::ImportSection(r) => (Code::TooManyImports, "imports", r.count(), self.imports, r.range().start),
            Payload::ExportSection(r) => (Code::TooManyExports, "exports", r.count(), self.exports, r.range().start),
            Payload::GlobalSection(r) => (Code::TooManyGlobals, "globals", r.count(), self.globals, r.range().start),
            Payload::DataSection(r) => (Code::TooManySegments, "data segments", r.count(), self.segments, r.range().start),
            Payload::ElementSection(r) => (Code::TooManySegments, "element segments", r.count(), self.segments, r.range().start),
            _ => return None,
        };
        (count > cap).then_some((code, what, count, cap, offset))
    }
}

/// Why a pass stopped: the decoder or validator said no, or a section announced more entries
/// than the caps allow (nothing of it was validated).
enum PassError {
    Wasm(Fault, BinaryReaderError),
    Limit { code: crate::code::Code, offset: usize, message: String },
}

impl From<(Fault, BinaryReaderError)> for PassError {
    fn from((fault, error): (Fault, BinaryReaderError)) -> PassError {
        PassError::Wasm(fault, error)
    }
}

/// What validating a module's function bodies found: each body's compile cost (control-flow
/// units, most `br_table` targets) in module order, and whether any uses an operator Winch
/// does not compile. The same for the same bytes under the same features, so a store that can
/// prove it kept this itself (the compiled-module cache) can hand it back and spare a later
/// load the validation of every body, most of a cached run's decoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedBodies {
    pub costs: Vec<(u64, u32)>,
    pub beyond_winch: bool,
}

/// Decodes, validates and analyses `bytes` (a binary module or component) under `features`,
/// with the loader's own caps on per-entry sections.
pub fn analyze(bytes: &[u8], features: &FeatureSet) -> Result<Analysis, Rejection> {
    analyze_within(bytes, features, &SectionCaps::default(), None)
}

/// [`analyze`] with a policy's caps on types, imports and exports. With `validated`, what an
/// earlier validation of these very bytes under these features found, the module is decoded
/// and analysed but not validated again; when it does not fit the module (another number of
/// bodies), or the bytes do not decode, it is validated in full.
pub fn analyze_within(
    bytes: &[u8],
    features: &FeatureSet,
    caps: &SectionCaps,
    validated: Option<&ValidatedBodies>,
) -> Result<Analysis, Rejection> {
    if !bytes.starts_with(b"\0asm") {
        let found = &bytes[..bytes.len().min(4)];
        return Err(Rejection::malformed(
            0,
            format!("not a WebAssembly binary: it starts with {found:02x?}, not the magic number `\\0asm`"),
        ));
    }
    let allowed = features.wasm_features();
    if let Some(validated) = validated {
        // The memo is kept only for bytes that validated in full under these features, and
        // is trusted only as far as the cache proves it wrote it: these bytes are read, not
        // validated again (what the validator did was two thirds of a cached run's decoding).
        match parse(bytes, allowed, caps, None::<fn(_, _)>) {
            Ok(collector) if collector.bodies() == validated.costs.len() => return Ok(apply(collector, validated.clone())),
            // Bytes that do not even decode, or a memo that does not fit: the full pass below
            // finds what is wrong.
            _ => {}
        }
    }
    let error = match pass(bytes, allowed, caps) {
        Ok(analysis) => return Ok(analysis),
        Err(PassError::Limit { code, offset, message }) => return Err(Rejection::Limit { code, offset, message }),
        Err(PassError::Wasm(_, error)) => error,
    };
    let at = |e: &BinaryReaderError| (e.offset(), one_line(e.message()));
    match pass(bytes, WasmFeatures::all(), caps) {
        Ok(analysis) => {
            let (offset, message) = at(&error);
            let feature = features
                .denied()
                .find(|f| validates(bytes, allowed.union(f.flags)))
                .map(|f| f.key);
            Err(Rejection::FeatureDenied { offset, message, feature, analysis: Box::new(analysis) })
        }
        // The error under all features is the one that describes the module's real fault.
        Err(PassError::Wasm(Fault::Decode, e)) => Err(Rejection::Malformed { offset: at(&e).0, message: at(&e).1 }),
        Err(PassError::Wasm(Fault::Validate, e)) => Err(Rejection::Invalid { offset: at(&e).0, message: at(&e).1 }),
        Err(PassError::Limit { code, offset, message }) => Err(Rejection::Limit { code, offset, message }),
    }
}

/// wasmparser formats some messages over several lines; findings are one line each.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn validates(bytes: &[u8], features: WasmFeatures) -> bool {
    Validator::new_with_features(features).validate_all(bytes).is_ok()
}

fn pass<'a>(bytes: &'a [u8], features: WasmFeatures, caps: &SectionCaps) -> Result<Analysis, PassError> {
    // Small modules validate on this thread as they are read: handing work to other threads
    // costs more than a few small bodies take.
    if bytes.len() < PARALLEL_MODULE_BYTES {
        let mut allocations = FuncValidatorAllocations::default();
        let mut counts = Vec::new();
        let collector = parse(bytes, features, caps, Some(|func, body: wasmparser::FunctionBody<'_>| {
            counts.push(validate_body(&mut allocations, func, &body, features));
        }))?;
        return finish(collector, counts);
    }
    // Big ones: bodies are validated on rayon's pool in batches while this thread reads on
    // (the data section of a big module is most of the rest of the work), as `wasm-tools
    // validate` validates them in parallel, but started as soon as each batch is read.
    let batches = std::sync::Mutex::new(Vec::new());
    let parsed = rayon::in_place_scope(|scope| {
        let batches = &batches;
        let spawn = |first: usize, batch: Vec<(FuncToValidate<ValidatorResources>, wasmparser::FunctionBody<'a>)>| {
            scope.spawn(move |_| {
                let mut allocations = FuncValidatorAllocations::default();
                let counts: Vec<_> = batch.into_iter().map(|(func, body)| validate_body(&mut allocations, func, &body, features)).collect();
                batches.lock().unwrap_or_else(|p| p.into_inner()).push((first, counts));
            });
        };
        let (mut batch, mut batch_bytes, mut first) = (Vec::new(), 0, 0);
        let collector = parse(bytes, features, caps, Some(|func, body: wasmparser::FunctionBody<'a>| {
            batch_bytes += body.range().len();
            batch.push((func, body));
            if batch_bytes >= BATCH_BODY_BYTES {
                let full = std::mem::take(&mut batch);
                let next = first + full.len();
                spawn(first, full);
                (first, batch_bytes) = (next, 0);
            }
        }));
        if !batch.is_empty() {
            spawn(first, batch);
        }
        collector
    });
    let collector = parsed?;
    let mut batches = batches.into_inner().unwrap_or_else(|p| p.into_inner());
    batches.sort_unstable_by_key(|(first, _)| *first);
    finish(collector, batches.into_iter().flat_map(|(_, counts)| counts).collect())
}

/// Modules at least this large have their bodies validated on several threads.
pub(crate) const PARALLEL_MODULE_BYTES: usize = 256 << 10;

/// Bodies are handed to other threads in batches of about this many bytes: enough work to
/// outweigh the hand-off, small enough to spread a module over every core.
const BATCH_BODY_BYTES: usize = 64 << 10;

/// Reads every payload once: caps, the collector's records and, with `body`, section checks by
/// the validator, each function body going to `body` with its validator, for the caller to
/// validate when and where it likes. Without `body` the module is only decoded.
fn parse<'a>(
    bytes: &'a [u8],
    features: WasmFeatures,
    caps: &SectionCaps,
    mut body: Option<impl FnMut(FuncToValidate<ValidatorResources>, wasmparser::FunctionBody<'a>)>,
) -> Result<Collector, PassError> {
    let mut validator = body.is_some().then(|| Validator::new_with_features(features));
    let mut parser = Parser::new(0);
    parser.set_features(features);
    let mut collector = Collector::default();
    for payload in parser.parse_all(bytes) {
        let payload = payload.map_err(|e| (Fault::Decode, e))?;
        if let Some((code, what, count, cap, offset)) = caps.exceeded(&payload) {
            let limit = what.rsplit(' ').next().unwrap_or(what);
            let message = format!("the module declares {count} {what}; `limits.{limit}` allows at most {cap}");
            return Err(PassError::Limit { code, offset, message });
        }
        if let (Some(validator), Some(body)) = (validator.as_mut(), body.as_mut())
            && let ValidPayload::Func(func, function_body) = validator.payload(&payload).map_err(|e| (Fault::Validate, e))?
        {
            body(func, function_body);
        }
        collector.record(&payload).map_err(|e| (Fault::Decode, e))?;
    }
    Ok(collector)
}

fn validate_body(
    allocations: &mut FuncValidatorAllocations,
    func: FuncToValidate<ValidatorResources>,
    body: &wasmparser::FunctionBody<'_>,
    features: WasmFeatures,
) -> Result<ControlFlow, BinaryReaderError> {
    let mut validator = func.into_validator(std::mem::take(allocations));
    let counts = validate_counting(&mut validator, body, features);
    *allocations = validator.into_allocations();
    counts
}

/// The analysis, with what each body asks of the compiler; the error is the first body's in
/// module order, whichever thread found it.
fn finish(collector: Collector, counts: Vec<Result<ControlFlow, BinaryReaderError>>) -> Result<Analysis, PassError> {
    let mut validated = ValidatedBodies { costs: Vec::with_capacity(counts.len()), beyond_winch: false };
    for counts in counts {
        let counts = counts.map_err(|e| PassError::from((Fault::Validate, e)))?;
        validated.beyond_winch |= counts.beyond_winch;
        validated.costs.push((counts.total(), counts.max_br_table_targets));
    }
    Ok(apply(collector, validated))
}

fn apply(collector: Collector, validated: ValidatedBodies) -> Analysis {
    let mut analysis = collector.analysis.expect("a module that validates starts with a version header");
    analysis.beyond_winch = validated.beyond_winch;
    for (recorded, (control_flow, max_br_table_targets)) in analysis.bodies.iter_mut().zip(validated.costs) {
        recorded.control_flow = control_flow;
        recorded.max_br_table_targets = max_br_table_targets;
    }
    analysis
}

/// Builds the [`Analysis`] from the payload stream. Nested modules and components are seen
/// inline; `depth` tells the host-facing top level (0) from the inside of a component.
#[derive(Default)]
struct Collector {
    analysis: Option<Analysis>,
    depth: usize,
    /// The top-level module's types, by index, where they are function types.
    func_types: Vec<Option<(Vec<wasmparser::ValType>, Vec<wasmparser::ValType>)>>,
}

/// How many imports and exports an analysis records one by one: a module of a million
/// imports must not cost the loader a million records. The policy's `imports` and `exports`
/// limits are at most this, so a module whose list was cut is always refused.
pub const LISTED_ITEMS: usize = 100_000;

/// How many custom sections an analysis lists by name.
pub const LISTED_CUSTOM_SECTIONS: usize = 1000;

impl Collector {
    /// The function bodies read so far, nested modules' included.
    fn bodies(&self) -> usize {
        self.analysis.as_ref().map_or(0, |a| a.bodies.len())
    }

    fn record(&mut self, payload: &Payload<'_>) -> Result<(), BinaryReaderError> {
        if let Payload::Version { encoding, .. } = payload {
            if self.analysis.is_none() {
                self.analysis = Some(Analysis::empty(match encoding {
                    Encoding::Module => ModuleKind::Module,
                    Encoding::Component => ModuleKind::Component,
                }));
            }
            return Ok(());
        }
        let depth = self.depth;
        let Some(a) = self.analysis.as_mut() else { return Ok(()) };
        let top_level_module = depth == 0 && a.kind == ModuleKind::Module;
        match payload {
            Payload::ImportSection(reader) => {
                for item in reader.clone().into_imports_with_offsets() {
                    let (offset, import) = item?;
                    // Inside a component, core imports are satisfied by other instances of the
                    // component, not by the host; only the component's own imports reach it.
                    if !top_level_module {
                        continue;
                    }
                    let mut signature = None;
                    let kind = match import.ty {
                        TypeRef::Func(index) | TypeRef::FuncExact(index) => {
                            a.imported_functions += 1;
                            signature = self.func_types.get(index as usize).cloned().flatten();
                            ItemKind::Func
                        }
                        TypeRef::Table(t) => {
                            a.tables.push(Table { initial: t.initial, maximum: t.maximum, imported: true, offset });
                            ItemKind::Table
                        }
                        TypeRef::Memory(m) => {
                            a.memories.push(memory(&m, true, offset));
                            ItemKind::Memory
                        }
                        TypeRef::Global(_) => ItemKind::Global,
                        TypeRef::Tag(_) => ItemKind::Tag,
                    };
                    // Only functions are provided by the host; an imported memory, table,
                    // global or tag has no capability that could supply it.
                    let (class, abi) = match kind {
                        ItemKind::Func => capability::classify_core_import(import.module, import.name),
                        _ => (ImportClass::Unknown, None),
                    };
                    a.import_count += 1;
                    if a.imports.len() >= LISTED_ITEMS {
                        continue;
                    }
                    a.imports.push(Import {
                        module: listed_name(import.module),
                        name: listed_name(import.name),
                        kind,
                        offset,
                        class,
                        abi,
                        signature,
                    });
                }
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for item in reader.clone().into_iter_with_offsets() {
                    let (offset, import) = item?;
                    let class = capability::classify_component_import(import.name.name);
                    let abi = (class != ImportClass::Unknown).then_some(Abi::Component);
                    a.import_count += 1;
                    if a.imports.len() >= LISTED_ITEMS {
                        continue;
                    }
                    a.imports.push(Import {
                        module: listed_name(import.name.name),
                        name: String::new(),
                        kind: ItemKind::ComponentItem,
                        offset,
                        class,
                        signature: None,
                        abi,
                    });
                }
            }
            Payload::ExportSection(reader) if top_level_module => {
                for item in reader.clone().into_iter_with_offsets() {
                    let (offset, export) = item?;
                    let kind = match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => ItemKind::Func,
                        ExternalKind::Table => ItemKind::Table,
                        ExternalKind::Memory => ItemKind::Memory,
                        ExternalKind::Global => ItemKind::Global,
                        ExternalKind::Tag => ItemKind::Tag,
                    };
                    a.export_count += 1;
                    if kind == ItemKind::Func {
                        a.escaping_functions += 1;
                    }
                    if a.exports.len() < LISTED_ITEMS {
                        a.exports.push(Export { name: listed_name(export.name), kind, offset });
                    }
                }
            }
            // A core module's exports inside a component: not the host's to call, but called
            // from outside the module all the same.
            Payload::ExportSection(reader) => {
                for export in reader.clone() {
                    if matches!(export?.kind, ExternalKind::Func | ExternalKind::FuncExact) {
                        a.escaping_functions += 1;
                    }
                }
            }
            Payload::ElementSection(reader) => {
                for element in reader.clone() {
                    a.escaping_functions += u64::from(match element?.items {
                        wasmparser::ElementItems::Functions(items) => items.count(),
                        wasmparser::ElementItems::Expressions(_, items) => items.count(),
                    });
                }
            }
            Payload::GlobalSection(reader) => {
                a.defined_globals += u64::from(reader.count());
                for global in reader.clone() {
                    if global?.ty.content_type.is_reference_type() {
                        a.escaping_functions += 1;
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for item in reader.clone().into_iter_with_offsets() {
                    let (offset, export) = item?;
                    let kind = match export.kind {
                        wasmparser::ComponentExternalKind::Func => ItemKind::Func,
                        _ => ItemKind::ComponentItem,
                    };
                    a.export_count += 1;
                    if a.exports.len() < LISTED_ITEMS {
                        a.exports.push(Export { name: listed_name(export.name.name), kind, offset });
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for item in reader.clone().into_iter_with_offsets() {
                    let (offset, m) = item?;
                    a.memories.push(memory(&m, false, offset));
                }
            }
            Payload::TableSection(reader) => {
                for item in reader.clone().into_iter_with_offsets() {
                    let (offset, t) = item?;
                    a.tables.push(Table { initial: t.ty.initial, maximum: t.ty.maximum, imported: false, offset });
                }
            }
            Payload::FunctionSection(reader) => a.defined_functions += u64::from(reader.count()),
            Payload::CodeSectionEntry(body) => {
                let mut locals = 0u64;
                let mut reader = body.get_locals_reader()?;
                for _ in 0..reader.get_count() {
                    locals = locals.saturating_add(u64::from(reader.read()?.0));
                }
                let index = if top_level_module { a.imported_functions + a.bodies.len() as u64 } else { 0 };
                a.bodies.push(FunctionBody {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    offset: body.range().start,
                    size: body.range().len(),
                    locals,
                    control_flow: 0,
                    max_br_table_targets: 0,
                });
            }
            Payload::DataSection(reader) => {
                for data in reader.clone() {
                    let data = data?;
                    a.data_segments += 1;
                    a.data_bytes = a.data_bytes.saturating_add(data.data.len() as u64);
                }
            }
            Payload::StartSection { func, range } if top_level_module => {
                a.start = Some(Start { function: *func, offset: range.start });
            }
            Payload::CustomSection(section) => {
                // Counted, but listed only up to a bound: a module of millions of empty custom
                // sections must not cost the loader memory per section.
                a.custom_section_count += 1;
                a.custom_section_bytes = a.custom_section_bytes.saturating_add(section.data().len() as u64);
                if a.custom_sections.len() < LISTED_CUSTOM_SECTIONS {
                    a.custom_sections.push(CustomSection {
                        name: listed_name(section.name()),
                        offset: section.range().start,
                        size: section.data().len(),
                    });
                }
                // Two are enough to tell "more than one" (which vet refuses).
                if depth == 0 && section.name() == MANIFEST_SECTION && a.embedded_manifests.len() < 2 {
                    a.embedded_manifests.push((section.data_offset(), section.data().to_vec()));
                }
            }
            Payload::TypeSection(reader) if top_level_module => {
                for group in reader.clone() {
                    for sub in group?.into_types() {
                        self.func_types.push(match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => Some((f.params().to_vec(), f.results().to_vec())),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ModuleSection { .. } => {
                a.nested_modules += 1;
                self.depth += 1;
            }
            Payload::ComponentSection { .. } => self.depth += 1,
            Payload::End(_) => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        Ok(())
    }
}

fn memory(m: &wasmparser::MemoryType, imported: bool, offset: usize) -> Memory {
    Memory {
        initial: m.initial,
        maximum: m.maximum,
        page_size: m.page_size_log2.map_or(65536, |log2| 1u64 << log2.min(16)),
        memory64: m.memory64,
        shared: m.shared,
        imported,
        offset,
    }
}

impl Analysis {
    /// What compiling the whole module costs in the compile budget's units: every body's
    /// control flow and locals, and every function's own cost, more for those a trampoline is
    /// compiled for.
    pub fn compile_cost(&self) -> u64 {
        let bodies = self.bodies.iter().map(FunctionBody::compile_cost).fold(0, u64::saturating_add);
        let functions = self.bodies.len() as u64;
        let escaping = self.escaping_functions.min(functions);
        bodies
            .saturating_add(functions.saturating_mul(ControlFlow::FUNCTION_UNITS))
            .saturating_add(escaping.saturating_mul(ControlFlow::ESCAPING_FUNCTION_UNITS))
    }

    /// Host bytes an instance of the module holds beside its linear memories and table
    /// elements, at most: wasmtime's `VMContext` (a function reference for every function that
    /// escapes, an import record for every imported function, table and memory, a definition
    /// for every global, table and memory) and the instance's own header. The on-demand
    /// allocator has no cap of its own: the sandbox charges this to the memory budget when it
    /// makes a store for the instance.
    pub fn instance_bytes(&self) -> u64 {
        const HEADER: u64 = 4096;
        let escaping = self.escaping_functions.min(self.defined_functions.saturating_add(self.imported_functions));
        let tables_and_memories = (self.tables.len() + self.memories.len()) as u64;
        HEADER
            .saturating_add(escaping.saturating_mul(32))
            .saturating_add(self.imported_functions.saturating_mul(24))
            .saturating_add(self.defined_globals.saturating_mul(16))
            .saturating_add(tables_and_memories.saturating_mul(32))
    }

    fn empty(kind: ModuleKind) -> Analysis {
        Analysis {
            kind,
            imports: Vec::new(),
            import_count: 0,
            exports: Vec::new(),
            export_count: 0,
            memories: Vec::new(),
            tables: Vec::new(),
            defined_functions: 0,
            imported_functions: 0,
            escaping_functions: 0,
            defined_globals: 0,
            bodies: Vec::new(),
            data_segments: 0,
            data_bytes: 0,
            start: None,
            custom_sections: Vec::new(),
            custom_section_count: 0,
            custom_section_bytes: 0,
            nested_modules: 0,
            embedded_manifests: Vec::new(),
            beyond_winch: false,
        }
    }

    /// What validating the bodies found, for [`analyze_within`] to be handed back.
    pub fn validated_bodies(&self) -> ValidatedBodies {
        ValidatedBodies {
            costs: self.bodies.iter().map(|b| (b.control_flow, b.max_br_table_targets)).collect(),
            beyond_winch: self.beyond_winch,
        }
    }

    /// Whether Winch can compile this module: a core module whose bodies use only what it
    /// compiles. (Types and sections of other proposals are caught by the Winch engine's own
    /// validation, and the module then goes to Cranelift.)
    pub fn winch_can_compile(&self) -> bool {
        self.kind == ModuleKind::Module && !self.beyond_winch
    }

    /// The plugin ABIs the module's imports belong to.
    pub fn abis(&self) -> Vec<Abi> {
        let mut abis: Vec<Abi> = Vec::new();
        for abi in self.imports.iter().filter_map(|i| i.abi) {
            if !abis.contains(&abi) {
                abis.push(abi);
            }
        }
        abis
    }

    pub fn initial_memory_bytes(&self) -> u64 {
        self.memories.iter().map(Memory::initial_bytes).fold(0, u64::saturating_add)
    }

    pub fn initial_table_elements(&self) -> u64 {
        self.tables.iter().map(|t| t.initial).fold(0, u64::saturating_add)
    }

    /// Whether a function of this name is exported.
    pub fn exports_function(&self, name: &str) -> bool {
        self.exports.iter().any(|e| e.name == name && e.kind == ItemKind::Func)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wat(text: &str) -> Vec<u8> {
        crate::source::wat_to_wasm(text).expect("test wat parses")
    }

    /// Every function costs the compile budget, whatever its body, and one that escapes its
    /// module (exported, in an element segment, referenced from a global) costs more: counted
    /// once per way out, and never for more functions than the module defines.
    #[test]
    fn every_function_and_trampoline_costs_the_compile_budget() {
        let cost = |text: &str| analyze(&wat(text), &FeatureSet::default()).unwrap().compile_cost();
        let plain = ControlFlow::FUNCTION_UNITS;
        let escaping = ControlFlow::FUNCTION_UNITS + ControlFlow::ESCAPING_FUNCTION_UNITS;
        assert_eq!(cost("(module)"), 0);
        assert_eq!(cost("(module (func) (func) (func))"), 3 * plain);
        assert_eq!(cost(r#"(module (func) (func (export "a")) (func))"#), 2 * plain + escaping);
        assert_eq!(cost("(module (table 2 funcref) (func $a) (func $b) (elem (i32.const 0) $a $b))"), 2 * escaping);
        assert_eq!(cost("(module (func $a) (func) (global funcref (ref.func $a)))"), plain + escaping);
        // The same function exported three times is counted three times, but at most once per
        // function the module defines.
        assert_eq!(cost(r#"(module (func $a (export "x") (export "y") (export "z")))"#), escaping);
    }

    /// What an instance is charged grows with its globals, its escaping functions and its
    /// imported functions, and is never nothing.
    #[test]
    fn the_instance_is_charged_by_its_parts() {
        let bytes = |text: &str| analyze(&wat(text), &FeatureSet::default()).unwrap().instance_bytes();
        let empty = bytes("(module)");
        assert!(empty > 0);
        assert_eq!(bytes("(module (global i32 (i32.const 0)) (global i64 (i64.const 0)))"), empty + 2 * 16);
        assert_eq!(bytes(r#"(module (func (export "a")) (func))"#), empty + 32);
        assert_eq!(bytes(r#"(module (import "env" "f" (func)))"#), empty + 24);
        assert_eq!(bytes("(module (memory 1))"), empty + 32);
    }

    #[test]
    fn collects_imports_exports_memories_and_bodies() {
        let bytes = wat(r#"(module
            (import "extism:host/env" "alloc" (func (param i64) (result i64)))
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (import "env" "mem" (memory 1))
            (memory 2 10)
            (table 5 funcref)
            (func (export "run") (local i32 i64 i64) nop)
            (data (i32.const 0) "hello")
            (@custom "stockade.manifest" "{}")
        )"#);
        let a = analyze(&bytes, &FeatureSet::default()).unwrap_err();
        // Two memories need multi-memory, which the default set leaves off.
        let Rejection::FeatureDenied { feature, analysis, .. } = a else { panic!("{a:?}") };
        assert_eq!(feature, Some("multi-memory"));
        let a = *analysis;
        assert_eq!(a.kind, ModuleKind::Module);
        assert_eq!(a.imports.len(), 3);
        assert_eq!(a.imports[0].class, ImportClass::Core);
        assert_eq!(a.imports[2].kind, ItemKind::Memory);
        assert_eq!(a.imports[2].class, ImportClass::Unknown);
        assert_eq!(a.memories.len(), 2);
        assert_eq!(a.initial_memory_bytes(), 3 * 65536);
        assert_eq!(a.initial_table_elements(), 5);
        assert!(a.exports_function("run"));
        assert_eq!(a.defined_functions, 1);
        assert_eq!(a.bodies[0].index, 2);
        assert_eq!(a.bodies[0].locals, 3);
        assert_eq!(a.data_bytes, 5);
        assert_eq!(a.embedded_manifests[0].1, b"{}");
    }

    #[test]
    fn tells_malformed_from_invalid() {
        let bytes = wat("(module (func (result i32) i32.const 1))");
        assert!(analyze(&bytes, &FeatureSet::default()).is_ok());
        let truncated = &bytes[..bytes.len() - 3];
        assert!(matches!(analyze(truncated, &FeatureSet::default()), Err(Rejection::Malformed { .. })));
        assert!(matches!(analyze(b"\0asm\x02\0\0\0", &FeatureSet::default()), Err(Rejection::Malformed { .. })));
        let mut invalid = wat("(module (func (result i32) i32.const 1))");
        // i32.const 1 -> i64.const 1: still decodes, no longer type-checks.
        let at = invalid.iter().rposition(|&b| b == 0x41).unwrap();
        invalid[at] = 0x42;
        let err = analyze(&invalid, &FeatureSet::default()).unwrap_err();
        assert!(matches!(err, Rejection::Invalid { .. }), "{err:?}");
    }

    #[test]
    fn validation_handed_back_replaces_only_the_bodies_pass() {
        let bytes = wat("(module (func (export \"a\") (loop (loop nop))) (func (block nop)))");
        let features = FeatureSet::default();
        let caps = SectionCaps::default();
        let full = analyze(&bytes, &features).unwrap();
        let validated = full.validated_bodies();
        assert_eq!(validated.costs.len(), 2);
        assert_eq!(analyze_within(&bytes, &features, &caps, Some(&validated)).unwrap(), full);
        // What is handed back is taken as the bodies' costs: it is the memo's keeper that
        // vouches for it (see `vet::ValidationMemo`).
        let other = ValidatedBodies { costs: vec![(7, 1), (9, 2)], beyond_winch: true };
        let taken = analyze_within(&bytes, &features, &caps, Some(&other)).unwrap();
        assert_eq!((taken.bodies[1].control_flow, taken.bodies[1].max_br_table_targets, taken.beyond_winch), (9, 2, true));
        // One that does not fit the module is ignored.
        let short = ValidatedBodies { costs: vec![(7, 1)], beyond_winch: true };
        assert_eq!(analyze_within(&bytes, &features, &caps, Some(&short)).unwrap(), full);
        // Bytes that do not decode are refused whatever is handed back: a broken type section.
        let mut broken = bytes.clone();
        let form = bytes.iter().position(|&b| b == 0x60).unwrap(); // the first func type's form
        broken[form] = 0x7f;
        assert!(analyze_within(&broken, &features, &caps, Some(&validated)).is_err());
        // Caps are the policy's, not the memo's: they still bind.
        let no_exports = SectionCaps { exports: 0, ..SectionCaps::default() };
        assert!(matches!(analyze_within(&bytes, &features, &no_exports, Some(&validated)), Err(Rejection::Limit { .. })));
    }
}
