//! Keys: reading public keys, naming them, making key pairs, and signing with them (the key
//! path of `stockade keygen` and `stockade sign`).

use base64::Engine;
use sha2::Digest;
use sigstore_verify::crypto::{KeyPair, VerificationKey};
use sigstore_verify::types::DerPublicKey;

use super::TrustError;

/// A public key from PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo).
pub fn public_key_from_pem(text: &str) -> Result<DerPublicKey, TrustError> {
    let key = DerPublicKey::from_pem(text.trim()).map_err(|e| TrustError(format!("not a PEM public key: {e}")))?;
    VerificationKey::from_spki(&key).map_err(|e| TrustError(format!("unsupported public key: {e}")))?;
    Ok(key)
}

/// The SHA-256 of a public key's DER encoding, in hex: how a key is named in reports.
pub fn fingerprint(key: &DerPublicKey) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// The key hint of a key-signed Sigstore bundle, as cosign and sigstore-go write it: the
/// base64 of the SHA-256 of the DER public key. Unauthenticated: it only says which key to
/// try; the signature is then checked with a key the policy holds.
pub fn hint(key: &DerPublicKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(key.as_bytes()))
}

/// A new ECDSA P-256 key pair: the private key as PKCS#8 PEM, the public key as PEM.
pub fn generate_key_pair() -> Result<(String, String), TrustError> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(|_| TrustError("cannot generate a key".into()))?;
    let pair = KeyPair::from_pkcs8_der(pkcs8.as_ref()).map_err(|e| TrustError(e.to_string()))?;
    let public = pair.public_key_der().map_err(|e| TrustError(e.to_string()))?;
    let private = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    Ok((private, public.to_pem()))
}

/// One key signature over a file, in the two forms `stockade sign` writes.
pub struct KeySignature {
    /// cosign's blob signature: the base64 of the ASN.1 ECDSA signature.
    pub blob: String,
    /// The same signature as a key-signed Sigstore bundle (v0.3, a message signature with the
    /// file's SHA-256 and the key's hint, no transparency-log entry): what lets a verifier tell
    /// a file changed since signing from a file signed with a key it does not trust.
    pub bundle: String,
}

/// Signs `artifact` with a PKCS#8 PEM private key.
pub fn sign(artifact: &[u8], private_pem: &str) -> Result<KeySignature, TrustError> {
    let block = pem::parse(private_pem.trim()).map_err(|e| TrustError(format!("not a PEM private key: {e}")))?;
    if block.tag() != "PRIVATE KEY" {
        return Err(TrustError(format!(
            "expected an unencrypted PKCS#8 key (`-----BEGIN PRIVATE KEY-----`), found `{}`",
            block.tag()
        )));
    }
    let pair = KeyPair::from_pkcs8_der(block.contents()).map_err(|e| TrustError(format!("unusable private key: {e}")))?;
    let public = pair.public_key_der().map_err(|e| TrustError(e.to_string()))?;
    let signature = pair.sign(artifact).map_err(|e| TrustError(format!("cannot sign: {e}")))?;
    let blob = signature.to_base64();
    let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(artifact));
    let bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "publicKey": { "hint": hint(&public) },
            "tlogEntries": [],
            "timestampVerificationData": {}
        },
        "messageSignature": {
            "messageDigest": { "algorithm": "SHA2_256", "digest": digest },
            "signature": blob
        }
    });
    let bundle = serde_json::to_string_pretty(&bundle).map_err(|e| TrustError(e.to_string()))?;
    Ok(KeySignature { blob, bundle })
}
