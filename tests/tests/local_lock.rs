//! One command at a time per environment, through the real CLI: commands that change an environment started
//! together run in turn (the one that waits says for whom), and nothing one of them started is stopped by the
//! other; with `--no-wait` a busy environment is refused (exit 3), naming the holder.
//!
//! Before the lock, two `deploy`s started together both exited 1: each took the moto the other was starting
//! for a hung one and stopped it. Here the test holds the environment's lock itself while it starts both
//! commands, so both are certainly waiting when it lets go (no guess about how fast a command starts).

use std::time::Duration;

use local_engine::lock::EnvLock;
use tests::cli::{Background, LocalEnv, output_text};

const LIMIT: Duration = Duration::from_secs(900);

/// The line a command prints while it waits for `holder` (`deploy --yes`, ...).
fn waiting_for(holder: &str, pid: u32) -> String {
    format!("waiting: `cargo xtask {holder}` (pid {pid}, since ")
}

/// The pid in the one "local engine: serving ... (pid N, ..." line of `outputs`; panics unless exactly one
/// command started the engine.
fn the_one_engine_start(outputs: &[String]) -> u32 {
    let lines: Vec<&str> = outputs
        .iter()
        .flat_map(|o| o.lines())
        .filter(|l| l.starts_with("local engine: serving"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "the engine is started once, then kept:\n{}",
        outputs.join("\n----\n")
    );
    lines[0]
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|p| p.parse().ok())
        .expect("the line names the engine's pid")
}

/// Asserts that exactly one of `outputs` started moto and that the pid files still name live processes: the
/// endpoint and the engine that the first command started survived the second.
fn assert_nothing_was_killed(env: &LocalEnv, outputs: &[String]) {
    let all = outputs.join("\n----\n");
    assert_eq!(
        all.matches("local AWS endpoint (moto").count(),
        1,
        "moto is started once:\n{all}"
    );
    assert_eq!(
        all.matches("local AWS endpoint: reusing the one running")
            .count(),
        outputs.len() - 1,
        "{all}"
    );
    assert!(!all.contains("stopping it"), "{all}");
    let engine = the_one_engine_start(outputs);
    assert_eq!(env.pid("engine.pid"), Some(engine), "{all}");
    let endpoint = env.pid("endpoint.pid").expect("the endpoint's pid file");
    for pid in [engine, endpoint] {
        assert!(
            local_engine::process::is_alive(pid),
            "pid {pid} runs:\n{all}"
        );
    }
}

#[test]
fn two_deploys_started_together_run_in_turn_and_stop_nothing() {
    let env = LocalEnv::new();
    let me = std::process::id();
    let held = EnvLock::try_acquire(&env.state_dir(), "test")
        .unwrap()
        .unwrap();
    let mut first = Background::start(env.command(&["deploy", "--yes"]));
    let mut second = Background::start(env.command(&["deploy", "--yes"]));
    for d in [&first, &second] {
        d.wait_for(&waiting_for("test", me), 1, LIMIT);
    }
    drop(held);
    let (a, b) = (first.finish(LIMIT), second.finish(LIMIT));
    let outputs = [first.output(), second.output()];
    assert!(a.success() && b.success(), "{}", outputs.join("\n----\n"));
    // The one that went second waited for the other, by name.
    let named = [(&first, &second), (&second, &first)]
        .into_iter()
        .any(|(waited, holder)| {
            waited
                .output()
                .contains(&waiting_for("deploy --yes", holder.child.id()))
        });
    assert!(named, "{}", outputs.join("\n----\n"));
    assert_nothing_was_killed(&env, &outputs);
}

#[test]
fn dev_and_a_deploy_take_turns_and_stop_nothing() {
    let env = LocalEnv::new();
    let me = std::process::id();
    let held = EnvLock::try_acquire(&env.state_dir(), "test")
        .unwrap()
        .unwrap();
    // `dev` on this checkout: it only reads the sources (nothing here edits them).
    let mut dev = Background::start(env.command(&["dev"]));
    let mut deploy = Background::start(env.command(&["deploy", "--yes"]));
    dev.wait_for(&waiting_for("test", me), 1, LIMIT);
    deploy.wait_for(&waiting_for("test", me), 1, LIMIT);
    drop(held);
    let deployed = deploy.finish(LIMIT);
    // dev's first deploy is done when it says it watches (it then holds no lock).
    dev.wait_for("watching", 1, LIMIT);
    let outputs = [dev.output(), deploy.output()];
    assert!(deployed.success(), "{}", outputs.join("\n----\n"));
    let dev_waited = outputs[0].contains(&waiting_for("deploy --yes", deploy.child.id()));
    let deploy_waited = outputs[1].contains(&waiting_for("dev", dev.child.id()));
    assert!(
        dev_waited != deploy_waited,
        "exactly one waited for the other, by name:\n{}",
        outputs.join("\n----\n")
    );
    assert_nothing_was_killed(&env, &outputs);

    // Ctrl-C stops watching; the engine keeps serving.
    let int = std::process::Command::new("kill")
        .args(["-INT", &dev.child.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let status = dev.finish(Duration::from_secs(60));
    assert!(status.success(), "{}", dev.output());
    assert_nothing_was_killed(&env, &[dev.output(), deploy.output()]);
}

#[test]
fn no_wait_refuses_a_busy_environment_and_names_the_holder() {
    let env = LocalEnv::new();
    let me = std::process::id();
    let held = EnvLock::try_acquire(&env.state_dir(), "deploy --yes")
        .unwrap()
        .unwrap();
    for args in [
        &["deploy", "--yes", "--no-wait"][..],
        &["deploy", "--yes", "--hotswap", "--no-wait"],
        &["teardown", "--yes", "--no-wait"],
        &["dev", "--no-wait"],
        &["replay", "--force", "--no-wait"],
    ] {
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            output_text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("`cargo xtask deploy --yes` (pid {me}, since "))
                && err.contains("nothing was done"),
            "{args:?} names the holder: {}",
            output_text(&out)
        );
    }
    assert!(
        env.pid("endpoint.pid").is_none() && env.pid("engine.pid").is_none(),
        "nothing was started"
    );
    drop(held);
}
