//! Which signers a policy trusts (the `[signatures]` table's rule tree and trusted root), and
//! the one decision whether the signatures beside a plugin satisfy it. `vet` and `inspect`
//! both take their answer from [`TrustedSigners::assess`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sigstore_verify::types::bundle::VerificationMaterialContent;
use sigstore_verify::types::{Bundle, DerPublicKey};

use super::{Expectation, Identity, Refusal, Signer, Trust, Verified};

/// A node of the policy's `[signatures.signers]` tree as written: exactly one of `allOf`,
/// `anyOf` (with `minimumMatches`, default 1), `pubKey` or `keyless`. The names are those of
/// Sigstore's policy-controller, so that a rule reads the same in both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerRule {
    #[serde(rename = "allOf", default, skip_serializing_if = "Option::is_none")]
    pub all_of: Option<Vec<SignerRule>>,
    #[serde(rename = "anyOf", default, skip_serializing_if = "Option::is_none")]
    pub any_of: Option<Vec<SignerRule>>,
    #[serde(rename = "minimumMatches", default, skip_serializing_if = "Option::is_none")]
    pub minimum_matches: Option<usize>,
    #[serde(rename = "pubKey", default, skip_serializing_if = "Option::is_none")]
    pub pub_key: Option<KeyEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// A PEM public key, or the path of one relative to the policy file's directory. Read
    /// when the policy is, and kept as the PEM text from then on.
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeylessEntry {
    /// The OIDC issuer in the Fulcio certificate, exactly.
    pub issuer: String,
    pub subject: SubjectEntry,
}

/// Exactly one of the three.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equal: Option<String>,
    #[serde(rename = "urlPrefix", default, skip_serializing_if = "Option::is_none")]
    pub url_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
}

/// A field of the policy at fault and what is wrong with it (the policy turns it into a
/// document error: exit 2).
pub type FieldError = (String, String);

/// The rule tree, checked and with its keys parsed.
#[derive(Clone, Debug)]
enum Rule {
    AllOf(Vec<Rule>),
    AnyOf { rules: Vec<Rule>, minimum: usize },
    Key(TrustedKey),
    Keyless { issuer: String, subject: Identity },
}

#[derive(Clone, Debug)]
struct TrustedKey {
    key: DerPublicKey,
    fingerprint: String,
    hint: String,
}

/// What a policy trusts, ready to use: built once, when the policy is read.
#[derive(Clone, Default)]
pub struct TrustedSigners {
    rule: Option<Rule>,
    /// Every key the rule names, in the order written.
    keys: Vec<TrustedKey>,
    /// The policy's own trusted root; `None` is Sigstore's public-good root.
    root: Option<Arc<Trust>>,
}

impl fmt::Debug for TrustedSigners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedSigners").field("rule", &self.rule).field("own_root", &self.root.is_some()).finish()
    }
}

/// Reads a value that is either given inline (it starts with `inline_start`) or the path of a
/// file (relative to `base`), and keeps the text in place of the path.
fn resolve_text(value: &mut String, inline_start: &str, base: Option<&Path>, field: &str, what: &str) -> Result<(), FieldError> {
    if value.trim_start().starts_with(inline_start) {
        return Ok(());
    }
    let path = match base {
        Some(base) if Path::new(value.as_str()).is_relative() => base.join(value.as_str()),
        _ => PathBuf::from(value.as_str()),
    };
    *value = crate::source::read_regular_text(&path, crate::source::MAX_DOCUMENT_BYTES).map_err(|e| (field.to_string(), format!("cannot read the {what} {}: {e}", path.display())))?;
    Ok(())
}

