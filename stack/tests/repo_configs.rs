//! Every environment in the repository's `config/` loads, renders and validates (the fast, stack-only
//! version of the tidy test in `tests/`, so this crate's rules can be checked without building the rest).

use std::path::PathBuf;

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

#[test]
fn every_repository_environment_is_valid() {
    let envs = stack::config::environments(&config_dir()).unwrap();
    assert_eq!(envs, ["dev", "local", "prod", "staging"]);
    for env in envs {
        match stack::load_checked(&config_dir(), &env) {
            Ok((plan, t)) => {
                assert_eq!(plan.env, env);
                assert_eq!(t, stack::RenderedTemplate::from_body(t.body.clone()));
            }
            Err(e) => panic!("{env}: {e}"),
        }
    }
}
