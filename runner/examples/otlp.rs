//! The host's call spans exported as OpenTelemetry spans over OTLP/HTTP: each `plugin.call`
//! span (named `PLUGIN.FUNCTION` through `otel.name`, with `plugin.name`, `plugin.version`,
//! `plugin.function`, `plugin.outcome`, `plugin.duration_ms` and the status) goes to the
//! collector at `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4318`). The library
//! depends on `tracing` only; this example adds `tracing-opentelemetry` and the OTLP exporter
//! behind the `otlp` feature:
//!
//!     docker run -p 4318:4318 -p 16686:16686 jaegertracing/all-in-one   # or any collector
//!     cargo run --release --features otlp --example otlp
//!
//! It compiles the example pipeline's program a few times (see compiler_pipeline.rs).

use std::path::Path;

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use stockade::Policy;
use stockade::host::Host;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("stockade-host"))).init();

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/compiler-pipeline/plugins");
    let host = Host::builder(Policy::builtin_default()).build()?;
    let report = host.load_dir(&dir)?;
    println!("loaded: {}", report.loaded.join(", "));
    for _ in 0..5 {
        let mut program = String::new();
        for event in ["parse", "optimize"] {
            for (plugin, handler) in host.subscribers(event) {
                let input = if event == "parse" { "a = 1 + 2\n".to_string() } else { program.clone() };
                program = host.call_str(&plugin, &handler, &input)?;
            }
        }
    }
    // A failing call, so that an error span is exported too.
    let _ = host.call("parse", "parse", b"not a program");
    provider.shutdown()?;
    println!("spans exported to {}", std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|_| "http://localhost:4318".into()));
    Ok(())
}