impl TrustedSigners {
    /// Checks the `[signatures]` table's rule tree and trusted root, reading the files they
    /// name (relative to `base`, the policy file's directory) and keeping their text in the
    /// policy instead, so that the policy stays whole when it is passed on (to a conformance
    /// worker, say).
    pub fn prepare(rule: Option<&mut SignerRule>, trusted_root: Option<&mut String>, base: Option<&Path>) -> Result<TrustedSigners, FieldError> {
        let mut signers = TrustedSigners::default();
        if let Some(root) = trusted_root {
            let field = "signatures.trusted-root";
            resolve_text(root, "{", base, field, "trusted root")?;
            let trust = Trust::from_json(root).map_err(|e| (field.to_string(), e.0))?;
            signers.root = Some(Arc::new(trust));
        }
        if let Some(rule) = rule {
            signers.rule = Some(compile(rule, "signatures.signers", base, &mut signers.keys)?);
        }
        Ok(signers)
    }

    /// Whether the policy names any signer at all.
    pub fn has_rule(&self) -> bool {
        self.rule.is_some()
    }

    /// The rule in words, for reports.
    pub fn rule_text(&self) -> Option<String> {
        self.rule.as_ref().map(Rule::to_string)
    }

    fn trust(&self) -> &Trust {
        match &self.root {
            Some(root) => root,
            None => Trust::public_good(),
        }
    }
}

fn compile(rule: &mut SignerRule, field: &str, base: Option<&Path>, keys: &mut Vec<TrustedKey>) -> Result<Rule, FieldError> {
    let err = |at: &str, message: String| Err((at.to_string(), message));
    let kinds = [rule.all_of.is_some(), rule.any_of.is_some(), rule.pub_key.is_some(), rule.keyless.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return err(field, "a signer rule is exactly one of `allOf`, `anyOf`, `pubKey` or `keyless`".into());
    }
    if rule.minimum_matches.is_some() && rule.any_of.is_none() {
        return err(&format!("{field}.minimumMatches"), "`minimumMatches` goes with `anyOf`".into());
    }
    let mut children = |list: &mut Vec<SignerRule>, name: &str| -> Result<Vec<Rule>, FieldError> {
        if list.is_empty() {
            return Err((format!("{field}.{name}"), format!("`{name}` needs at least one rule")));
        }
        list.iter_mut().enumerate().map(|(i, child)| compile(child, &format!("{field}.{name}[{i}]"), base, keys)).collect()
    };
    if let Some(list) = &mut rule.all_of {
        return Ok(Rule::AllOf(children(list, "allOf")?));
    }
    if let Some(list) = &mut rule.any_of {
        let rules = children(list, "anyOf")?;
        let minimum = rule.minimum_matches.unwrap_or(1);
        if minimum == 0 || minimum > rules.len() {
            return err(
                &format!("{field}.minimumMatches"),
                format!("must be between 1 and the number of rules in `anyOf` ({}), not {minimum}", rules.len()),
            );
        }
        return Ok(Rule::AnyOf { rules, minimum });
    }
    if let Some(entry) = &mut rule.pub_key {
        let at = format!("{field}.pubKey.key");
        resolve_text(&mut entry.key, "-----BEGIN", base, &at, "public key")?;
        let key = super::public_key_from_pem(&entry.key).map_err(|e| (at, e.0))?;
        let trusted = TrustedKey { fingerprint: super::fingerprint(&key), hint: super::hint(&key), key };
        keys.push(trusted.clone());
        return Ok(Rule::Key(trusted));
    }
    let Some(entry) = &rule.keyless else { unreachable!("one kind is set, checked above") };
    if entry.issuer.is_empty() {
        return err(&format!("{field}.keyless.issuer"), "the issuer must not be empty".into());
    }
    let at = format!("{field}.keyless.subject");
    let subject = match (&entry.subject.equal, &entry.subject.url_prefix, &entry.subject.regexp) {
        (Some(id), None, None) => Identity::Equal(id.clone()),
        (None, Some(url), None) if url.contains("://") => Identity::UrlPrefix(url.clone()),
        (None, Some(url), None) => return err(&at, format!("`urlPrefix` must be a URL (`https://…`), not `{url}`")),
        (None, None, Some(re)) => Identity::regexp(re).map_err(|e| (at.clone(), e.0))?,
        _ => return err(&at, "the subject is exactly one of `equal`, `urlPrefix` or `regexp`".into()),
    };
    Ok(Rule::Keyless { issuer: entry.issuer.clone(), subject })
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, rules: &[Rule]| {
            for (i, rule) in rules.iter().enumerate() {
                write!(f, "{}{rule}", if i == 0 { "" } else { "; " })?;
            }
            Ok(())
        };
        match self {
            Rule::Key(key) => write!(f, "key sha256:{}", key.fingerprint),
            Rule::Keyless { issuer, subject } => write!(f, "{subject} from issuer `{issuer}`"),
            Rule::AllOf(rules) => {
                f.write_str("all of (")?;
                list(f, rules)?;
                f.write_str(")")
            }
            Rule::AnyOf { rules, minimum } => {
                if *minimum == 1 { f.write_str("any of (")? } else { write!(f, "{minimum} of (")? }
                list(f, rules)?;
                f.write_str(")")
            }
        }
    }
}

