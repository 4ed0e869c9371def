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

    // Operator errors: an invalid manifest, a module that is not wasm (binary or text).
    std::fs::write(&toml, "name = 5\n").unwrap();
    assert_tool_error(&stockade(&["annotate", s(&wasm), "--manifest", s(&toml), "-o", s(&out_path)]), "manifest.toml");
    std::fs::write(&toml, "name = \"x\"\nversion = \"1.0.0\"\n").unwrap();
    std::fs::write(&wasm, "(module (func (export \"f\") i32.wrong))").unwrap();
    assert_tool_error(&stockade(&["annotate", s(&wasm), "--manifest", s(&toml), "-o", s(&out_path)]), "plugin.wasm");
    std::fs::write(&wasm, b"\0asm\x01\0\0\0\x01\x99").unwrap();
    assert_tool_error(&stockade(&["annotate", s(&wasm), "--manifest", s(&toml), "-o", s(&out_path)]), "plugin.wasm");
    // A text module is encoded, then annotated.
    std::fs::write(&wasm, "(module (func (export \"f\")))").unwrap();
    assert_eq!(code(&stockade(&["annotate", s(&wasm), "--manifest", s(&toml), "-o", s(&out_path)])), 0);
    wasmparser::Validator::new().validate_all(&std::fs::read(&out_path).unwrap()).unwrap();
}

