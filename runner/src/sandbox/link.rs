//! The linker, built from the granted capabilities alone.
//!
//! Each host function is registered only when the catalog row for its import is core or maps
//! to a capability the grant decision ([`PluginGrants`]) allows, so what the static check allows and
//! what can be linked come from the same table and the same decision.

use wasmtime::{Engine, ExternType, Linker, Module};

use crate::fault::HostFault;
use crate::abi::user::HostFunctions;
use crate::capability::{EXTISM_ENV, EXTISM_USER, WASI_P1};
use crate::grant::PluginGrants;

use super::instance::State;

type Result<T> = wasmtime::Result<T>;

/// The linker for one module: the Extism functions it imports, by grant, and WASI when it
/// imports it. (Defining the kernel's functions a module does not import was a tenth of a
/// cached `stockade run`; they could never be called.)
pub fn linker(engine: &Engine, grants: &PluginGrants<'_>, module: &Module, host_functions: &HostFunctions) -> Result<Linker<State>> {
    let mut linker: Linker<State> = Linker::new(engine);
    let imported = |namespace| module.imports().filter(|i| i.module() == namespace).map(|i| i.name()).collect::<Vec<_>>();
    let kernel = imported(EXTISM_ENV);
    crate::abi::extism::host::add_to_linker(&mut linker, &|name| kernel.contains(&name) && grants.allows_import(EXTISM_ENV, name))?;
    if !host_functions.is_empty() {
        crate::abi::user::add_to_linker(&mut linker, host_functions, &imported(EXTISM_USER), &|name| grants.allows_import(EXTISM_USER, name))?;
    }
    if module.imports().any(|i| i.module() == WASI_P1) {
        add_wasi(&mut linker, grants, module)?;
    }
    Ok(linker)
}

/// WASI preview 1 from wasmtime-wasi (behind [`super::wasi::GuardedWasi`]), which registers
/// its functions as one set. Every import of the module whose capability is not granted is then
/// shadowed by a function that refuses the call, so the real one is never reachable. (The
/// context is built from the grants too: preopens only from `fs` grants, no environment, stdio
/// in capped pipes.)
fn add_wasi(linker: &mut Linker<State>, grants: &PluginGrants<'_>, module: &Module) -> Result<()> {
    wasmtime_wasi::p1::wasi_snapshot_preview1::add_to_linker(linker, |state: &mut State| {
        state.wasi.as_mut().expect("a store for a WASI module carries a WASI context")
    })?;
    linker.allow_shadowing(true);
    for import in module.imports().filter(|i| i.module() == WASI_P1) {
        if grants.allows_import(WASI_P1, import.name()) {
            continue;
        }
        if let ExternType::Func(ty) = import.ty() {
            let name = import.name().to_string();
            linker.func_new(WASI_P1, import.name(), ty, move |_, _, _| {
                Err(wasmtime::Error::new(HostFault::Denied(format!("`{WASI_P1}.{name}` needs a capability that is not granted"))))
            })?;
        }
    }
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::capability::{CATALOG, Names, WASI_P1};

    /// The catalog names every function wasmtime-wasi defines for preview 1, with the type it
    /// defines it with, and no other: `vet`'s names and types are the linker's.
    #[test]
    fn the_catalog_is_wasmtime_wasis_preview1() {
        let engine = wasmtime::Engine::default();
        type Host = Option<super::super::wasi::GuardedWasi>;
        let mut linker: wasmtime::Linker<Host> = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::wasi_snapshot_preview1::add_to_linker(&mut linker, |host: &mut Host| {
            host.as_mut().expect("never called")
        })
        .unwrap();
        let mut store = wasmtime::Store::new(&engine, None);
        let items: Vec<_> = linker.iter(&mut store).map(|(m, n, e)| (m.to_string(), n.to_string(), e)).collect();
        let convert = |t: wasmtime::ValType| match t {
            wasmtime::ValType::I32 => wasmparser::ValType::I32,
            wasmtime::ValType::I64 => wasmparser::ValType::I64,
            other => panic!("unexpected {other}"),
        };
        let mut defined = std::collections::BTreeSet::new();
        for (module, name, item) in &items {
            assert_eq!(module, WASI_P1);
            let ty = item.ty(&store).unwrap_func().clone();
            let params: Vec<_> = ty.params().map(convert).collect();
            let results: Vec<_> = ty.results().map(convert).collect();
            let (want_params, want_results) =
                crate::capability::core_import_signature(module, name).unwrap_or_else(|| panic!("`{name}` is not in the catalog"));
            assert_eq!((params.as_slice(), results.as_slice()), (want_params, want_results), "{name}");
            defined.insert(name.to_string());
        }
        let catalogued: std::collections::BTreeSet<String> = CATALOG
            .iter()
            .filter(|r| r.module == WASI_P1)
            .map(|r| match r.names {
                Names::Exact(name) => name.to_string(),
                other => panic!("a WASI row by {other:?}, not by name"),
            })
            .collect();
        assert_eq!(defined, catalogued);
    }
}
