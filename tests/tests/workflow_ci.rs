//! Checks the GitHub Actions workflow against the tool and the docs, so CI never drifts from what we ship.
//!
//! The workflow is YAML that nothing compiles: a renamed flag, a removed subcommand or a README that stops
//! documenting a command would only show up on the next push to main, in the middle of a deployment.
//! These tests parse `.github/workflows/ci.yml` and check every `cargo xtask ...` line it runs parses in the
//! real clap tree (`xtask::cli::Cli`) and is documented in README.md, plus the delivery rules: tests on pull
//! requests, build once then promote by digest, prod behind a protected environment, OIDC and never keys.
//! (actionlint checks the workflow's own syntax and expressions in `.ci/run`.)

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_yaml::Value;
use tests::repo_root;

fn workflow_path() -> PathBuf {
    repo_root().join(".github/workflows/ci.yml")
}

fn load_workflow() -> Value {
    let path = workflow_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// (job id, job) in file order.
fn jobs(workflow: &Value) -> Vec<(String, Value)> {
    workflow["jobs"]
        .as_mapping()
        .expect("the workflow has a `jobs` mapping")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("job ids are strings").to_string(),
                v.clone(),
            )
        })
        .collect()
}

fn steps(job: &Value) -> Vec<Value> {
    job["steps"].as_sequence().cloned().unwrap_or_default()
}

/// Every `run:` script of a job.
fn run_scripts(job: &Value) -> Vec<String> {
    steps(job)
        .iter()
        .filter_map(|s| s["run"].as_str().map(str::to_string))
        .collect()
}

/// Every `cargo xtask ...` invocation in a script, as its argument vector (without `cargo xtask`).
/// Scripts here are plain commands, one per line; a trailing `\` continues a line.
fn xtask_invocations(script: &str) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for i in 0..words.len() {
            if words[i] == "cargo" && words.get(i + 1) == Some(&"xtask") {
                let args = words[i + 2..]
                    .iter()
                    .take_while(|w| !matches!(**w, "|" | "&&" | "||" | ";" | ">" | "2>&1"))
                    .map(|w| w.to_string())
                    .collect();
                found.push(args);
            }
        }
    }
    found
}

fn all_invocations(workflow: &Value) -> Vec<(String, Vec<String>)> {
    jobs(workflow)
        .into_iter()
        .flat_map(|(id, job)| {
            run_scripts(&job)
                .into_iter()
                .flat_map(|s| xtask_invocations(&s))
                .map(move |args| (id.clone(), args))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn uses_of(job: &Value, action: &str) -> Vec<Value> {
    steps(job)
        .into_iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.split('@').next() == Some(action))
        })
        .collect()
}

#[test]
fn every_xtask_command_in_the_workflow_parses_in_the_clap_tree() {
    let workflow = load_workflow();
    let invocations = all_invocations(&workflow);
    assert!(
        !invocations.is_empty(),
        "the workflow runs no `cargo xtask` command at all"
    );
    for (job, args) in invocations {
        let argv = std::iter::once("cargo-xtask".to_string()).chain(args.iter().cloned());
        if let Err(e) = xtask::cli::Cli::try_parse_from(argv) {
            panic!(
                "job `{job}` in {} runs `cargo xtask {}`, which the CLI rejects:\n{e}",
                workflow_path().display(),
                args.join(" ")
            );
        }
    }
}

#[test]
fn every_xtask_command_in_the_workflow_is_documented_in_the_readme() {
    let readme_path = repo_root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (the README documents every command CI runs)",
            readme_path.display()
        )
    });
    let workflow = load_workflow();
    for (job, args) in all_invocations(&workflow) {
        let command = args
            .first()
            .unwrap_or_else(|| panic!("job `{job}` runs a bare `cargo xtask`"));
        let needle = format!("cargo xtask {command}");
        assert!(
            readme.contains(&needle),
            "job `{job}` runs `cargo xtask {}`, but README.md never mentions `{needle}`: document it",
            args.join(" ")
        );
    }
}