/// `stockade vet --format json` of one plugin: its exit status and its findings' codes.
fn vet_codes(plugin: &Path, policy: &Path) -> (i32, Vec<String>, serde_json::Value) {
    let out = stockade(&["vet", "--format", "json", "--policy", s(policy), s(plugin)]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let codes = json["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect();
    (code(&out), codes, json)
}

/// A plugin as a registry would publish it: a module with its manifest embedded (by `stockade
/// annotate`), in `dir`.
fn annotated_plugin(dir: &Path) -> PathBuf {
    let text = r#"(module (func (export "run") (result i32) i32.const 7))"#;
    let module = stockade::source::PluginFile::new("plugin.wat", text.as_bytes().to_vec()).binary().unwrap().into_owned();
    let bare = dir.join("bare.wasm");
    std::fs::write(&bare, &module).unwrap();
    let manifest = dir.join("plugin.toml.in");
    std::fs::write(&manifest, "name = \"greeter\"\nversion = \"1.0.0\"\ncapabilities = []\nexports = [\"run\"]\n").unwrap();
    let plugin = dir.join("plugin.wasm");
    let out = stockade(&["annotate", s(&bare), "--manifest", s(&manifest), "-o", s(&plugin)]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    plugin
}

/// The byte range of the first section `pick` selects.
fn section_range(module: &[u8], pick: impl Fn(&wasmparser::Payload<'_>) -> bool) -> std::ops::Range<usize> {
    wasmparser::Parser::new(0)
        .parse_all(module)
        .map(|p| p.unwrap())
        .find(|p| pick(p))
        .and_then(|p| p.as_section().map(|(_, range)| range))
        .expect("the section is there")
}

/// A copy of the signed plugin (signatures and all) in a directory of its own, with `change`
/// applied to the module's bytes.
fn changed_copy(plugin: &Path, name: &str, change: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let dir = plugin.parent().unwrap().join(name);
    std::fs::create_dir(&dir).unwrap();
    let mut bytes = std::fs::read(plugin).unwrap();
    change(&mut bytes);
    let copy = dir.join("plugin.wasm");
    std::fs::write(&copy, bytes).unwrap();
    for suffix in [".sig", ".sigstore.json"] {
        let from = stockade::atomic::with_suffix(plugin, suffix);
        if from.exists() {
            std::fs::copy(&from, stockade::atomic::with_suffix(&copy, suffix)).unwrap();
        }
    }
    copy
}

#[test]
fn vet_under_a_key_rule_passes_the_signed_plugin_and_says_which_way_each_other_fails() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = annotated_plugin(dir.path());
    for name in ["registry", "stranger"] {
        assert_eq!(code(&stockade(&["keygen", "--output-key-prefix", s(&dir.path().join(name))])), 0);
    }
    // The policy names the key by a path relative to the policy file.
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[policy]\nname = \"registry\"\n[signatures]\nrequired = true\n[signatures.signers]\nanyOf = [{ pubKey = { key = \"registry.pub\" } }]\n",
    )
    .unwrap();

    // No signature yet.
    let (status, codes, _) = vet_codes(&plugin, &policy);
    assert_eq!((status, codes), (1, vec!["signature-missing".to_string()]));

    assert_eq!(code(&stockade(&["sign", s(&plugin), "--key", s(&dir.path().join("registry.key"))])), 0);
    let (status, codes, json) = vet_codes(&plugin, &policy);
    assert_eq!((status, codes.len()), (0, 0), "{json}");

    // One byte of the code changed (`i32.const 7` made `i32.const 8`: still a valid module).
    let module = std::fs::read(&plugin).unwrap();
    let code_section = section_range(&module, |p| matches!(p, wasmparser::Payload::CodeSectionStart { .. }));
    let at = code_section.start + module[code_section.clone()].windows(2).position(|w| w == [0x41, 0x07]).unwrap() + 1;
    let code_changed = changed_copy(&plugin, "code-changed", |bytes| bytes[at] = 0x08);
    let (status, codes, json) = vet_codes(&code_changed, &policy);
    assert_eq!(status, 1);
    assert!(codes.iter().all(|c| c == "signature-invalid") && !codes.is_empty(), "{json}");
    assert!(json.to_string().contains("changed since signing"), "{json}");

    // One byte of the embedded manifest changed (`greeter` made `greetes`).
    let manifest_section = section_range(&module, |p| matches!(p, wasmparser::Payload::CustomSection(c) if c.name() == "stockade.manifest"));
    let at = manifest_section.start + module[manifest_section.clone()].windows(7).position(|w| w == b"greeter").unwrap() + 6;
    let manifest_changed = changed_copy(&plugin, "manifest-changed", |bytes| bytes[at] = b's');
    let (status, codes, json) = vet_codes(&manifest_changed, &policy);
    assert_eq!(status, 1);
    assert!(codes.iter().all(|c| c == "signature-invalid") && !codes.is_empty(), "{json}");

    // Signed by a key the policy does not trust: the bundle names it, so this is not taken for
    // a changed file.
    let stranger = changed_copy(&plugin, "stranger", |_| {});
    assert_eq!(code(&stockade(&["sign", s(&stranger), "--key", s(&dir.path().join("stranger.key"))])), 0);
    let (status, codes, json) = vet_codes(&stranger, &policy);
    assert_eq!((status, codes), (1, vec!["signer-untrusted".to_string()]), "{json}");
    let stranger_pub = stockade::signature::public_key_from_pem(&std::fs::read_to_string(dir.path().join("stranger.pub")).unwrap()).unwrap();
    let named = format!("key sha256:{}", stockade::signature::fingerprint(&stranger_pub));
    assert!(json.to_string().contains(&named), "the untrusted key is named: {json}");
    // A blob signature alone cannot say which key made it: that is refused as invalid.
    std::fs::remove_file(stockade::atomic::with_suffix(&stranger, ".sigstore.json")).unwrap();
    let (status, codes, _) = vet_codes(&stranger, &policy);
    assert_eq!((status, codes), (1, vec!["signature-invalid".to_string()]));

    // A policy that trusts both keys in an allOf needs both signatures; the one key signing twice
    // does not make two signers.
    std::fs::write(
        &policy,
        "[policy]\nname = \"two\"\n[signatures]\nrequired = true\n[signatures.signers]\nanyOf = [{ pubKey = { key = \"registry.pub\" } }, { pubKey = { key = \"stranger.pub\" } }]\nminimumMatches = 2\n",
    )
    .unwrap();
    let (status, codes, _) = vet_codes(&plugin, &policy);
    assert_eq!((status, codes), (1, vec!["signer-untrusted".to_string()]));
    let cosigned = stockade::atomic::with_suffix(&plugin, ".sigstore.json");
    let out = stockade(&["sign", s(&plugin), "--key", s(&dir.path().join("stranger.key")), "--no-bundle"]);
    assert_eq!(code(&out), 0);
    // Now: the registry's bundle and the stranger's blob signature.
    assert!(cosigned.exists());
    let (status, codes, json) = vet_codes(&plugin, &policy);
    assert_eq!((status, codes.len()), (0, 0), "{json}");

    // inspect shows who signed and what was checked.
    let out = stockade(&["inspect", "--policy", s(&policy), s(&plugin)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("plugin.wasm.sig  verified: signed by key sha256:"), "{text}");
    assert!(text.contains("checked    signature by the given key"), "{text}");
    assert!(text.contains("requires a signature; it trusts 2 of (key sha256:"), "{text}");
}

#[test]
fn a_policys_unusable_trust_material_is_a_tool_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = common::fixture_module("benign-extism");
    std::fs::write(dir.path().join("not.pub"), "hello").unwrap();
    std::fs::write(dir.path().join("good.pub"), stockade::signature::generate_key_pair().unwrap().1).unwrap();
    let cases = [
        ("anyOf = [{ pubKey = { key = \"missing.pub\" } }]", "signatures.signers.anyOf[0].pubKey.key"),
        ("anyOf = [{ pubKey = { key = \"not.pub\" } }]", "signatures.signers.anyOf[0].pubKey.key"),
        ("anyOf = [{ pubKey = { key = \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\" } }]", "pubKey.key"),
        ("anyOf = []", "signatures.signers.anyOf"),
        ("anyOf = [{ pubKey = { key = \"good.pub\" } }]\nminimumMatches = 2", "minimumMatches"),
        ("pubKey = { key = \"good.pub\" }\nminimumMatches = 1", "minimumMatches"),
        ("allOf = [{ keyless = { issuer = \"https://x\", subject = { equal = \"a\", regexp = \"b\" } } }]", "signatures.signers.allOf[0].keyless.subject"),
        ("anyOf = [{ keyless = { issuer = \"https://x\", subject = { regexp = \"(\" } } }]", "keyless.subject"),
        ("anyOf = [{ keyless = { issuer = \"https://x\", subject = { urlPrefix = \"github.com/acme\" } } }]", "keyless.subject"),
        ("pubKey = { key = \"not.pub\" }\nkeyless = { issuer = \"https://x\", subject = { equal = \"a\" } }", "signatures.signers"),
        ("anyOf = [{ pubKey = { key = \"good.pub\", extra = 1 } }]", "extra"),
    ];
    for (i, (rule, field)) in cases.iter().enumerate() {
        let policy = dir.path().join(format!("p{i}.toml"));
        std::fs::write(&policy, format!("[policy]\nname = \"p\"\n[signatures]\nrequired = true\n[signatures.signers]\n{rule}\n")).unwrap();
        assert_tool_error(&stockade(&["vet", "--policy", s(&policy), s(&plugin)]), field);
    }
    let policy = dir.path().join("root.toml");
    std::fs::write(&policy, "[policy]\nname = \"p\"\n[signatures]\ntrusted-root = \"not.pub\"\n").unwrap();
    assert_tool_error(&stockade(&["vet", "--policy", s(&policy), s(&plugin)]), "signatures.trusted-root");
}

/// The keyless rules of a policy, decided by the same assessment `vet` makes, over real public
/// bundles and the files they sign (no keyless bundle over a wasm module can be made offline).
#[test]
fn keyless_rules_accept_the_identity_they_name_and_nothing_else() {
    let assess = |rule: &str, artifact: &Path, bundle: &Path| {
        let text = format!("[policy]\nname = \"k\"\n[signatures]\nrequired = true\n[signatures.signers]\n{rule}\n");
        let policy = stockade::policy::Policy::from_toml(&text, stockade::document::Origin::File("k.toml".into())).unwrap();
        let files = [stockade::signature::SignatureFile { path: bundle.to_path_buf(), bytes: std::fs::read(bundle) }];
        policy.signatures.trusted().assess(&std::fs::read(artifact).unwrap(), &files).outcome
    };
    use stockade::signature::Outcome;
    let (blob, blob_bundle) = (data("cosign-v3-blob.txt"), data("cosign-v3-blob.sigstore.json"));
    let (conda, conda_bundle) = (data("signed-package-2.1.0-hb0f4dca_0.conda"), data("conda-attestation.sigstore.json"));
    let email = r#"anyOf = [{ keyless = { issuer = "https://github.com/login/oauth", subject = { equal = "w.vollprecht@gmail.com" } } }]"#;
    assert_eq!(assess(email, &blob, &blob_bundle), Outcome::Trusted);
    let actions = r#"anyOf = [{ keyless = { issuer = "https://token.actions.githubusercontent.com", subject = { urlPrefix = "https://github.com/prefix-dev/" } } }]"#;
    assert_eq!(assess(actions, &conda, &conda_bundle), Outcome::Trusted);
    // Either of the two, by a pattern.
    let pattern = r#"anyOf = [{ keyless = { issuer = "https://github.com/login/oauth", subject = { regexp = "w\\.vollprecht@.*" } } }]"#;
    assert_eq!(assess(pattern, &blob, &blob_bundle), Outcome::Trusted);

    // The right identity from another issuer, another identity, a prefix that is not a path
    // boundary: valid signatures, untrusted signers.
    for rule in [
        r#"anyOf = [{ keyless = { issuer = "https://accounts.google.com", subject = { equal = "w.vollprecht@gmail.com" } } }]"#,
        r#"anyOf = [{ keyless = { issuer = "https://github.com/login/oauth", subject = { equal = "someone@example.com" } } }]"#,
        r#"anyOf = [{ keyless = { issuer = "https://github.com/login/oauth", subject = { regexp = "vollprecht" } } }]"#,
    ] {
        assert!(matches!(assess(rule, &blob, &blob_bundle), Outcome::Untrusted(reason) if reason.contains("w.vollprecht@gmail.com")), "{rule}");
    }
    let not_a_boundary = r#"anyOf = [{ keyless = { issuer = "https://token.actions.githubusercontent.com", subject = { urlPrefix = "https://github.com/prefix" } } }]"#;
    assert!(matches!(assess(not_a_boundary, &conda, &conda_bundle), Outcome::Untrusted(_)));
    // Both identities required: one bundle has one of them.
    let both = format!("allOf = [{{ keyless = {{ issuer = \"https://github.com/login/oauth\", subject = {{ equal = \"w.vollprecht@gmail.com\" }} }} }}, {}]", &actions[9..actions.len() - 1]);
    assert!(matches!(assess(&both, &blob, &blob_bundle), Outcome::Untrusted(_)), "{both}");

    // A changed file, whatever the rule.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(assess(email, &tampered(dir.path(), &blob), &blob_bundle), Outcome::Invalid);
    // A trusted root that is not the one the certificate chains to: not verified.
    let other_root = data("scaffolding-trusted-root.json");
    let text = format!(
        "[policy]\nname = \"k\"\n[signatures]\nrequired = true\ntrusted-root = \"{}\"\n[signatures.signers]\n{email}\n",
        s(&other_root)
    );
    let policy = stockade::policy::Policy::from_toml(&text, stockade::document::Origin::File("k.toml".into())).unwrap();
    let files = [stockade::signature::SignatureFile { path: blob_bundle.clone(), bytes: std::fs::read(&blob_bundle) }];
    assert_eq!(policy.signatures.trusted().assess(&std::fs::read(&blob).unwrap(), &files).outcome, Outcome::Invalid);
}

/// README, "Signing a plugin", step by step: keygen, a copy of registry-strict trusting the key,
/// annotate, sign, verify, vet, and a `run` under the same policy.
#[test]
fn the_readme_signing_walkthrough_works_under_registry_strict() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/signatures/src");
    std::fs::copy(corpus.join("plugin.wat"), at("plugin.wat")).unwrap();
    std::fs::copy(corpus.join("plugin.toml"), at("plugin.toml")).unwrap();
    let strict = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/registry-strict.toml")).unwrap();
    std::fs::write(at("ci-policy.toml"), format!("{strict}\n[signatures.signers]\nanyOf = [{{ pubKey = {{ key = \"registry.pub\" }} }}]\n")).unwrap();
    let ok = |args: &[&str]| {
        let out = stockade(args);
        assert_eq!(code(&out), 0, "{args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["keygen", "--output-key-prefix", s(&at("registry"))]);
    ok(&["annotate", s(&at("plugin.wat")), "--manifest", s(&at("plugin.toml")), "-o", s(&at("plugin.wasm"))]);
    let (status, codes, _) = vet_codes(&at("plugin.wasm"), &at("ci-policy.toml"));
    assert_eq!((status, codes), (1, vec!["signature-missing".to_string()]));
    ok(&["sign", s(&at("plugin.wasm")), "--key", s(&at("registry.key"))]);
    assert!(ok(&["verify", s(&at("plugin.wasm")), "--key", s(&at("registry.pub"))]).starts_with("Verified OK"));
    assert!(ok(&["vet", "--policy", s(&at("ci-policy.toml")), s(&at("plugin.wasm"))]).contains("PASS"));
    let out = ok(&["run", s(&at("plugin.wasm")), "--call", "run", "--policy", s(&at("ci-policy.toml"))]);
    assert!(out.contains('7'), "{out}");
    // The shipped registry-strict itself trusts nobody yet.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/registry-strict.toml");
    let (status, codes, _) = vet_codes(&at("plugin.wasm"), &shipped);
    assert_eq!((status, codes), (1, vec!["signer-untrusted".to_string()]));
}
