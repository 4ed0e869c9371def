//! Signatures, checked offline: Sigstore bundles (keyless, with a Fulcio certificate, or made
//! with a key) by the `sigstore-verify` crate, and cosign's blob signatures (a base64 ECDSA
//! P-256 signature beside the file) with the key alone. Nothing here touches the network.
//!
//! Stricter than the crate: a transparency-log entry must carry an inclusion proof whatever the
//! bundle's version (the crate accepts a v0.1 bundle on its signed entry timestamp alone).
//! Identities are matched here, after the crate has verified the certificate: exactly, by a URL
//! prefix cut at a path boundary, or by a regular expression over the whole identity.

mod keys;
mod signers;

use sigstore_verify::crypto::VerificationKey;
use sigstore_verify::trust_root::TrustedRoot;
use sigstore_verify::types::bundle::VerificationMaterialContent;
use sigstore_verify::types::{Bundle, DerPublicKey, SignatureBytes};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, Verifier};

pub use keys::{KeySignature, fingerprint, generate_key_pair, hint, public_key_from_pem, sign};
pub use signers::{Assessment, Checked, FieldError, FileVerdict, KeyEntry, KeylessEntry, Outcome, SignatureFile, SignerRule, SubjectEntry, TrustedSigners};

/// What the operator trusts: a Sigstore trusted root (the public-good production root, compiled
/// in, unless another is given), ready to verify against.
pub struct Trust {
    verifier: Verifier,
}

/// The operator's trust material is unusable: a tool error (exit 2), not a finding.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrustError(pub String);

impl Trust {
    /// The Sigstore public-good instance's trusted root, as shipped with `sigstore-verify`:
    /// built once per process, when first needed.
    pub fn public_good() -> &'static Trust {
        static PUBLIC_GOOD: std::sync::OnceLock<Trust> = std::sync::OnceLock::new();
        PUBLIC_GOOD.get_or_init(|| {
            Trust::from_json(sigstore_verify::trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT).expect("the compiled-in trusted root is valid")
        })
    }

    pub fn from_json(text: &str) -> Result<Trust, TrustError> {
        let root = TrustedRoot::from_json(text).map_err(|e| TrustError(format!("not a Sigstore trusted root: {e}")))?;
        let verifier = Verifier::new(&root).map_err(|e| TrustError(format!("unusable trusted root: {e}")))?;
        Ok(Trust { verifier })
    }
}

/// How a certificate's identity (its subject alternative name) must look.
#[derive(Clone, Debug)]
pub enum Identity {
    Equal(String),
    /// The identity starts with this URL and the prefix ends at a path boundary: the prefix
    /// ends with `/`, or the identity goes on with `/` or `@` (a workflow's ref), or is equal.
    UrlPrefix(String),
    /// A regular expression the whole identity must match: the pattern as given, and compiled
    /// anchored at both ends.
    Regexp { pattern: String, anchored: regex::Regex },
}

impl Identity {
    pub fn regexp(pattern: &str) -> Result<Identity, TrustError> {
        let anchored = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| TrustError(format!("bad identity pattern: {e}")))?;
        Ok(Identity::Regexp { pattern: pattern.to_string(), anchored })
    }

    pub fn matches(&self, identity: &str) -> bool {
        match self {
            Identity::Equal(expected) => identity == expected,
            Identity::UrlPrefix(prefix) => match identity.strip_prefix(prefix.as_str()) {
                Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/') || rest.starts_with('@'),
                None => false,
            },
            Identity::Regexp { anchored, .. } => anchored.is_match(identity),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Equal(s) => write!(f, "`{s}`"),
            Identity::UrlPrefix(s) => write!(f, "a URL under `{s}`"),
            Identity::Regexp { pattern, .. } => write!(f, "an identity matching `{pattern}`"),
        }
    }
}

/// What a signature must show besides being valid.
#[derive(Clone, Debug, Default)]
pub struct Expectation {
    /// Keyless: the certificate's identity.
    pub identity: Option<Identity>,
    /// Keyless: the certificate's OIDC issuer, exactly.
    pub issuer: Option<String>,
    /// Made with this key (a key-signed bundle or a blob signature) instead of a certificate.
    pub key: Option<DerPublicKey>,
}

