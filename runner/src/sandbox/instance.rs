//! One store and its instance: the state the host keeps for it, and calling its exports,
//! synchronously (Extism and core modules) or on a fiber (modules that import WASI, whose calls
//! may block and are abandoned at the deadline).

use std::collections::HashMap;

use wasmtime::{Func, FuncType, Store, TypedFunc, Val, ValType};

use super::limiter::Limiter;
use super::wasi::{GuardedWasi, Stdio};
use crate::abi::extism::Kernel;
use crate::abi::extism::host::KernelHost;

/// Per-store state: the limiter, the Extism kernel, and the WASI context.
pub struct State {
    pub(crate) limiter: Limiter,
    pub(crate) kernel: Kernel,
    pub(crate) wasi: Option<GuardedWasi>,
    pub(crate) stdio: Option<Stdio>,
}

impl KernelHost for State {
    fn kernel(&self) -> &Kernel {
        &self.kernel
    }
    fn kernel_mut(&mut self) -> &mut Kernel {
        &mut self.kernel
    }
}

impl State {
    pub(crate) fn stdout(&self) -> Option<Vec<u8>> {
        self.stdio.as_ref().map(|s| s.stdout.contents().to_vec())
    }

    pub(crate) fn stderr(&self) -> Option<Vec<u8>> {
        self.stdio.as_ref().map(|s| s.stderr.contents().to_vec())
    }
}

/// A live instance with its store, and the exports called so far: looking an export up and
/// checking its type take longer than a small call itself.
pub(super) struct Warm {
    pub store: Store<State>,
    pub instance: wasmtime::Instance,
    extism_exports: HashMap<String, TypedFunc<(), i32>>,
    core_exports: HashMap<String, (Func, FuncType)>,
}

pub(super) enum Returned {
    Extism(i32),
    Values(String),
}

pub(super) enum CallError {
    /// The export is missing or does not have the ABI's signature.
    Usage(String),
    Wasm(wasmtime::Error),
}

/// What to call: an Extism export, or a core export with its arguments as text.
#[derive(Clone, Copy)]
pub(super) enum Call<'a> {
    Extism(&'a str),
    Core(&'a str, &'a [String]),
}

impl Warm {
    pub fn new(store: Store<State>, instance: wasmtime::Instance) -> Warm {
        Warm { store, instance, extism_exports: HashMap::new(), core_exports: HashMap::new() }
    }

    fn extism_func(&mut self, name: &str) -> Result<TypedFunc<(), i32>, CallError> {
        if let Some(func) = self.extism_exports.get(name) {
            return Ok(func.clone());
        }
        let func = self.instance.get_typed_func::<(), i32>(&mut self.store, name).map_err(|e| {
            CallError::Usage(format!("export `{name}`: {e:#} (Extism exports take no arguments and return i32)"))
        })?;
        self.extism_exports.insert(name.to_string(), func.clone());
        Ok(func)
    }

    /// The export and its arguments, checked against its type.
    fn core_func(&mut self, name: &str, args: &[String]) -> Result<(Func, Vec<Val>, usize), CallError> {
        if !self.core_exports.contains_key(name) {
            let func = self
                .instance
                .get_func(&mut self.store, name)
                .ok_or_else(|| CallError::Usage(format!("the module exports no function `{name}`")))?;
            let ty = func.ty(&self.store);
            self.core_exports.insert(name.to_string(), (func, ty));
        }
        // Borrowed, not cloned: cloning a `FuncType` costs more than a no-op call.
        let (func, ty) = &self.core_exports[name];
        let values = core_args(ty, name, args)?;
        Ok((*func, values, ty.results().len()))
    }

    pub fn call(&mut self, call: Call<'_>) -> Result<Returned, CallError> {
        match call {
            Call::Extism(name) => {
                let func = self.extism_func(name)?;
                func.call(&mut self.store, ()).map(Returned::Extism).map_err(CallError::Wasm)
            }
            Call::Core(name, args) => {
                let (func, values, results) = self.core_func(name, args)?;
                let mut results = vec![Val::I32(0); results];
                func.call(&mut self.store, &values, &mut results).map_err(CallError::Wasm)?;
                Ok(Returned::Values(results_text(&results)))
            }
        }
    }

    /// [`Warm::call`] on a fiber, for modules whose host calls are async (WASI).
    pub async fn call_async(&mut self, call: Call<'_>) -> Result<Returned, CallError> {
        match call {
            Call::Extism(name) => {
                let func = self.extism_func(name)?;
                func.call_async(&mut self.store, ()).await.map(Returned::Extism).map_err(CallError::Wasm)
            }
            Call::Core(name, args) => {
                let (func, values, results) = self.core_func(name, args)?;
                let mut results = vec![Val::I32(0); results];
                func.call_async(&mut self.store, &values, &mut results).await.map_err(CallError::Wasm)?;
                Ok(Returned::Values(results_text(&results)))
            }
        }
    }
}

fn core_args(ty: &FuncType, function: &str, args: &[String]) -> Result<Vec<Val>, CallError> {
    if ty.params().len() != args.len() {
        return Err(CallError::Usage(format!("`{function}` takes {} arguments; {} given", ty.params().len(), args.len())));
    }
    let mut values = Vec::with_capacity(args.len());
    for (param, arg) in ty.params().zip(args) {
        let bad = || CallError::Usage(format!("argument `{arg}` is not a {param}"));
        values.push(match param {
            ValType::I32 => Val::I32(arg.parse().map_err(|_| bad())?),
            ValType::I64 => Val::I64(arg.parse().map_err(|_| bad())?),
            ValType::F32 => Val::F32(arg.parse::<f32>().map_err(|_| bad())?.to_bits()),
            ValType::F64 => Val::F64(arg.parse::<f64>().map_err(|_| bad())?.to_bits()),
            other => return Err(CallError::Usage(format!("cannot pass a {other} from the command line"))),
        });
    }
    Ok(values)
}

fn results_text(results: &[Val]) -> String {
    results
        .iter()
        .map(|v| match v {
            Val::I32(x) => x.to_string(),
            Val::I64(x) => x.to_string(),
            Val::F32(x) => f32::from_bits(*x).to_string(),
            Val::F64(x) => f64::from_bits(*x).to_string(),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
