//! Shared helpers of the cross-crate integration tests (each test file under `tests/` is its own binary).

use std::path::PathBuf;

pub mod cli;
pub mod iam;
pub mod moto;
pub mod release;
pub mod tools;

/// The repository root: the parent of this package's directory, as cargo names it when it runs the test (at
/// run time, so a test binary that cargo reuses from another clone sharing the target directory acts on the
/// checkout it runs in), or as compiled in when the binary is started by hand.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("tests/ is one level below the root")
        .to_path_buf()
}

/// The JSON body of `GET url` (panics when the server does not answer or the body is not JSON).
pub async fn get_json(http: &reqwest::Client, url: String) -> serde_json::Value {
    http.get(url)
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON body")
}

/// The status code of `GET url`.
pub async fn get_status(http: &reqwest::Client, url: String) -> u16 {
    http.get(url)
        .send()
        .await
        .expect("the server answers")
        .status()
        .as_u16()
}