/// Who signed, and what was checked.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verified {
    pub signer: Signer,
    /// The checks that passed, in words (for `inspect` and `verify`).
    pub checks: Vec<&'static str>,
    /// Verified signing times (RFC 3339).
    pub times: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Signer {
    /// A key: its SHA-256 fingerprint (of the DER public key).
    Key { fingerprint: String },
    Keyless { identity: String, issuer: Option<String> },
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key { fingerprint } => write!(f, "key sha256:{fingerprint}"),
            Signer::Keyless { identity, issuer } => write!(f, "`{identity}` (issuer `{}`)", issuer.as_deref().unwrap_or("none")),
        }
    }
}

/// Why a signature was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The signature file cannot be read as what it claims to be.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// A check failed: the bytes changed, the chain, the log entry, a timestamp …
    #[error("signature does not verify: {0}")]
    Invalid(String),
    /// Valid, but not by whom it had to be.
    #[error("signer not trusted: {0}")]
    Untrusted(String),
}

/// Verifies a Sigstore bundle (JSON) over `artifact`.
pub fn verify_bundle(artifact: &[u8], bundle_json: &str, expect: &Expectation, trust: &Trust) -> Result<Verified, Refusal> {
    let bundle = Bundle::from_json(bundle_json).map_err(|e| Refusal::Malformed(format!("not a Sigstore bundle: {e}")))?;
    for (i, entry) in bundle.verification_material.tlog_entries.iter().enumerate() {
        if entry.inclusion_proof.is_none() {
            return Err(Refusal::Invalid(format!(
                "transparency-log entry {i} (log index {}) has no inclusion proof; a signed entry timestamp alone is not accepted",
                entry.log_index.get()
            )));
        }
    }
    let mut checks = Vec::new();
    let mut times = Vec::new();
    let signer = if let Some(key) = &expect.key {
        // A key signature need not be logged (the key is the trust), but a log entry that is
        // there must verify, inclusion proof and all.
        let logged = !bundle.verification_material.tlog_entries.is_empty();
        if !logged && bundle.verification_material.timestamp_verification_data.rfc3161_timestamps.is_empty() {
            return verify_unlogged_key_bundle(artifact, &bundle, key);
        }
        let mut policy = PublicKeyVerificationPolicy::new(key.clone());
        if !logged {
            policy = policy.skip_tlog_unsafe();
        }
        if !matches!(bundle.verification_material.content, VerificationMaterialContent::PublicKey(_)) {
            return Err(Refusal::Invalid("the bundle was signed with a certificate, not with a key".into()));
        }
        let result = trust.verifier.verify(artifact, &bundle, &policy).map_err(invalid)?;
        checks.push("signature by the given key");
        if logged && result.tlog_verified() {
            checks.push("transparency-log inclusion proof and checkpoint");
        }
        times.extend(result.verified_timestamps().iter().map(|t| t.to_string()));
        Signer::Key { fingerprint: fingerprint(key) }
    } else {
        let mut policy = VerificationPolicy::any_identity();
        if let Some(issuer) = &expect.issuer {
            policy = policy.require_issuer(issuer.clone());
        }
        let result = trust.verifier.verify(artifact, &bundle, &policy).map_err(|e| match e {
            e @ (sigstore_verify::Error::IssuerMismatch { .. } | sigstore_verify::Error::IdentityMismatch { .. }) => Refusal::Untrusted(e.to_string()),
            sigstore_verify::Error::InvalidBundle(m) | sigstore_verify::Error::UnsupportedBundle(m) => Refusal::Malformed(m),
            other => invalid(other),
        })?;
        if !result.certificate_verified() {
            return Err(Refusal::Invalid("the signing certificate was not verified against the trusted root".into()));
        }
        let identity = result.identity().map(|san| san.as_str().to_string()).unwrap_or_default();
        if let Some(rule) = &expect.identity
            && !rule.matches(&identity)
        {
            return Err(Refusal::Untrusted(format!("the certificate's identity is `{identity}`, not {rule}")));
        }
        checks.push("certificate chain to the trusted root at the signing time");
        if result.sct_verified() {
            checks.push("certificate transparency (SCT)");
        }
        if result.tlog_verified() && !bundle.verification_material.tlog_entries.is_empty() {
            checks.push("transparency-log inclusion proof and checkpoint");
        }
        checks.push("signature by the certificate's key");
        if expect.identity.is_some() || expect.issuer.is_some() {
            checks.push("identity and issuer as required");
        }
        times.extend(result.verified_timestamps().iter().map(|t| t.to_string()));
        Signer::Keyless { identity, issuer: result.issuer().map(str::to_string) }
    };
    times.sort();
    times.dedup();
    Ok(Verified { signer, checks, times })
}

