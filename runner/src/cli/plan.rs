//! `stockade plan`: which plugins of a directory would load together, and in what order.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use stockade::host::{discover, plan};
use stockade::report;

use super::{HumanOrJson, PolicyArg, Status};

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// The plugins: one subdirectory per plugin (plugin.wasm or plugin.wat, with plugin.toml
    /// or an embedded manifest), or modules with embedded manifests directly in it.
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    #[command(flatten)]
    policy: PolicyArg,

    /// The host API version the plugins' `host` ranges are checked against.
    #[arg(long, value_name = "VERSION", default_value_t = stockade::vet::HOST_API_VERSION)]
    host_version: semver::Version,

    #[arg(long, short = 'f', value_enum, default_value_t = HumanOrJson::Human)]
    format: HumanOrJson,
}

const AFTER_HELP: &str = "\
Examples:
  stockade plan plugins/
  stockade plan plugins/ --policy policies/registry-strict.toml --host-version 2.1.0 --format json

The load order is topological over dependencies, `before` and `after`, with `priority` breaking
ties (lower first, then the name). A plugin refused by vetting, one whose dependency is missing,
refused or of another version, one in a cycle, one that declares a conflict with a plugin in the
set, a later exclusive claim on an event type and two plugins of one name do not load; each is a
problem with its code (`stockade explain CODE`). JSON: schema `stockade.plan/1`, with `order`
(names) and `problems` (code, message, plugins).

Exit status:
  0  every plugin loads
  1  at least one does not (the problems say why)
  2  the tool could not do its job (unreadable directory or plugin, malformed policy, bad arguments)";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let policy = self.policy.load()?;
        let paths = discover::plugin_paths(&self.dir).with_context(|| format!("cannot read the plugin directory {}", self.dir.display()))?;
        let options = stockade::vet::VetOptions { host_api: self.host_version.clone(), ..stockade::vet::VetOptions::new(&policy) };
        let (candidates, refused) = discover::vet_all(&paths, &options);
        let candidates: Vec<plan::Candidate> = candidates.into_iter().map(|(c, _)| c).collect();
        let plan = plan::plan(&candidates, &refused);
        let text = match self.format {
            HumanOrJson::Json => format!("{}\n", report::plan::json(&plan)),
            HumanOrJson::Human => report::plan::human(&plan, &candidates, paths.len(), policy.name(), &self.host_version),
        };
        let mut out = anstream::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(if plan.loads_everything() { Status::Ok } else { Status::Findings })
    }
}
