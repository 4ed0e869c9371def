//! Signatures checked offline: real public Sigstore bundles nobody here made (copied from the
//! `sigstore-verify` crate's test data, see tests/data/sigstore/SOURCE.md), tampered copies of
//! them, and key signatures made by `stockade keygen` and `stockade sign`. Nothing here reaches
//! the network: the trusted root is compiled in.

mod common;

use common::{assert_tool_error, code, stockade};

use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore").join(name)
}

fn verify(args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["verify", "--format", "json"];
    all.extend_from_slice(args);
    let out = stockade(&all);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (code(&out), json)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A copy of `file` in `dir` with one byte changed.
fn tampered(dir: &Path, file: &Path) -> PathBuf {
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let path = dir.join(file.file_name().unwrap());
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_cosign_blob_bundle_verifies_with_its_identity_and_not_once_changed() {
    let (blob, bundle) = (data("cosign-v3-blob.txt"), data("cosign-v3-blob.sigstore.json"));
    let (status, json) = verify(&[
        s(&blob),
        "--bundle",
        s(&bundle),
        "--certificate-identity",
        "w.vollprecht@gmail.com",
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
    ]);
    assert_eq!(status, 0, "{json}");
    assert_eq!(json["signer"]["identity"], "w.vollprecht@gmail.com");
    let checks = json["checks"].to_string();
    for check in ["certificate chain", "SCT", "inclusion proof"] {
        assert!(checks.contains(check), "{check}: {json}");
    }

    // Another identity, another issuer: valid, but not the signer required.
    let (status, json) = verify(&[s(&blob), "--bundle", s(&bundle), "--certificate-identity", "someone@example.com"]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signer-untrusted")), "{json}");
    let (status, json) =
        verify(&[s(&blob), "--bundle", s(&bundle), "--certificate-oidc-issuer", "https://token.actions.githubusercontent.com"]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signer-untrusted")), "{json}");
    let (status, _) = verify(&[s(&blob), "--bundle", s(&bundle), "--certificate-identity-regexp", "w\\.vollprecht@.*"]);
    assert_eq!(status, 0);
    // The pattern must match the whole identity.
    let (status, _) = verify(&[s(&blob), "--bundle", s(&bundle), "--certificate-identity-regexp", "vollprecht"]);
    assert_eq!(status, 1);

    // One byte of the blob, or of the bundle's signature, changed.
    let dir = tempfile::tempdir().unwrap();
    let (status, json) = verify(&[s(&tampered(dir.path(), &blob)), "--bundle", s(&bundle)]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signature-invalid")), "{json}");
    let mut bundle_json: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let signature = bundle_json["messageSignature"]["signature"].as_str().unwrap().to_string();
    let flipped = if signature.starts_with('M') { signature.replacen('M', "N", 1) } else { format!("M{}", &signature[1..]) };
    bundle_json["messageSignature"]["signature"] = flipped.into();
    let changed = dir.path().join("changed.sigstore.json");
    std::fs::write(&changed, bundle_json.to_string()).unwrap();
    let (status, json) = verify(&[s(&blob), "--bundle", s(&changed)]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signature-invalid")), "{json}");
}

#[test]
fn a_conda_attestation_verifies_by_a_url_prefix_cut_at_a_path_boundary() {
    let (package, bundle) = (data("signed-package-2.1.0-hb0f4dca_0.conda"), data("conda-attestation.sigstore.json"));
    let issuer = "https://token.actions.githubusercontent.com";
    let with_prefix = |prefix: &str| {
        verify(&[s(&package), "--bundle", s(&bundle), "--certificate-identity-url-prefix", prefix, "--certificate-oidc-issuer", issuer])
    };
    let (status, json) = with_prefix("https://github.com/prefix-dev/sigstore-example/");
    assert_eq!(status, 0, "{json}");
    assert_eq!(json["signer"]["identity"], "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main");
    assert_eq!(with_prefix("https://github.com/prefix-dev/sigstore-example").0, 0);
    // Not a path boundary: another repository whose name starts the same way.
    assert_eq!(with_prefix("https://github.com/prefix-dev/sigstore-ex").0, 1);
    assert_eq!(with_prefix("https://github.com/someone-else/").0, 1);

    let dir = tempfile::tempdir().unwrap();
    let (status, json) = verify(&[s(&tampered(dir.path(), &package)), "--bundle", s(&bundle)]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signature-invalid")), "{json}");
}

#[test]
fn a_key_signed_bundle_verifies_with_its_key_only() {
    let (artifact, bundle, key) = (data("managed-key/artifact.txt"), data("managed-key/bundle.sigstore.json"), data("managed-key/key.pub"));
    let (status, json) = verify(&[s(&artifact), "--bundle", s(&bundle), "--key", s(&key)]);
    assert_eq!(status, 0, "{json}");
    assert_eq!(json["signer"]["kind"], "key");
    assert!(json["checks"].to_string().contains("inclusion proof"), "{json}");

    let dir = tempfile::tempdir().unwrap();
    let (status, _) = verify(&[s(&tampered(dir.path(), &artifact)), "--bundle", s(&bundle), "--key", s(&key)]);
    assert_eq!(status, 1);
    // Another key: the bundle is not this key's.
    let prefix = dir.path().join("other");
    assert_eq!(code(&stockade(&["keygen", "--output-key-prefix", s(&prefix)])), 0);
    let (status, json) = verify(&[s(&artifact), "--bundle", s(&bundle), "--key", s(&dir.path().join("other.pub"))]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signature-invalid")), "{json}");
}

#[test]
fn a_log_entry_without_an_inclusion_proof_is_refused_whatever_the_bundle_version() {
    // A v0.1 bundle whose entry carries only a signed entry timestamp: the crate would accept it.
    let bundle = data("dsse.sigstore.json");
    let (status, json) = verify(&[s(&data("cosign-v3-blob.txt")), "--bundle", s(&bundle)]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signature-invalid")), "{json}");
    assert!(json["reason"].as_str().unwrap().contains("no inclusion proof"), "{json}");
}

#[test]
fn keygen_sign_and_verify_a_plugin_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(common::fixture_module("benign-extism"), &plugin).unwrap();
    let prefix = dir.path().join("registry");
    assert_eq!(code(&stockade(&["keygen", "--output-key-prefix", s(&prefix)])), 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("registry.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the private key is its owner's only");
    }
    // A second keygen does not overwrite a key.
    assert_tool_error(&stockade(&["keygen", "--output-key-prefix", s(&prefix)]), "exists");

    let key = dir.path().join("registry.key");
    let public = dir.path().join("registry.pub");
    assert_eq!(code(&stockade(&["sign", s(&plugin), "--key", s(&key)])), 0);
    let signature = dir.path().join("plugin.wasm.sig");
    let (status, json) = verify(&[s(&plugin), "--key", s(&public), "--signature", s(&signature)]);
    assert_eq!(status, 0, "{json}");

    let changed = tempfile::tempdir().unwrap();
    let (status, json) = verify(&[s(&tampered(changed.path(), &plugin)), "--key", s(&public), "--signature", s(&signature)]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signature-invalid")), "{json}");
    std::fs::write(&signature, "not base64 !!\n").unwrap();
    let (status, json) = verify(&[s(&plugin), "--key", s(&public), "--signature", s(&signature)]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signature-invalid")), "{json}");

    // The operator's inputs: a key that is not PEM, a trusted root that is not one.
    let bad = dir.path().join("bad.pub");
    std::fs::write(&bad, "hello").unwrap();
    assert_tool_error(&stockade(&["verify", s(&plugin), "--key", s(&bad), "--signature", s(&signature)]), "bad.pub");
    assert_tool_error(&stockade(&["verify", s(&plugin), "--trusted-root", s(&bad)]), "trusted root");
    assert_tool_error(&stockade(&["sign", s(&plugin), "--key", s(&public)]), "PRIVATE KEY");
    // No bundle beside the plugin: refused, not a tool error.
    let out = stockade(&["verify", s(&plugin)]);
    assert_eq!(code(&out), 1);
}

#[test]
fn annotate_embeds_the_manifest_which_vet_reads_and_the_signature_covers() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("plugin.wasm");
    let text = r#"(module (import "extism:host/env" "input_length" (func (result i64)))
                   (@custom "stockade.manifest" "{\"name\": \"old\"}")
                   (func (export "greet") (result i32) i32.const 0))"#;
    let module = stockade::source::PluginFile::new("plugin.wat", text.as_bytes().to_vec()).binary().unwrap().into_owned();
    std::fs::write(&wasm, &module).unwrap();
    let toml = dir.path().join("manifest.toml");
    std::fs::write(&toml, "name = \"greeter\"\nversion = \"1.2.3\"\ncapabilities = []\n").unwrap();
    let out_path = dir.path().join("annotated.wasm");
    let out = stockade(&["annotate", s(&wasm), "--manifest", s(&toml), "-o", s(&out_path)]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let annotated = std::fs::read(&out_path).unwrap();
    // One manifest section, the new one; everything else as it was.
    let sections: Vec<(String, Vec<u8>)> = wasmparser::Parser::new(0)
        .parse_all(&annotated)
        .filter_map(|p| match p.unwrap() {
            wasmparser::Payload::CustomSection(c) => Some((c.name().to_string(), c.data().to_vec())),
            _ => None,
        })
        .collect();
    let manifests: Vec<_> = sections.iter().filter(|(name, _)| name == "stockade.manifest").collect();
    assert_eq!(manifests.len(), 1);
    assert!(String::from_utf8_lossy(&manifests[0].1).contains("greeter"));
    wasmparser::Validator::new().validate_all(&annotated).unwrap();
    // The sections before the old manifest are copied byte for byte (the old one was last,
    // and small: its id and size take two bytes).
    let old_section = wasmparser::Parser::new(0)
        .parse_all(&module)
        .find_map(|p| match p.unwrap() {
            wasmparser::Payload::CustomSection(c) => Some(c.range().start - 2),
            _ => None,
        })
        .unwrap();
    assert_eq!(annotated[..old_section], module[..old_section]);
    // Annotating again replaces the section: the same bytes.
    let again = dir.path().join("again.wasm");
    assert_eq!(code(&stockade(&["annotate", s(&out_path), "--manifest", s(&toml), "-o", s(&again)])), 0);
    assert_eq!(std::fs::read(&again).unwrap(), annotated);

    // vet reads the embedded manifest (no plugin.toml beside it).
    let out = stockade(&["inspect", "--format", "json", s(&out_path)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("greeter"), "{}", String::from_utf8_lossy(&out.stdout));

    // Signed after annotating: changing the embedded manifest breaks the signature.
    let prefix = dir.path().join("k");
    assert_eq!(code(&stockade(&["keygen", "--output-key-prefix", s(&prefix)])), 0);
    assert_eq!(code(&stockade(&["sign", s(&out_path), "--key", s(&dir.path().join("k.key"))])), 0);
    let public = dir.path().join("k.pub");
    let signature = dir.path().join("annotated.wasm.sig");
    assert_eq!(verify(&[s(&out_path), "--key", s(&public), "--signature", s(&signature)]).0, 0);
    let mut changed = annotated.clone();
    let at = changed.windows(7).position(|w| w == b"greeter").unwrap();
    changed[at] = b'G';
    let changed_path = dir.path().join("changed.wasm");
    std::fs::write(&changed_path, changed).unwrap();
    let (status, json) = verify(&[s(&changed_path), "--key", s(&public), "--signature", s(&signature)]);
    assert_eq!((status, json["code"].as_str()), (1, Some("signature-invalid")), "{json}");

    // Operator errors: an invalid manifest, a module that is not binary wasm.
    std::fs::write(&toml, "name = 5\n").unwrap();
    assert_tool_error(&stockade(&["annotate", s(&wasm), "--manifest", s(&toml), "-o", s(&out_path)]), "manifest.toml");
    std::fs::write(&wasm, "(module)").unwrap();
    std::fs::write(&toml, "name = \"x\"\nversion = \"1.0.0\"\n").unwrap();
    assert_tool_error(&stockade(&["annotate", s(&wasm), "--manifest", s(&toml), "-o", s(&out_path)]), "WebAssembly");
}
