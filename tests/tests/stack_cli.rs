//! `cargo xtask render` and `cargo xtask validate` as the CLI runs them: exit codes and output files.

use std::path::PathBuf;

use xtask::exit::ExitStatus;

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn validate(env: Option<&str>, config_dir: PathBuf) -> ExitStatus {
    let args = xtask::validate::Args {
        env: env.map(String::from),
        config_dir,
    };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(xtask::validate::run(args))
        .unwrap()
}

#[test]
fn validate_passes_for_every_repository_environment() {
    assert_eq!(validate(None, config_dir()), ExitStatus::Success);
    assert_eq!(validate(Some("prod"), config_dir()), ExitStatus::Success);
}

#[test]
fn validate_exits_with_invalid_input_on_a_bad_config_or_unknown_environment() {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(config_dir()).unwrap().flatten() {
        std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
    }
    assert_eq!(
        validate(None, dir.path().to_path_buf()),
        ExitStatus::Success
    );
    let staging = std::fs::read_to_string(dir.path().join("staging.yaml")).unwrap();
    std::fs::write(
        dir.path().join("staging.yaml"),
        staging + "stream_mapping:\n  parallelization_factor: 10\n",
    )
    .unwrap();
    assert_eq!(
        validate(None, dir.path().to_path_buf()),
        ExitStatus::InvalidInput
    );
    assert_eq!(
        validate(Some("dev"), dir.path().to_path_buf()),
        ExitStatus::Success
    );
    assert_eq!(
        validate(Some("qa"), dir.path().to_path_buf()),
        ExitStatus::InvalidInput
    );
}

#[test]
fn render_writes_the_checked_template_to_the_out_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("prod.yaml");
    let args = xtask::render::Args {
        env: xtask::cli::EnvArgs {
            env: "prod".into(),
            config_dir: config_dir(),
        },
        out: Some(out.clone()),
    };
    let status = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(xtask::render::run(args))
        .unwrap();
    assert_eq!(status, ExitStatus::Success);
    let (_, t) = stack::load_checked(&config_dir(), "prod").unwrap();
    assert_eq!(std::fs::read_to_string(out).unwrap(), t.body);
}
