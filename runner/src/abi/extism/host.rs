//! The kernel's host functions, added to a linker one by one, each only when the caller's
//! grant decision allows its import.

use wasmtime::{Caller, Linker};

use super::Kernel;
use crate::fault::HostFault;
use crate::capability::EXTISM_ENV;

/// A store whose data holds an Extism kernel.
pub trait KernelHost: Send + 'static {
    fn kernel(&self) -> &Kernel;
    fn kernel_mut(&mut self) -> &mut Kernel;
}

type Result<T> = wasmtime::Result<T>;

fn fault(fault: HostFault) -> wasmtime::Error {
    wasmtime::Error::new(fault)
}

/// A handle or length as the ABI passes it (i64), as the kernel counts it (u64): negative
/// values become huge ones, which every check refuses.
fn as_u64(value: i64) -> u64 {
    value as u64
}

/// The Extism log level the host reports: info, so debug and trace lines are not sent.
const LOG_LEVEL_INFO: i32 = 2;

macro_rules! define {
    ($linker:ident, $allows:ident, $name:literal, $func:expr) => {
        debug_assert!(
            crate::capability::core_import_signature(EXTISM_ENV, $name).is_some(),
            "`{}` is defined by the host but has no signature in the capability catalog",
            $name
        );
        if $allows($name) {
            $linker.func_wrap(EXTISM_ENV, $name, $func)?;
        }
    };
}

