//! The release manifest: what was built, from what, and where it lives. It is the unit of promotion: its
//! SHA-256 (of the canonical JSON) is the `ReleaseDigest` template parameter, and the manifest itself is stored
//! in the artifact bucket at `releases/<digest>.json`, so a later environment can deploy the same zips without
//! rebuilding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stack::{Architecture, FunctionName};

/// The manifest format version; bump it when a field changes meaning.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    pub schema: u32,
    pub env: String,
    /// `git rev-parse HEAD`, or `unknown` outside a git checkout.
    pub git_revision: String,
    /// Whether the working tree had uncommitted changes when this was built.
    pub git_dirty: bool,
    /// `rustc --version`.
    pub rustc: String,
    /// SHA-256 (hex) of `Cargo.lock`; `None` when the workspace has none.
    pub cargo_lock_sha256: Option<String>,
    /// SHA-256 (hex) of the rendered CloudFormation template.
    pub template_sha256: String,
    pub functions: BTreeMap<FunctionName, FunctionArtifact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionArtifact {
    /// SHA-256 (hex) of the reproducible zip.
    pub zip_sha256: String,
    pub zip_size: u64,
    /// SHA-256 (hex) of the `bootstrap` binary inside the zip.
    pub binary_sha256: String,
    pub architecture: Architecture,
    /// Highest `GLIBC_x.y` version the binary requires, e.g. `2.26`; `None` for a binary without glibc.
    pub glibc_floor: Option<String>,
    /// `functions/<name>/<zip_sha256>.zip`: content-addressed, so an existing key never needs re-uploading.
    pub s3_key: String,
}

impl FunctionArtifact {
    pub fn s3_key_for(function: FunctionName, zip_sha256: &str) -> String {
        format!("functions/{}/{zip_sha256}.zip", function.as_str())
    }
}

impl ReleaseManifest {
    /// The canonical JSON: compact serde_json of this struct. Field order is the struct's and maps are
    /// ordered (`BTreeMap`), so equal manifests always give equal bytes.
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serializes")
    }

    /// The release's identity, the `ReleaseDigest` parameter: SHA-256 (hex) of the canonical JSON of what is
    /// deployed — the schema, the template's hash and each function's zip digest and architecture — and not of
    /// the provenance fields (git revision, dirty flag, rustc, `Cargo.lock` hash, environment). A commit that
    /// changes neither the template nor a zip (a README edit) is therefore the same release, and its deploy is
    /// a no-op, while the manifest stored under the digest still says where the bytes came from.
    pub fn digest(&self) -> String {
        #[derive(Serialize)]
        struct Identity<'a> {
            schema: u32,
            template_sha256: &'a str,
            functions: BTreeMap<FunctionName, (&'a str, Architecture)>,
        }
        let identity = Identity {
            schema: self.schema,
            template_sha256: &self.template_sha256,
            functions: self
                .functions
                .iter()
                .map(|(n, a)| (*n, (a.zip_sha256.as_str(), a.architecture)))
                .collect(),
        };
        hex::encode(Sha256::digest(
            serde_json::to_vec(&identity).expect("an identity always serializes"),
        ))
    }

    /// Where the manifest lives in the artifact bucket: `releases/<digest>.json`.
    pub fn s3_key(&self) -> String {
        release_key(&self.digest())
    }

    /// The template parameters this release fills in, given the artifact bucket.
    pub fn parameters(&self, bucket: &str) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        params.insert(
            stack::parameters::ARTIFACT_BUCKET.to_string(),
            bucket.to_string(),
        );
        for (name, artifact) in &self.functions {
            params.insert(stack::parameters::code_key(*name), artifact.s3_key.clone());
        }
        params.insert(stack::parameters::RELEASE_DIGEST.to_string(), self.digest());
        params
    }
}

/// `releases/<digest>.json`.
pub fn release_key(digest: &str) -> String {
    format!("releases/{digest}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReleaseManifest {
        let mut functions = BTreeMap::new();
        for f in FunctionName::ALL {
            functions.insert(
                f,
                FunctionArtifact {
                    zip_sha256: "ab".repeat(32),
                    zip_size: 10,
                    binary_sha256: "cd".repeat(32),
                    architecture: Architecture::X86_64,
                    glibc_floor: Some("2.26".into()),
                    s3_key: FunctionArtifact::s3_key_for(f, &"ab".repeat(32)),
                },
            );
        }
        ReleaseManifest {
            schema: SCHEMA,
            env: "local".into(),
            git_revision: "0".repeat(40),
            git_dirty: false,
            rustc: "rustc 1.95.0".into(),
            cargo_lock_sha256: Some("ef".repeat(32)),
            template_sha256: "12".repeat(32),
            functions,
        }
    }

    #[test]
    fn digest_ignores_provenance_but_not_content() {
        let m = sample();
        let mut rebuilt = m.clone();
        rebuilt.git_revision = "another-commit".into();
        rebuilt.git_dirty = !m.git_dirty;
        rebuilt.rustc = "rustc 9.9.9".into();
        assert_eq!(
            rebuilt.digest(),
            m.digest(),
            "same bytes from another commit are the same release"
        );
        let mut changed = m.clone();
        changed
            .functions
            .get_mut(&FunctionName::Query)
            .unwrap()
            .zip_sha256 = "cd".repeat(32);
        assert_ne!(changed.digest(), m.digest());
        let mut template = m.clone();
        template.template_sha256 = "ef".repeat(32);
        assert_ne!(template.digest(), m.digest());
    }

    #[test]
    fn digest_is_stable_and_roundtrips() {
        let m = sample();
        let json = m.canonical_json();
        let back: ReleaseManifest = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.digest(), m.digest());
        assert!(
            String::from_utf8(json)
                .unwrap()
                .contains(r#""functions":{"command":{"#)
        );
        let params = m.parameters("bucket");
        assert_eq!(
            params["CommandCodeKey"],
            format!("functions/command/{}.zip", "ab".repeat(32))
        );
        assert_eq!(params["ReleaseDigest"], m.digest());
        assert_eq!(params.len(), 5);
    }
}