#[test]
fn pull_requests_run_the_test_script() {
    let workflow = load_workflow();
    // YAML 1.1 reads a bare `on` key as boolean true; accept both spellings.
    let on = workflow
        .get("on")
        .or_else(|| workflow.get(Value::Bool(true)))
        .expect("the workflow has triggers");
    assert!(
        on.get("pull_request").is_some(),
        "the workflow must run on pull_request"
    );
    let branches = on["push"]["branches"]
        .as_sequence()
        .expect("push has a branch filter");
    assert!(
        branches.iter().any(|b| b.as_str() == Some("main")),
        "push to main must trigger delivery"
    );
    let runs_ci = jobs(&workflow).iter().any(|(_, job)| {
        job.get("if").is_none() && run_scripts(job).iter().any(|s| s.trim() == "bash .ci/run")
    });
    assert!(
        runs_ci,
        "an unconditional job must run `bash .ci/run` (the same script a fresh clone passes)"
    );
}

/// The environment a job acts on, and what it does there, read from its `cargo xtask` lines.
#[derive(Debug, PartialEq)]
enum Delivery {
    Deploy(String),
    Promote { from: String, to: String },
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn deliveries(job: &Value) -> Vec<Delivery> {
    run_scripts(job)
        .iter()
        .flat_map(|s| xtask_invocations(s))
        .filter_map(|args| match args.first().map(String::as_str) {
            Some("deploy") => Some(Delivery::Deploy(
                flag(&args, "--env").unwrap_or_else(|| "local".into()),
            )),
            Some("promote") => Some(Delivery::Promote {
                from: flag(&args, "--from").expect("promote names --from"),
                to: flag(&args, "--to").expect("promote names --to"),
            }),
            _ => None,
        })
        .collect()
}

#[test]
fn main_builds_once_and_promotes_by_digest_through_every_environment_in_order() {
    let workflow = load_workflow();
    let all: Vec<Delivery> = jobs(&workflow)
        .iter()
        .flat_map(|(_, j)| deliveries(j))
        .collect();
    assert_eq!(
        all,
        vec![
            Delivery::Deploy("dev".into()),
            Delivery::Promote {
                from: "dev".into(),
                to: "staging".into()
            },
            Delivery::Promote {
                from: "staging".into(),
                to: "prod".into()
            },
        ],
        "CI builds exactly once (the dev deploy) and then only promotes, dev -> staging -> prod"
    );
    // Nothing after the dev deploy may rebuild: no `cargo xtask build`/`deploy` in the promotion jobs.
    for (id, job) in jobs(&workflow) {
        let promotes = deliveries(&job)
            .iter()
            .any(|d| matches!(d, Delivery::Promote { .. }));
        if promotes {
            for args in run_scripts(&job).iter().flat_map(|s| xtask_invocations(s)) {
                assert!(
                    !matches!(args[0].as_str(), "build" | "deploy"),
                    "job `{id}` promotes but also runs `cargo xtask {}`: promotion must not rebuild",
                    args.join(" ")
                );
            }
        }
    }
    // Each delivery is followed by a smoke test of the environment it reached, in the same job.
    for (id, job) in jobs(&workflow) {
        for d in deliveries(&job) {
            let env = match &d {
                Delivery::Deploy(e) => e.clone(),
                Delivery::Promote { to, .. } => to.clone(),
            };
            let smoked = run_scripts(&job)
                .iter()
                .flat_map(|s| xtask_invocations(s))
                .any(|a| a[0] == "smoke" && flag(&a, "--env").as_deref() == Some(env.as_str()));
            assert!(
                smoked,
                "job `{id}` delivers to `{env}` but never runs `cargo xtask smoke --env {env}`"
            );
        }
    }
}

#[test]
fn prod_waits_for_manual_approval_and_jobs_are_chained() {
    let workflow = load_workflow();
    let jobs = jobs(&workflow);
    let prod = jobs
        .iter()
        .find(|(_, j)| {
            deliveries(j)
                .iter()
                .any(|d| matches!(d, Delivery::Promote { to, .. } if to == "prod"))
        })
        .expect("a job promotes to prod");
    let environment = prod.1["environment"]
        .as_str()
        .map(str::to_string)
        .or_else(|| prod.1["environment"]["name"].as_str().map(str::to_string));
    assert_eq!(
        environment.as_deref(),
        Some("production"),
        "the prod job must run in the protected `production` environment"
    );
    // Every delivery job needs the one before it, so a failed smoke stops the train.
    let delivery_ids: Vec<&String> = jobs
        .iter()
        .filter(|(_, j)| !deliveries(j).is_empty())
        .map(|(id, _)| id)
        .collect();
    for pair in delivery_ids.windows(2) {
        let job = &jobs.iter().find(|(id, _)| id == pair[1]).unwrap().1;
        let needs: Vec<String> = match &job["needs"] {
            Value::String(s) => vec![s.clone()],
            Value::Sequence(v) => v
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        };
        assert!(
            needs.contains(pair[0]),
            "job `{}` must `needs: {}`",
            pair[1],
            pair[0]
        );
    }
}

#[test]
fn aws_access_is_oidc_with_the_role_and_region_of_each_environments_config() {
    let workflow = load_workflow();
    let raw = std::fs::read_to_string(workflow_path()).unwrap();
    for forbidden in [
        "aws-access-key-id",
        "aws-secret-access-key",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(
            !raw.contains(forbidden),
            "the workflow mentions `{forbidden}`: CI uses OIDC roles, never long-lived keys"
        );
    }
    let config_dir = repo_root().join("config");
    for (id, job) in jobs(&workflow) {
        let Some(target) = deliveries(&job)
            .into_iter()
            .map(|d| match d {
                Delivery::Deploy(e) => e,
                Delivery::Promote { to, .. } => to,
            })
            .next()
        else {
            assert!(
                uses_of(&job, "aws-actions/configure-aws-credentials").is_empty(),
                "job `{id}` assumes a role but deploys nothing"
            );
            continue;
        };
        assert_eq!(
            job["permissions"]["id-token"].as_str(),
            Some("write"),
            "job `{id}` needs `permissions: id-token: write` to get an OIDC token"
        );
        let creds = uses_of(&job, "aws-actions/configure-aws-credentials");
        assert_eq!(
            creds.len(),
            1,
            "job `{id}` must assume exactly one role with aws-actions/configure-aws-credentials"
        );
        let with = &creds[0]["with"];
        let plan = load_plan(&config_dir, &target);
        let role = plan.role_arn.as_deref().unwrap_or_else(|| {
            panic!("config/{target}.yaml has no role_arn, but job `{id}` deploys it from CI: set the deploy role there")
        });
        assert_eq!(
            with["role-to-assume"].as_str(),
            Some(role),
            "job `{id}`: role-to-assume must be config/{target}.yaml's role_arn"
        );
        assert_eq!(
            with["aws-region"].as_str(),
            Some(plan.region.as_str()),
            "job `{id}`: aws-region must be config/{target}.yaml's region"
        );
    }
}

fn load_plan(config_dir: &Path, env: &str) -> stack::Plan {
    stack::config::load(config_dir, env)
        .unwrap_or_else(|e| panic!("loading config/{env}.yaml: {e}"))
}

#[test]
fn the_promotion_order_in_the_workflow_is_the_one_the_configs_allow() {
    let workflow = load_workflow();
    let config_dir = repo_root().join("config");
    for (id, job) in jobs(&workflow) {
        for d in deliveries(&job) {
            if let Delivery::Promote { from, to } = d {
                let plan = load_plan(&config_dir, &to);
                assert_eq!(
                    plan.deploy.promote_from.as_deref(),
                    Some(from.as_str()),
                    "job `{id}` promotes {from} -> {to}, but config/{to}.yaml allows promotion only from {:?}",
                    plan.deploy.promote_from
                );
            }
        }
    }
}

#[test]
fn the_invocation_scanner_reads_continued_and_piped_lines() {
    let got = xtask_invocations(
        "cargo xtask promote --from dev \\\n  --to staging --yes | tee out.json\necho hi",
    );
    assert_eq!(
        got,
        vec![vec!["promote", "--from", "dev", "--to", "staging", "--yes"]]
    );
}

/// The directories `.ci/run` builds and installs into (target dir, venv, tools, zig cache), as `~/...` paths:
/// what `bash .ci/run --print-env` prints for a fresh `$HOME` with none of its variables set.
fn ci_run_directories() -> Vec<(String, String)> {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(repo_root().join(".ci/run"))
        .arg("--print-env")
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "`bash .ci/run --print-env` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let home = home.path().to_str().unwrap().to_string();
    let dirs: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("`.ci/run --print-env` printed `{line}`, not KEY=value"));
            let under_home = value.strip_prefix(&home).unwrap_or_else(|| {
                panic!("`.ci/run` puts {name} at {value}, outside $HOME: the workflow could not name it")
            });
            (name.to_string(), format!("~{under_home}"))
        })
        .collect();
    for name in ["CARGO_TARGET_DIR", "XTASK_VENV_DIR", "XTASK_TOOLS_DIR"] {
        assert!(
            dirs.iter().any(|(n, _)| n == name),
            "`.ci/run --print-env` does not print {name}: {dirs:?}"
        );
    }
    dirs
}