impl Rule {
    /// The signers that can stand for this rule, or `None` when it is not met. `anyOf` counts
    /// the rules met by *different* signers: one signature never counts twice towards
    /// `minimumMatches`.
    fn witnesses(&self, signers: &[Signer]) -> Option<BTreeSet<usize>> {
        let matching = |is: &dyn Fn(&Signer) -> bool| {
            let found: BTreeSet<usize> = signers.iter().enumerate().filter(|(_, s)| is(s)).map(|(i, _)| i).collect();
            (!found.is_empty()).then_some(found)
        };
        match self {
            Rule::Key(key) => matching(&|s| matches!(s, Signer::Key { fingerprint } if *fingerprint == key.fingerprint)),
            Rule::Keyless { issuer, subject } => matching(&|s| {
                matches!(s, Signer::Keyless { identity, issuer: Some(found) } if found == issuer && subject.matches(identity))
            }),
            Rule::AllOf(rules) => {
                let mut all = BTreeSet::new();
                for rule in rules {
                    all.extend(rule.witnesses(signers)?);
                }
                Some(all)
            }
            Rule::AnyOf { rules, minimum } => {
                let met: Vec<BTreeSet<usize>> = rules.iter().filter_map(|r| r.witnesses(signers)).collect();
                (distinct_matches(&met) >= *minimum).then(|| met.into_iter().flatten().collect())
            }
        }
    }
}

/// How many of the rules can each be given a signer of its own (a maximum bipartite matching,
/// by augmenting paths: the sets are a handful of signers each).
fn distinct_matches(sets: &[BTreeSet<usize>]) -> usize {
    fn assign(rule: usize, sets: &[BTreeSet<usize>], seen: &mut BTreeSet<usize>, owner: &mut BTreeMap<usize, usize>) -> bool {
        for &signer in &sets[rule] {
            if seen.insert(signer) && owner.get(&signer).copied().is_none_or(|other| assign(other, sets, seen, owner)) {
                owner.insert(signer, rule);
                return true;
            }
        }
        false
    }
    let mut owner = BTreeMap::new();
    (0..sets.len()).filter(|&rule| assign(rule, sets, &mut BTreeSet::new(), &mut owner)).count()
}

/// A signature file found beside a plugin.
pub struct SignatureFile {
    pub path: PathBuf,
    pub bytes: std::io::Result<Vec<u8>>,
}

/// What one signature file showed.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum FileVerdict {
    Verified(Verified),
    /// Malformed, or a check failed (the file changed since signing, a broken chain or log
    /// entry, a key signature that its key does not verify).
    Invalid { reason: String },
    /// A key-signed bundle naming (by its hint) a key the policy does not hold: nothing more
    /// can be checked without the key.
    UnknownKey { hint: String },
    /// A blob signature that no key of the policy verifies: the file changed since signing, or
    /// another key signed it (a blob signature does not say which key).
    Unattributed,
}

/// One signature file and what it showed.
#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    pub path: PathBuf,
    #[serde(flatten)]
    pub verdict: FileVerdict,
}

