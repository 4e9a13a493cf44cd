//! What a person sees first when no AWS credentials are set up: `status`, `deploy` and `promote` of an `aws`
//! environment, run as the real `cargo xtask` binary in a clean environment (no `AWS_*` variable, `HOME` an
//! empty directory, so no profile files), print two lines that say what was looked at and what to do, and
//! exit 1. No dependency's `WARN` log (aws-config's "provider failed to provide credentials") and none of the
//! SDK's Debug dump (`DispatchFailure ...`) reach the terminal by default; `-v` shows the chain's details.
//!
//! The configs are the shipped ones with the example account replaced (deploy and promote refuse the
//! examples before touching credentials), so the credential chain is what stops each command.

use std::path::Path;
use std::process::{Command, Output};

use tests::cli::{copy_config, output_text, xtask_binary};

/// An account that is not the shipped example, so nothing refuses the config before the credentials.
const ACCOUNT: &str = "222233334444";

fn config(dir: &Path) -> std::path::PathBuf {
    let config = copy_config(dir);
    for env in ["dev", "staging"] {
        let file = config.join(format!("{env}.yaml"));
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace(stack::placeholders::EXAMPLE_ACCOUNT, ACCOUNT);
        std::fs::write(&file, text).unwrap();
    }
    config
}

/// The xtask binary with a shell's bare environment: PATH, an empty HOME, nothing else.
fn run(home: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(xtask_binary())
        .args(args)
        .arg("--config-dir")
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XTASK_STATE_DIR", home.join("state"))
        .current_dir(tests::repo_root())
        .output()
        .expect("the xtask binary runs")
}

fn expected(env: &str) -> String {
    format!(
        "error: no AWS credentials for `{env}`: tried the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE), \
         ~/.aws/config and ~/.aws/credentials, web identity, SSO and the container/instance metadata\n\
         configure credentials (`aws configure sso` then --profile <name>, or AWS_PROFILE) and retry; \
         -v shows what each source answered\n"
    )
}

#[test]
fn without_credentials_status_deploy_and_promote_say_what_to_do_in_two_lines() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = config(dir.path());
    for (args, env) in [
        (&["status", "--env", "dev"][..], "dev"),
        (
            &["deploy", "--env", "dev", "--prebuilt", "--yes"][..],
            "dev",
        ),
        (
            &["promote", "--from", "dev", "--to", "staging", "--yes"][..],
            "dev",
        ),
    ] {
        let out = run(&home, &config, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            output_text(&out)
        );
        assert_eq!(err, expected(env), "{args:?}: {}", output_text(&out));
        assert!(
            !err.contains("DispatchFailure") && !err.contains("WARN"),
            "{args:?}: {err}"
        );
    }
    // With -v the chain's own account is there for whoever wants it.
    let out = run(&home, &config, &["-v", "status", "--env", "dev"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the credential chain found nothing"),
        "{}",
        output_text(&out)
    );
}