/// Adds the kernel's functions that `allows` (the grant decision, by function name) admits.
pub fn add_to_linker<T: KernelHost>(linker: &mut Linker<T>, allows: &dyn Fn(&str) -> bool) -> Result<()> {
    let l = linker;
    let g = allows;

    // Memory.
    define!(l, g, "alloc", |mut c: Caller<'_, T>, len: i64| -> Result<i64> {
        c.data_mut().kernel_mut().alloc(as_u64(len)).map(|h| h as i64).map_err(fault)
    });
    define!(l, g, "free", |mut c: Caller<'_, T>, handle: i64| {
        let kernel = c.data_mut().kernel_mut();
        kernel.memory.free(as_u64(handle));
    });
    define!(l, g, "length", |c: Caller<'_, T>, handle: i64| -> i64 { c.data().kernel().memory.length(as_u64(handle)) as i64 });
    define!(l, g, "length_unsafe", |c: Caller<'_, T>, handle: i64| -> i64 {
        c.data().kernel().memory.length(as_u64(handle)) as i64
    });
    define!(l, g, "load_u8", |c: Caller<'_, T>, offset: i64| -> Result<i32> {
        Ok(i32::from(c.data().kernel().memory.load(as_u64(offset), 1).map_err(fault)?[0]))
    });
    define!(l, g, "load_u64", |c: Caller<'_, T>, offset: i64| -> Result<i64> {
        let bytes = c.data().kernel().memory.load(as_u64(offset), 8).map_err(fault)?;
        Ok(i64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    });
    define!(l, g, "store_u8", |mut c: Caller<'_, T>, offset: i64, value: i32| -> Result<()> {
        c.data_mut().kernel_mut().memory.store(as_u64(offset), &[value as u8]).map_err(fault)
    });
    define!(l, g, "store_u64", |mut c: Caller<'_, T>, offset: i64, value: i64| -> Result<()> {
        c.data_mut().kernel_mut().memory.store(as_u64(offset), &value.to_le_bytes()).map_err(fault)
    });
    define!(l, g, "reset", |mut c: Caller<'_, T>| c.data_mut().kernel_mut().reset());
    define!(l, g, "memory_bytes", |c: Caller<'_, T>| -> i64 { c.data().kernel().memory.bytes_in_use() as i64 });

    // Input, output, errors.
    define!(l, g, "input_length", |c: Caller<'_, T>| -> i64 { c.data().kernel().input().len() as i64 });
    define!(l, g, "input_load_u8", |c: Caller<'_, T>, offset: i64| -> Result<i32> {
        let input = c.data().kernel().input();
        let at = usize::try_from(offset).ok().filter(|&i| i < input.len());
        let at = at.ok_or_else(|| fault(HostFault::BadCall(format!("input offset {offset} is past the input"))))?;
        Ok(i32::from(input[at]))
    });
    define!(l, g, "input_load_u64", |c: Caller<'_, T>, offset: i64| -> Result<i64> {
        let input = c.data().kernel().input();
        let range = usize::try_from(offset).ok().and_then(|i| Some(i..i.checked_add(8)?)).filter(|r| r.end <= input.len());
        let range = range.ok_or_else(|| fault(HostFault::BadCall(format!("input offset {offset} + 8 is past the input"))))?;
        Ok(i64::from_le_bytes(input[range].try_into().expect("8 bytes")))
    });
    define!(l, g, "input_offset", |mut c: Caller<'_, T>| -> Result<i64> {
        c.data_mut().kernel_mut().input_offset().map(|h| h as i64).map_err(fault)
    });
    define!(l, g, "output_set", |mut c: Caller<'_, T>, handle: i64, len: i64| -> Result<()> {
        c.data_mut().kernel_mut().set_output(as_u64(handle), as_u64(len)).map_err(fault)
    });
    define!(l, g, "output_length", |c: Caller<'_, T>| -> i64 { c.data().kernel().output_handle().map_or(0, |(_, l)| l as i64) });
    define!(l, g, "output_offset", |c: Caller<'_, T>| -> i64 { c.data().kernel().output_handle().map_or(0, |(h, _)| h as i64) });
    define!(l, g, "error_set", |mut c: Caller<'_, T>, handle: i64| -> Result<()> {
        c.data_mut().kernel_mut().set_error(as_u64(handle)).map_err(fault)
    });
    define!(l, g, "error_get", |c: Caller<'_, T>| -> i64 { c.data().kernel().error_handle() as i64 });

    // Behind capabilities.
    define!(l, g, "config_get", |mut c: Caller<'_, T>, key: i64| -> Result<i64> {
        c.data_mut().kernel_mut().config_to_block(as_u64(key)).map(|h| h as i64).map_err(fault)
    });
    define!(l, g, "var_get", |mut c: Caller<'_, T>, key: i64| -> Result<i64> {
        c.data_mut().kernel_mut().var_to_block(as_u64(key)).map(|h| h as i64).map_err(fault)
    });
    define!(l, g, "var_set", |c: Caller<'_, T>, key: i64, value: i64| -> Result<()> {
        c.data().kernel().set_var_from_blocks(as_u64(key), as_u64(value)).map_err(fault)
    });
    define!(l, g, "http_request", |mut c: Caller<'_, T>, request: i64, body: i64| -> Result<i64> {
        let kernel = c.data_mut().kernel_mut();
        crate::abi::http::request(kernel, as_u64(request), as_u64(body)).map(|h| h as i64).map_err(fault)
    });
    define!(l, g, "http_status_code", |c: Caller<'_, T>| -> i32 { c.data().kernel().http_status });
    define!(l, g, "http_headers", |mut c: Caller<'_, T>| -> Result<i64> {
        let kernel = c.data_mut().kernel_mut();
        let Some(headers) = kernel.take_http_headers() else { return Ok(0) };
        kernel.alloc_bytes(headers.as_bytes()).map(|h| h as i64).map_err(fault)
    });
    define!(l, g, "get_log_level", |_c: Caller<'_, T>| -> i32 { LOG_LEVEL_INFO });
    define!(l, g, "log_trace", |mut c: Caller<'_, T>, h: i64| log(&mut c, "trace", h));
    define!(l, g, "log_debug", |mut c: Caller<'_, T>, h: i64| log(&mut c, "debug", h));
    define!(l, g, "log_info", |mut c: Caller<'_, T>, h: i64| log(&mut c, "info", h));
    define!(l, g, "log_warn", |mut c: Caller<'_, T>, h: i64| log(&mut c, "warn", h));
    define!(l, g, "log_error", |mut c: Caller<'_, T>, h: i64| log(&mut c, "error", h));
    Ok(())
}

fn log<T: KernelHost>(caller: &mut Caller<'_, T>, level: &'static str, handle: i64) -> Result<()> {
    caller.data_mut().kernel_mut().log(level, as_u64(handle)).map_err(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Host(Kernel);
    impl KernelHost for Host {
        fn kernel(&self) -> &Kernel {
            &self.0
        }
        fn kernel_mut(&mut self) -> &mut Kernel {
            &mut self.0
        }
    }

    /// The catalog's signatures are the ones the host really defines, so `vet`'s signature
    /// check and the linker cannot disagree.
    #[test]
    fn every_host_function_has_the_catalog_signature() {
        use crate::capability::{CATALOG, Names};
        let engine = wasmtime::Engine::default();
        let mut linker: Linker<Host> = Linker::new(&engine);
        add_to_linker(&mut linker, &|_| true).unwrap();
        let convert = |t: &wasmtime::ValType| match t {
            wasmtime::ValType::I32 => wasmparser::ValType::I32,
            wasmtime::ValType::I64 => wasmparser::ValType::I64,
            other => panic!("unexpected {other}"),
        };
        let mut store = wasmtime::Store::new(&engine, unreachable_host());
        let items: Vec<_> = linker.iter(&mut store).map(|(m, n, e)| (m.to_string(), n.to_string(), e)).collect();
        let mut defined = 0;
        for (module, name, item) in &items {
            let ty = item.ty(&store).unwrap_func().clone();
            let params: Vec<_> = ty.params().map(|t| convert(&t)).collect();
            let results: Vec<_> = ty.results().map(|t| convert(&t)).collect();
            let (want_params, want_results) = crate::capability::core_import_signature(module, name).expect(name);
            assert_eq!((params.as_slice(), results.as_slice()), (want_params, want_results), "{name}");
            defined += 1;
        }
        let catalogued = CATALOG.iter().filter(|r| r.module == EXTISM_ENV && matches!(r.names, Names::Exact(_))).count();
        assert_eq!(defined, catalogued, "every catalogued Extism function is defined, and no other");
    }

    fn unreachable_host() -> Host {
        let setup = super::super::KernelSetup {
            config: Default::default(),
            vars: std::sync::Arc::new(super::super::Vars::new(0)),
            http_allowlist: Default::default(),
            http_private: false,
            output_cap: 0,
        };
        Host(Kernel::new(&setup, crate::budget::MemoryBudget::standalone(0), std::time::Instant::now()))
    }
}
