//! Shared helpers of the cross-crate integration tests (each test file under `tests/` is its own binary).

use std::path::PathBuf;

pub mod cli;
pub mod iam;
pub mod moto;
pub mod release;
pub mod store;
pub mod tools;

/// The repository root, resolved at run time the way the tool resolves it ([`local_engine::state::repo_root`]:
/// the workspace holding the `xtask` member above the current directory, which cargo sets to this package's
/// directory when it runs a test), so a test binary that cargo reuses from another clone sharing the target
/// directory acts on the checkout it runs in. The one definition every test uses.
pub fn repo_root() -> PathBuf {
    local_engine::state::repo_root()
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

/// The version the function's `live` alias points at (what the API and the stream mapping invoke on AWS), and
/// that version's `CodeSha256`. On moto, `moto_patch.py` models the alias through moto's Lambda API.
pub async fn live_version(clients: &deployer::aws::Clients, function: &str) -> (String, String) {
    let alias = clients
        .lambda
        .get_alias()
        .function_name(function)
        .name(stack::LIVE_ALIAS)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{function}:{}: {e:?}", stack::LIVE_ALIAS));
    let version = alias.function_version().unwrap().to_string();
    let config = clients
        .lambda
        .get_function_configuration()
        .function_name(function)
        .qualifier(&version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{function}:{version}: {e:?}"));
    (version, config.code_sha256().unwrap().to_string())
}