/// A key-signed bundle with neither a log entry nor a timestamp, as `stockade sign` writes:
/// the crate refuses such a bundle outright (Sigstore's rule for keyless signatures, whose
/// certificate is only valid at a logged time), but for a key signature the key is the trust,
/// so its message signature is checked here: the digest it names is the file's, and the
/// signature over the file verifies with the key.
fn verify_unlogged_key_bundle(artifact: &[u8], bundle: &Bundle, key: &DerPublicKey) -> Result<Verified, Refusal> {
    use sigstore_verify::types::bundle::SignatureContent;
    let SignatureContent::MessageSignature(message) = &bundle.content else {
        return Err(Refusal::Malformed("a key-signed bundle without a log entry must hold a message signature".into()));
    };
    if let Some(digest) = &message.message_digest {
        use sha2::Digest;
        let matches = match digest.algorithm {
            sigstore_verify::types::HashAlgorithm::Sha2256 => sha2::Sha256::digest(artifact).as_slice() == digest.digest.as_bytes(),
            sigstore_verify::types::HashAlgorithm::Sha2384 => sha2::Sha384::digest(artifact).as_slice() == digest.digest.as_bytes(),
            sigstore_verify::types::HashAlgorithm::Sha2512 => sha2::Sha512::digest(artifact).as_slice() == digest.digest.as_bytes(),
            other => return Err(Refusal::Malformed(format!("unsupported digest algorithm {other:?}"))),
        };
        if !matches {
            return Err(Refusal::Invalid("the file's digest is not the one the bundle signs: the file changed since signing".into()));
        }
    }
    let key_for_check = VerificationKey::from_spki(key).map_err(|e| Refusal::Malformed(format!("unsupported key: {e}")))?;
    key_for_check
        .verify(artifact, &message.signature)
        .map_err(|_| Refusal::Invalid("the signature does not match the file and key".into()))?;
    Ok(Verified { signer: Signer::Key { fingerprint: fingerprint(key) }, checks: vec!["signature by the given key"], times: Vec::new() })
}

fn invalid(error: sigstore_verify::Error) -> Refusal {
    Refusal::Invalid(error.to_string())
}

/// Verifies a cosign blob signature (base64 of an ASN.1 ECDSA signature, as `cosign
/// sign-blob --output-signature` and `stockade sign` write it) over `artifact` with `key`.
pub fn verify_blob_signature(artifact: &[u8], signature: &[u8], key: &DerPublicKey) -> Result<Verified, Refusal> {
    let text = std::str::from_utf8(signature).map_err(|_| Refusal::Malformed("the signature is not base64 text".into()))?;
    let signature =
        SignatureBytes::from_base64(text.trim()).map_err(|e| Refusal::Malformed(format!("the signature is not base64: {e}")))?;
    let key_for_check = VerificationKey::from_spki(key).map_err(|e| Refusal::Malformed(format!("unsupported key: {e}")))?;
    key_for_check.verify(artifact, &signature).map_err(|_| Refusal::Invalid("the signature does not match the file and key".into()))?;
    Ok(Verified { signer: Signer::Key { fingerprint: fingerprint(key) }, checks: vec!["signature by the given key"], times: Vec::new() })
}

