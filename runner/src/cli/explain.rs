//! `stockade explain`: what a code means.

use std::io::Write;

use stockade::Code;
use stockade::code::Stage;

use super::Status;

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// The code to explain (e.g. `capability-denied`); every code when left out.
    #[arg(value_name = "CODE")]
    code: Option<String>,
}

const AFTER_HELP: &str = "\
Examples:
  stockade explain
  stockade explain unused-capability

Exit status:
  0  explained
  2  no such code";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let mut out = anstream::stdout().lock();
        match self.code {
            Some(name) => {
                let code: Code = name.parse()?;
                let stage = stage_name(code.stage());
                writeln!(out, "{code}: {}", code.summary())?;
                writeln!(out)?;
                writeln!(out, "  stage:            {stage}")?;
                writeln!(out, "  default severity: {}", code.default_severity())?;
                let overridable = if code.overridable() { "yes, in the policy's [severity] table" } else { "no" };
                writeln!(out, "  overridable:      {overridable}")?;
                writeln!(out)?;
                writeln!(out, "{}", textwrap(code.explanation(), 78))?;
            }
            None => {
                for (i, stage) in [Stage::Static, Stage::Runtime, Stage::Plan].into_iter().enumerate() {
                    let title = stage_name(stage);
                    writeln!(out, "{}{}{} codes:", if i > 0 { "\n" } else { "" }, title[..1].to_uppercase(), &title[1..])?;
                    for code in Code::ALL.iter().filter(|c| c.stage() == stage) {
                        writeln!(out, "  {:<24}{:<9}{}", code.as_str(), code.default_severity().as_str(), code.summary())?;
                    }
                }
            }
        }
        Ok(Status::Ok)
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Static => "static (vet)",
        Stage::Runtime => "runtime (run, conform)",
        Stage::Plan => "plan (stockade plan, the host library's loading)",
    }
}

/// Wraps a paragraph at word boundaries.
fn textwrap(text: &str, width: usize) -> String {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}
