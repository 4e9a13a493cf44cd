//! Repository rules as tests (rust-analyzer's "tidy"): every Rust file says why it exists, every config
//! parses and validates, every function crate has its resources in the template.

use std::path::{Path, PathBuf};
use std::process::Command;
use tests::repo_root;

/// Tracked and not-yet-tracked (but not ignored) files, so a new file is checked before its first commit.
fn repo_files(pattern: &str) -> Vec<PathBuf> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            pattern,
        ])
        .current_dir(repo_root())
        .output()
        .expect("git runs (the tidy tests need a git checkout)");
    assert!(
        out.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| repo_root().join(l))
        .filter(|p| p.is_file())
        .collect()
}

#[test]
fn every_rust_file_opens_with_a_doc_comment_saying_why_it_exists() {
    let files = repo_files("*.rs");
    assert!(files.len() > 10, "found only {} .rs files", files.len());
    let offenders: Vec<String> = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            !text.trim_start_matches('\u{feff}').starts_with("//!")
        })
        .map(|p| {
            p.strip_prefix(repo_root())
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these files must start with a `//!` comment that says why they exist:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_config_parses_and_validates() {
    let dir = repo_root().join("config");
    let envs = stack::config::environments(&dir).unwrap();
    assert!(
        ["local", "dev", "staging", "prod"]
            .iter()
            .all(|e| envs.iter().any(|x| x == e)),
        "{envs:?}"
    );
    let mut failures = Vec::new();
    for env in &envs {
        if let Err(e) = stack::load_checked(&dir, env) {
            failures.push(format!("{env}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every YAML file in config/ is either an environment or the shared defaults.
    for f in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        assert!(
            name.ends_with(".yaml"),
            "config/{name}: only .yaml files belong in config/"
        );
    }
}

#[test]
fn every_function_crate_has_its_resources_in_every_template() {
    let dir = repo_root().join("config");
    for f in stack::FunctionName::ALL {
        assert!(
            Path::new(&repo_root())
                .join("functions")
                .join(f.as_str())
                .join("Cargo.toml")
                .is_file(),
            "functions/{f} is missing"
        );
    }
    for env in stack::config::environments(&dir).unwrap() {
        let (_, t) = stack::load_checked(&dir, &env).unwrap();
        let doc = stack::template::parse(&t.body).unwrap();
        let res = stack::template::resources(&doc);
        for f in stack::FunctionName::ALL {
            for suffix in ["Function", "Role", "LogGroup"] {
                let id = format!("{}{suffix}", f.logical_prefix());
                assert!(res.contains_key(&id), "{env}: {id} missing");
            }
        }
    }
}

/// The dependency names declared in the `[*dependencies]` sections of a Cargo.toml (text-level: enough
/// for this repository's one-line `name.workspace = true` / `name = {...}` style).
fn dependencies(manifest: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line
                .trim_matches(|c| c == '[' || c == ']')
                .ends_with("dependencies");
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let key = line
                .split(['=', '.'])
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            deps.push(key.to_string());
        }
    }
    deps
}

#[test]
fn architecture_invariants_hold_in_the_manifests() {
    let root = repo_root();
    // The stack crate is pure: no AWS SDK.
    let stack = dependencies(&root.join("stack/Cargo.toml"));
    assert!(stack.iter().any(|d| d == "handlebars"), "{stack:?}");
    let aws: Vec<_> = stack.iter().filter(|d| d.starts_with("aws")).collect();
    assert!(
        aws.is_empty(),
        "stack must not depend on the AWS SDK: {aws:?}"
    );
    // The domain has no AWS dependency.
    let domain = dependencies(&root.join("functions/domain/Cargo.toml"));
    let aws: Vec<_> = domain
        .iter()
        .filter(|d| d.starts_with("aws") || d.starts_with("lambda"))
        .collect();
    assert!(aws.is_empty(), "the domain must not depend on AWS: {aws:?}");
    // No production crate carries benchmark code: the benchmarks are the `bench` crate's (ARCHITECTURE.md).
    // The crates the xtask is built from, and the three function binaries.
    let production = xtask::sources::CRATES.into_iter().chain([
        "functions/command",
        "functions/query",
        "functions/projector",
    ]);
    for krate in production {
        let dir = root.join(krate);
        let deps = dependencies(&dir.join("Cargo.toml"));
        for forbidden in ["bench", "criterion"] {
            assert!(
                !deps.iter().any(|d| d == forbidden),
                "{krate} must not depend on {forbidden}: benchmarks live in bench/"
            );
        }
        assert!(
            !dir.join("benches").exists(),
            "{krate}/benches: benchmarks live in bench/"
        );
        let bench_files: Vec<_> = std::fs::read_dir(dir.join("src"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // The xtask's `bench.rs` only hands `cargo xtask bench` to the bench crate's binary.
            .filter(|n| n.starts_with("bench") && !(krate == "xtask" && n == "bench.rs"))
            .collect();
        assert!(
            bench_files.is_empty(),
            "{krate}/src holds benchmark code {bench_files:?}: benchmarks live in bench/"
        );
    }
    // Functions never depend on the pipeline.
    for f in ["domain", "service", "command", "query", "projector"] {
        let deps = dependencies(&root.join("functions").join(f).join("Cargo.toml"));
        for forbidden in ["stack", "deployer", "local-engine", "xtask"] {
            assert!(
                !deps.iter().any(|d| d == forbidden),
                "functions/{f} must not depend on {forbidden}"
            );
        }
    }
}
