//! The grant decision: what one plugin may use. Declared ∩ granted when the plugin has a
//! manifest, granted alone when it has none. `vet`, the linker and `inspect` all ask this one
//! type, so that what `vet` passes is what the sandbox links.

use crate::capability::{self, Capability, FsMode, ImportClass, Need};
use crate::code::{Code, Severity};
use crate::manifest::Manifest;
use crate::policy::{FsGrant, Policy};

/// What this plugin may link against: the policy's grants, narrowed to what its manifest
/// declares when it has one.
pub struct PluginGrants<'a> {
    policy: &'a Policy,
    declared: Option<&'a [Capability]>,
}

impl<'a> PluginGrants<'a> {
    pub fn new(policy: &'a Policy, manifest: Option<&'a Manifest>) -> PluginGrants<'a> {
        PluginGrants { policy, declared: manifest.map(|m| &m.capabilities[..]) }
    }

    /// Whether the plugin may use `need`. With a manifest: a declared capability that covers
    /// it and that the policy grants; an undeclared need only when the policy grants it *and*
    /// does not treat `undeclared-capability` as an error (as `permissive-dev` does, for
    /// authors). `vet` refuses exactly the needs this refuses, so what it passes links.
    pub fn allows(&self, need: &Need) -> bool {
        match self.declared {
            None => self.policy.grants_need(need),
            Some(declared) if declared.iter().any(|c| c.covers(need)) => {
                declared.iter().any(|c| c.covers(need) && self.policy.grants(c))
            }
            Some(_) => {
                self.policy.grants_need(need)
                    && self.policy.severity_of(Code::UndeclaredCapability) != Some(Severity::Error)
            }
        }
    }

    /// The directories to preopen: the policy's `fs` grants, narrowed to what the manifest
    /// declares (and to the declared mode) when it has one.
    pub fn preopens(&self) -> Vec<(FsGrant, FsMode)> {
        let grants = &self.policy.capabilities.fs;
        match self.declared {
            None => grants.iter().map(|g| (g.clone(), g.mode)).collect(),
            Some(declared) => declared
                .iter()
                .filter_map(|c| match c {
                    Capability::Fs { mode, path } => grants
                        .iter()
                        .find(|g| g.guest == *path && g.mode.covers(*mode))
                        .map(|g| (g.clone(), *mode)),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The hosts HTTP requests may go to: the manifest's declared `http:` hosts that the
    /// policy grants, or without a manifest the policy's list.
    pub fn http_allowlist(&self) -> Vec<String> {
        match self.declared {
            None => self.policy.capabilities.http.clone(),
            Some(declared) => declared
                .iter()
                .filter(|c| self.policy.grants(c))
                .filter_map(|c| match c {
                    Capability::Http { host } => Some(host.clone()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Whether the import `module.name` may be linked to the host's function. A name the
    /// catalog does not know is never linked.
    pub fn allows_import(&self, module: &str, name: &str) -> bool {
        match capability::classify_core_import(module, name).0 {
            ImportClass::Core => true,
            ImportClass::Needs(need) => self.allows(&need),
            ImportClass::Unknown => false,
        }
    }
}