/// The `path:` entries of a job's actions/cache steps.
fn cached_paths(job: &Value) -> Vec<String> {
    uses_of(job, "actions/cache")
        .iter()
        .flat_map(|s| {
            s["with"]["path"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim().trim_end_matches('/').to_string())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn covers(cached: &str, dir: &str) -> bool {
    dir == cached || dir.starts_with(&format!("{cached}/"))
}

#[test]
fn every_job_caches_the_directories_ci_run_builds_and_installs_into() {
    let dirs = ci_run_directories();
    let workflow = load_workflow();
    let mut checked = 0;
    for (id, job) in jobs(&workflow) {
        let scripts = run_scripts(&job);
        let runs_cargo = scripts
            .iter()
            .any(|s| s.contains("cargo ") || s.trim() == "bash .ci/run");
        if !runs_cargo {
            continue;
        }
        checked += 1;
        let cached = cached_paths(&job);
        for (name, dir) in &dirs {
            assert!(
                cached.iter().any(|c| covers(c, dir)),
                "job `{id}` does not cache {dir} ({name} of .ci/run), so every run of it builds or installs that cold; cached: {cached:?}"
            );
        }
        assert!(
            cached.iter().any(|c| c == "~/.cargo/registry"),
            "job `{id}` must cache ~/.cargo/registry (the downloaded crates)"
        );
        for c in &cached {
            assert!(
                c.starts_with("~/.cargo/")
                    || dirs.iter().any(|(_, d)| covers(c, d) || covers(d, c)),
                "job `{id}` caches `{c}`, which nothing in CI writes (.ci/run builds into {dirs:?})"
            );
        }
        // A job that runs `cargo xtask` itself (not through .ci/run) must first take .ci/run's directories.
        let first_env = scripts
            .iter()
            .position(|s| s.contains("bash .ci/run --print-env >> \"$GITHUB_ENV\""));
        let first_xtask = scripts.iter().position(|s| s.contains("cargo xtask"));
        if let Some(x) = first_xtask {
            assert!(
                first_env.is_some_and(|e| e < x),
                "job `{id}` runs `cargo xtask` without first appending `bash .ci/run --print-env` to $GITHUB_ENV: it would build into the clone's `target`, which is not cached"
            );
        }
    }
    assert!(checked >= 2, "the workflow has jobs that run cargo");
}

/// The smoke test of an environment behind a JWT authorizer gets what it needs to authenticate from the job: a
/// client to mint a short-lived token with (never a stored token, which would expire after the deploy it was made
/// for), from the repository's secrets.
#[test]
fn the_smoke_test_of_a_jwt_environment_mints_its_token_in_the_job() {
    let workflow = load_workflow();
    let config = tests::repo_root().join("config");
    let mut checked = 0;
    for (id, job) in jobs(&workflow) {
        for step in steps(&job) {
            let script = step["run"].as_str().unwrap_or_default();
            for args in xtask_invocations(script) {
                let Some(env) = flag(&args, "--env").filter(|_| args[0] == "smoke") else {
                    continue;
                };
                if load_plan(&config, &env).api.jwt.is_none() {
                    continue;
                }
                checked += 1;
                let vars = &step["env"];
                assert!(
                    vars[xtask::smoke::TOKEN_VAR].is_null(),
                    "job `{id}` smokes `{env}` with a stored token; mint one in the job with {} and {}",
                    xtask::smoke::CLIENT_ID_VAR,
                    xtask::smoke::CLIENT_SECRET_VAR
                );
                for var in [xtask::smoke::CLIENT_ID_VAR, xtask::smoke::CLIENT_SECRET_VAR] {
                    let value = vars[var].as_str().unwrap_or_default();
                    assert!(
                        value.starts_with("${{ secrets.") && value.ends_with("}}"),
                        "job `{id}` smokes `{env}` (api.jwt) without {var} from a secret: {value:?}"
                    );
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no smoke test of a JWT environment in the workflow"
    );
}