/// What the signatures beside a plugin add up to under a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The policy's rule is met.
    Trusted,
    /// No signature file.
    Missing,
    /// A signature file is broken or does not verify (the plugin's own artifact: a finding).
    Invalid,
    /// The signatures are not broken, but they do not meet the rule; the reason says who
    /// signed and what the rule asks for.
    Untrusted(String),
}

/// The signature files and the outcome.
#[derive(Clone, Debug)]
pub struct Assessment {
    pub files: Vec<Checked>,
    pub outcome: Outcome,
}

impl TrustedSigners {
    /// Checks every signature file over `artifact` (the module's bytes) and decides: a broken
    /// file fails the plugin even when another meets the rule (fail closed: something beside
    /// the plugin claims a signature it does not have); otherwise the verified signers must
    /// meet the rule.
    pub fn assess(&self, artifact: &[u8], files: &[SignatureFile]) -> Assessment {
        let checked: Vec<Checked> =
            files.iter().map(|file| Checked { path: file.path.clone(), verdict: self.check_file(artifact, file) }).collect();
        let outcome = self.decide(&checked);
        Assessment { files: checked, outcome }
    }

    fn decide(&self, checked: &[Checked]) -> Outcome {
        if checked.is_empty() {
            return Outcome::Missing;
        }
        if checked.iter().any(|c| matches!(c.verdict, FileVerdict::Invalid { .. })) {
            return Outcome::Invalid;
        }
        let mut signers: Vec<Signer> = Vec::new();
        for c in checked {
            if let FileVerdict::Verified(v) = &c.verdict
                && !signers.contains(&v.signer)
            {
                signers.push(v.signer.clone());
            }
        }
        if let Some(rule) = &self.rule
            && rule.witnesses(&signers).is_some()
        {
            return Outcome::Trusted;
        }
        let unknown: Vec<String> = checked
            .iter()
            .filter_map(|c| match &c.verdict {
                FileVerdict::UnknownKey { hint } => Some(named_key(hint)),
                _ => None,
            })
            .collect();
        if signers.is_empty() && unknown.is_empty() {
            return Outcome::Invalid;
        }
        let mut by: Vec<String> = signers.iter().map(Signer::to_string).collect();
        by.extend(unknown);
        let wanted = match &self.rule {
            Some(rule) => format!("the policy trusts {rule}"),
            None => "the policy names no trusted signer ([signatures.signers])".to_string(),
        };
        Outcome::Untrusted(format!("signed by {}; {wanted}", by.join(", ")))
    }

    fn check_file(&self, artifact: &[u8], file: &SignatureFile) -> FileVerdict {
        let invalid = |reason: String| FileVerdict::Invalid { reason };
        let bytes = match &file.bytes {
            Ok(bytes) => bytes,
            Err(e) => return invalid(format!("cannot read it: {e}")),
        };
        let is_bundle = file.path.to_string_lossy().ends_with(".sigstore.json");
        if !is_bundle {
            for key in &self.keys {
                match super::verify_blob_signature(artifact, bytes, &key.key) {
                    Ok(verified) => return FileVerdict::Verified(verified),
                    Err(Refusal::Malformed(reason)) => return invalid(reason),
                    Err(_) => {}
                }
            }
            return FileVerdict::Unattributed;
        }
        let Ok(json) = std::str::from_utf8(bytes) else {
            return invalid("the bundle is not UTF-8 JSON".into());
        };
        let bundle = match Bundle::from_json(json) {
            Ok(bundle) => bundle,
            Err(e) => return invalid(format!("not a Sigstore bundle: {e}")),
        };
        let VerificationMaterialContent::PublicKey(id) = &bundle.verification_material.content else {
            return match super::verify_bundle(artifact, json, &Expectation::default(), self.trust()) {
                Ok(verified) => FileVerdict::Verified(verified),
                Err(refusal) => invalid(refusal.to_string()),
            };
        };
        // The hint picks the key; a key it names that does not verify the bundle means the
        // bundle or the file changed. Keys it does not name are tried too (other tools write
        // other hints, or none), but their failures say nothing.
        let named = |k: &&TrustedKey| !id.hint.is_empty() && k.hint == id.hint;
        let verify = |key: &TrustedKey| {
            super::verify_bundle(artifact, json, &Expectation { key: Some(key.key.clone()), ..Expectation::default() }, self.trust())
        };
        let mut named_failure = None;
        for key in self.keys.iter().filter(named) {
            match verify(key) {
                Ok(verified) => return FileVerdict::Verified(verified),
                Err(refusal) => named_failure = named_failure.or(Some(refusal)),
            }
        }
        if let Some(verified) = self.keys.iter().filter(|k| !named(k)).find_map(|key| verify(key).ok()) {
            return FileVerdict::Verified(verified);
        }
        match named_failure {
            Some(refusal) => invalid(refusal.to_string()),
            None if id.hint.is_empty() => FileVerdict::Unattributed,
            None => FileVerdict::UnknownKey { hint: id.hint.clone() },
        }
    }
}

