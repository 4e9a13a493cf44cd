//! A local deploy's traffic shift: with a canary or linear `deployment` in a local environment, the running
//! engine serves each changed function's new binary beside the live one in the configured steps
//! (`local_engine::canary`), before the change set. `deploy` reports each step, then goes on with the change set
//! when the shift passed, or stops with exit 1 when a new version failed and was rolled back (the stack untouched).

use deployer::build::Release;
use deployer::ui::Ui;
use local_engine::canary::{ShiftEvent, ShiftHold, ShiftRequest, ShiftVerdict};
use local_engine::state::StatePaths;
use stack::{EnvKind, FunctionName, Plan};

/// How often `deploy` prints where a step is (the engine reports every second).
const REPORT_EVERY_MS: u64 = 5_000;

/// A shift that passed: its hold keeps the new versions serving until the engine reloads the deployed release.
pub(crate) struct Passed {
    pub hold: ShiftHold,
}

/// Runs the environment's shift on the running local engine. `Ok(None)`: nothing to shift (not a local
/// environment, an all-at-once deployment, no engine running, or no binary changed), the release goes live at
/// once; `Ok(Some)`: the shift passed; `Err`: it was rolled back, or the engine could not run it.
pub(crate) async fn before_change_set(
    plan: &Plan,
    release: &Release,
    ui: &dyn Ui,
) -> anyhow::Result<Option<Passed>> {
    let steps = plan.deployment.steps();
    if plan.kind != EnvKind::Local || steps.is_empty() {
        return Ok(None);
    }
    let state_dir = local_engine::state::state_dir(&plan.env);
    if local_engine::daemon::running_pid(&StatePaths::new(&state_dir)).is_none() {
        ui.line("traffic shift: no local engine is serving an earlier release; the release goes live at once");
        return Ok(None);
    }
    let request = ShiftRequest {
        steps,
        binaries: FunctionName::ALL
            .into_iter()
            .map(|f| (f, deployer::build::bootstrap_path(&release.dist_dir, f)))
            .collect(),
    };
    let mut last_report = 0;
    let report = |event: &ShiftEvent| match event {
        ShiftEvent::Started { functions } => ui.line(&format!(
            "traffic shift: new version of {} served beside the live one",
            names(functions)
        )),
        ShiftEvent::Step { percent, seconds } => ui.line(&format!(
            "traffic shift: {percent}% of the invocations go to the new versions for {seconds} s"
        )),
        ShiftEvent::Progress { elapsed_ms, stats }
            if *elapsed_ms >= last_report + REPORT_EVERY_MS =>
        {
            last_report = *elapsed_ms;
            let (invocations, errors) = stats
                .values()
                .fold((0, 0), |(i, e), s| (i + s.invocations, e + s.errors));
            ui.line(&format!(
                "traffic shift: {:.0} s: the new versions served {invocations} invocation(s), {errors} failed",
                *elapsed_ms as f64 / 1000.0
            ));
        }
        _ => {}
    };
    let started = std::time::Instant::now();
    let (verdict, hold) = local_engine::canary::request_shift(&state_dir, &request, report)
        .await
        .map_err(|e| anyhow::anyhow!("the local traffic shift could not run: {e}; the stack was not changed, deploy again (or set `deployment.strategy: all_at_once` in {})", plan.config_path.display()))?;
    match verdict {
        ShiftVerdict::Unchanged => {
            ui.line("traffic shift: no function's code changed; nothing to shift");
            Ok(None)
        }
        ShiftVerdict::Shifted(stats) => {
            let invocations: u64 = stats.values().map(|s| s.invocations).sum();
            // As on AWS, where an alarm without data does not fire: an idle shift passes, but says so.
            let proof = if invocations == 0 {
                "no invocation reached the new versions, so nothing was tried".to_string()
            } else {
                format!("{invocations} invocation(s) of the new versions, none failed")
            };
            ui.line(&format!(
                "traffic shift: passed in {:.1} s ({proof}); they take every invocation",
                started.elapsed().as_secs_f64()
            ));
            Ok(Some(Passed { hold }))
        }
        ShiftVerdict::RolledBack {
            function, reason, ..
        } => Err(anyhow::anyhow!(
            "traffic shift rolled back after {:.1} s: the new version of `{function}` failed: {reason}; every invocation goes to the previous release again and the stack was not changed (its log: `cargo xtask logs -f {function}`)",
            started.elapsed().as_secs_f64()
        )),
    }
}

fn names(functions: &[FunctionName]) -> String {
    functions
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
