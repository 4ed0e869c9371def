//! `stockade annotate`: embed a plugin's manifest in its module, so that a signature covers it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use stockade::document::Origin;
use stockade::manifest::{self, Manifest};

use super::Status;

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// The module (binary WebAssembly, or text, which is encoded first).
    #[arg(value_name = "PLUGIN")]
    plugin: PathBuf,

    /// The manifest to embed (TOML, as plugin.toml).
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,

    /// Where the annotated module goes (may be PLUGIN itself).
    #[arg(long, short = 'o', value_name = "OUT")]
    output: PathBuf,
}

const AFTER_HELP: &str = "\
Examples:
  stockade annotate plugin.wasm --manifest plugin.toml -o plugin.wasm
  stockade sign plugin.wasm --key registry.key

A text module (.wat) is encoded to binary first. The manifest is checked, then stored as JSON in the module's one `stockade.manifest` custom
section (one already there is replaced); every other section is copied byte for byte. Vet
reads an embedded manifest before a plugin.toml beside the module. Annotate before signing:
the signature covers the whole module, the embedded manifest with it.

Exit status:
  0  written
  2  the tool could not do its job (unreadable or invalid manifest, a module that is not
     WebAssembly, unwritable output)";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let raw = stockade::source::read_regular(&self.plugin, stockade::source::MAX_MODULE_BYTES).with_context(|| format!("cannot read {}", self.plugin.display()))?;
        // A text module is encoded first: what is signed and shipped is the binary.
        let source = stockade::source::PluginFile::new(&self.plugin, raw);
        let module = source.binary().map_err(|e| anyhow::anyhow!("{}: {e}", self.plugin.display()))?;
        let text = stockade::source::read_regular_text(&self.manifest, stockade::source::MAX_DOCUMENT_BYTES).with_context(|| format!("cannot read the manifest {}", self.manifest.display()))?;
        let origin = Origin::File(self.manifest.display().to_string());
        Manifest::from_toml(&text, origin.clone())?;
        // The TOML document as JSON, key for key, then read back as the section will be.
        let value: toml::Value = toml::from_str(&text).with_context(|| format!("the manifest {}", self.manifest.display()))?;
        let json = serde_json::to_vec(&value)?;
        Manifest::from_json(std::str::from_utf8(&json)?, origin).context("the manifest does not survive its conversion to JSON")?;
        let annotated = manifest::embed(&module, &json).with_context(|| format!("{}", self.plugin.display()))?;
        stockade::atomic::write(&self.output, &[&annotated], stockade::atomic::Kind::Published)
            .with_context(|| format!("cannot write {}", self.output.display()))?;
        writeln!(anstream::stdout().lock(), "wrote {} ({} bytes of manifest embedded)", self.output.display(), json.len())?;
        Ok(Status::Ok)
    }
}