/// A key a bundle names by its hint, as reports name keys (`key sha256:HEX`) when the hint is
/// cosign's (the base64 of the key's SHA-256), and as written otherwise.
fn named_key(hint: &str) -> String {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(hint) {
        Ok(digest) if digest.len() == 32 => format!("key sha256:{} (named by the bundle, not checked: the policy does not hold it)", hex::encode(digest)),
        _ => format!("a key the bundle names `{hint}` (not checked: the policy does not hold it)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[usize]) -> BTreeSet<usize> {
        items.iter().copied().collect()
    }

    #[test]
    fn a_signer_counts_once_towards_minimum_matches() {
        assert_eq!(distinct_matches(&[set(&[0]), set(&[0])]), 1);
        // The first rule could take signer 0 or 1; taking 1 leaves 0 for the second.
        assert_eq!(distinct_matches(&[set(&[0, 1]), set(&[0])]), 2);
        assert_eq!(distinct_matches(&[set(&[0, 1]), set(&[0, 1]), set(&[1])]), 2);
        assert_eq!(distinct_matches(&[]), 0);
    }

    #[test]
    fn rules_over_signers() {
        let key = |n: u8| Signer::Key { fingerprint: format!("{n:02x}") };
        let trusted = |n: u8| {
            let (_, public) = super::super::generate_key_pair().unwrap();
            let mut k = TrustedKey { key: super::super::public_key_from_pem(&public).unwrap(), fingerprint: String::new(), hint: String::new() };
            k.fingerprint = format!("{n:02x}");
            Rule::Key(k)
        };
        let ci = Rule::Keyless { issuer: "https://ci".into(), subject: Identity::UrlPrefix("https://git/acme/".into()) };
        let from_ci = Signer::Keyless { identity: "https://git/acme/p/.ci.yml@main".into(), issuer: Some("https://ci".into()) };
        let elsewhere = Signer::Keyless { identity: "https://git/acme/p/.ci.yml@main".into(), issuer: Some("https://other".into()) };
        let both = Rule::AllOf(vec![trusted(1), ci.clone()]);
        assert!(both.witnesses(&[key(1), from_ci.clone()]).is_some());
        assert!(both.witnesses(&[key(1), elsewhere.clone()]).is_none());
        assert!(both.witnesses(std::slice::from_ref(&from_ci)).is_none());
        let two_of_three = Rule::AnyOf { rules: vec![trusted(1), trusted(2), ci], minimum: 2 };
        assert!(two_of_three.witnesses(&[key(2), from_ci]).is_some());
        assert!(two_of_three.witnesses(&[key(2), elsewhere]).is_none());
        assert!(two_of_three.witnesses(&[key(3), key(1)]).is_none());
        assert!(two_of_three.to_string().starts_with("2 of (key sha256:01; key sha256:02; a URL under"));
    }
}
