//! CloudFormation operations with the behaviour an operator wants: change sets that report "no changes"
//! instead of failing, execution with live stack events, failure reports that start with the root cause, and
//! the exact recovery step for states that need a person.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{
    Capability, Change, ChangeAction, ChangeSetStatus, ChangeSetType, Parameter, Stack, StackEvent,
    Tag, TemplateStage,
};

use crate::error::{Error, Result};
use crate::preview::{Action, Replacement, ResourceChange};
use crate::ui::Ui;

/// Looks a stack up by name or id; `None` when it does not exist.
pub async fn describe(cfn: &Client, stack: &str) -> Result<Option<Stack>> {
    match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out.stacks().first().cloned()),
        Err(err) => {
            let text = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
            if text.contains("does not exist") {
                Ok(None)
            } else {
                Err(Error::Aws {
                    context: format!("describing stack `{stack}`"),
                    message: text,
                })
            }
        }
    }
}

pub fn status_of(stack: &Stack) -> String {
    stack
        .stack_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

/// The stack's parameter values.
pub fn parameters_of(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_string(),
                p.parameter_value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

pub fn outputs_of(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| {
            Some((
                o.output_key()?.to_string(),
                o.output_value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// The template the stack was deployed with, exactly as submitted.
pub async fn template_body(cfn: &Client, stack: &str) -> Result<String> {
    let out = cfn
        .get_template()
        .stack_name(stack)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .map_err(Error::aws(format!(
            "reading the deployed template of `{stack}`"
        )))?;
    Ok(out.template_body().unwrap_or_default().to_string())
}

/// Whether a status is final (nothing is in progress).
pub fn is_terminal(status: &str) -> bool {
    !status.ends_with("_IN_PROGRESS")
}

/// Whether a final status means the requested operation succeeded.
pub fn is_success(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE" | "IMPORT_COMPLETE"
    )
}

/// A created change set and what it will do.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub name: String,
    pub id: String,
    pub kind: ChangeSetType,
    /// The change set's own view of the changes (can be empty on the local endpoint).
    pub changes: Vec<ResourceChange>,
    /// The service found nothing to change.
    pub empty: bool,
}

/// What to put in a change set.
#[derive(Debug, Clone)]
pub struct ChangeSetInput<'a> {
    pub stack: &'a str,
    pub name: String,
    pub kind: ChangeSetType,
    pub template_body: &'a str,
    pub parameters: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
    /// For `IMPORT`: (logical id, resource type, identifier key, identifier value).
    pub imports: Vec<(String, String, String, String)>,
}

/// How long a deploy, import or teardown waits for CloudFormation by default before giving up on following it
/// (`--wait-timeout`). A first create with an HTTP API and two tables takes minutes; an hour means "stuck".
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How long to poll and when to give up: every wait on CloudFormation has an overall deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    pub interval: Duration,
    /// The whole wait, from its first poll; exceeding it is an error naming the stack and its state.
    pub timeout: Duration,
}

/// The error when a wait's deadline passes: which stack, in which state, and what to do. CloudFormation goes on
/// by itself; nothing is cancelled.
pub fn wait_timed_out(what: &str, stack: &str, state: &str, timeout: Duration) -> Error {
    let stack = name_of(stack);
    Error::StackFailed(format!(
        "gave up waiting after {} (the wait limit; raise it with --wait-timeout): {what} stack `{stack}` is still {state}; \
         CloudFormation carries on by itself: follow it with `aws cloudformation describe-stack-events --stack-name {stack}` \
         and run the command again once the stack has settled",
        human_duration(timeout)
    ))
}

/// The stack name in a stack ARN (`arn:...:stack/<name>/<uuid>`), or the input when it is a name already.
pub fn name_of(stack: &str) -> &str {
    stack
        .strip_prefix("arn:")
        .and_then(|r| r.split_once(":stack/"))
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or(stack)
}

fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// Creates a change set and waits (polling) until the service has computed it.
pub async fn create_change_set(
    cfn: &Client,
    input: ChangeSetInput<'_>,
    poll: Polling,
) -> Result<ChangeSet> {
    let mut req = cfn
        .create_change_set()
        .stack_name(input.stack)
        .change_set_name(&input.name)
        .change_set_type(input.kind.clone())
        .template_body(input.template_body)
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .description("cargo xtask deploy");
    for (k, v) in input.parameters {
        req = req.parameters(
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build(),
        );
    }
    for (k, v) in input.tags {
        req = req.tags(Tag::builder().key(k).value(v).build());
    }
    for (logical, kind, key, value) in &input.imports {
        req = req.resources_to_import(
            aws_sdk_cloudformation::types::ResourceToImport::builder()
                .logical_resource_id(logical)
                .resource_type(kind)
                .resource_identifier(key, value)
                .build(),
        );
    }
    let created = req.send().await.map_err(Error::aws(format!(
        "creating change set `{}` for stack `{}`",
        input.name, input.stack
    )))?;
    let id = created.id().unwrap_or(&input.name).to_string();
    let started = Instant::now();
    loop {
        let mut changes: Vec<Change> = Vec::new();
        let mut next: Option<String> = None;
        let mut status;
        let mut reason;
        loop {
            let page = cfn
                .describe_change_set()
                .change_set_name(&id)
                .stack_name(input.stack)
                .set_next_token(next.clone())
                .send()
                .await
                .map_err(Error::aws(format!(
                    "describing change set `{}`",
                    input.name
                )))?;
            status = page.status().cloned();
            reason = page.status_reason().unwrap_or_default().to_string();
            changes.extend(page.changes().iter().cloned());
            next = page.next_token().map(String::from);
            if next.is_none() {
                break;
            }
        }
        match status {
            Some(ChangeSetStatus::CreateComplete) => {
                let changes: Vec<ResourceChange> =
                    changes.iter().filter_map(convert_change).collect();
                return Ok(ChangeSet {
                    name: input.name,
                    id,
                    kind: input.kind,
                    empty: false,
                    changes,
                });
            }
            Some(ChangeSetStatus::Failed) => {
                if reason.contains("didn't contain changes")
                    || reason.contains("No updates are to be performed")
                {
                    return Ok(ChangeSet {
                        name: input.name,
                        id,
                        kind: input.kind,
                        empty: true,
                        changes: Vec::new(),
                    });
                }
                return Err(Error::StackFailed(format!(
                    "change set `{}` failed: {reason}",
                    input.name
                )));
            }
            other => {
                if started.elapsed() >= poll.timeout {
                    return Err(wait_timed_out(
                        &format!("change set `{}` of", input.name),
                        input.stack,
                        other.as_ref().map_or("pending", |s| s.as_str()),
                        poll.timeout,
                    ));
                }
                tokio::time::sleep(poll.interval).await
            }
        }
    }
}

pub async fn delete_change_set(cfn: &Client, stack: &str, change_set_id: &str) -> Result<()> {
    cfn.delete_change_set()
        .stack_name(stack)
        .change_set_name(change_set_id)
        .send()
        .await
        .map_err(Error::aws(format!("deleting change set `{change_set_id}`")))?;
    Ok(())
}

fn convert_change(change: &Change) -> Option<ResourceChange> {
    let rc = change.resource_change()?;
    let action = match rc.action()? {
        ChangeAction::Add => Action::Add,
        ChangeAction::Remove => Action::Remove,
        ChangeAction::Import => Action::Import,
        _ => Action::Modify,
    };
    let replacement = match rc.replacement().map(|r| r.as_str()) {
        Some("True") => Replacement::Always,
        Some("Conditional") => Replacement::Conditional,
        _ => Replacement::Never,
    };
    let mut properties: Vec<String> = rc
        .details()
        .iter()
        .filter_map(|d| d.target()?.name().map(String::from))
        .collect();
    properties.sort();
    properties.dedup();
    Some(ResourceChange {
        logical_id: rc.logical_resource_id().unwrap_or_default().to_string(),
        resource_type: rc.resource_type().unwrap_or_default().to_string(),
        action,
        replacement,
        properties,
    })
}

/// One stack event, as we print and report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventLine {
    pub timestamp: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

impl std::fmt::Display for EventLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "  {} {:<28} {:<34} {}",
            self.timestamp, self.logical_id, self.resource_type, self.status
        )?;
        if let Some(r) = &self.reason {
            write!(f, "  {r}")?;
        }
        Ok(())
    }
}

fn event_line(e: &StackEvent) -> EventLine {
    EventLine {
        timestamp: e
            .timestamp()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default(),
        logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
        resource_type: e.resource_type().unwrap_or_default().to_string(),
        status: e
            .resource_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        reason: e
            .resource_status_reason()
            .filter(|r| !r.is_empty())
            .map(String::from),
    }
}

/// Follows a stack's events (printing each once, oldest first) until its status is final.
pub struct Watcher {
    stack_id: String,
    seen: HashSet<String>,
    pub events: Vec<EventLine>,
}

impl Watcher {
    /// Remembers the events that exist now, so only new ones are shown.
    pub async fn new(cfn: &Client, stack_id: &str) -> Result<Self> {
        let mut w = Watcher {
            stack_id: stack_id.to_string(),
            seen: HashSet::new(),
            events: Vec::new(),
        };
        let _ = w.fetch_new(cfn).await?;
        w.events.clear();
        Ok(w)
    }

    /// A watcher for a stack that does not exist yet (every event is new).
    pub fn fresh(stack_id: &str) -> Self {
        Watcher {
            stack_id: stack_id.to_string(),
            seen: HashSet::new(),
            events: Vec::new(),
        }
    }

    async fn fetch_new(&mut self, cfn: &Client) -> Result<Vec<EventLine>> {
        let mut fresh: Vec<StackEvent> = Vec::new();
        let mut next: Option<String> = None;
        'pages: loop {
            let page = match cfn
                .describe_stack_events()
                .stack_name(&self.stack_id)
                .set_next_token(next.clone())
                .send()
                .await
            {
                Ok(p) => p,
                // A deleted stack looked up by name is gone: no more events.
                Err(err)
                    if aws_smithy_types::error::display::DisplayErrorContext(&err)
                        .to_string()
                        .contains("does not exist") =>
                {
                    break;
                }
                Err(err) => {
                    return Err(Error::aws(format!("reading events of `{}`", self.stack_id))(err));
                }
            };
            for e in page.stack_events() {
                let id = e.event_id().unwrap_or_default().to_string();
                if self.seen.contains(&id) {
                    break 'pages;
                }
                fresh.push(e.clone());
            }
            next = page.next_token().map(String::from);
            if next.is_none() {
                break;
            }
        }
        // The API lists newest first.
        fresh.reverse();
        let lines: Vec<EventLine> = fresh.iter().map(event_line).collect();
        for e in &fresh {
            self.seen
                .insert(e.event_id().unwrap_or_default().to_string());
        }
        self.events.extend(lines.iter().cloned());
        Ok(lines)
    }

    /// Polls status and events until the status is final; returns it. A stack that no longer exists is
    /// `DELETE_COMPLETE`. Past `poll.timeout` it gives up with [`wait_timed_out`].
    pub async fn wait(
        &mut self,
        cfn: &Client,
        ui: &dyn Ui,
        what: &str,
        poll: Polling,
    ) -> Result<String> {
        let started = Instant::now();
        ui.progress_start(what);
        // Once the stack rolls back, an alias that completes its update is back on its previous version.
        let mut rolling_back = false;
        let result = loop {
            let status = match describe(cfn, &self.stack_id).await {
                Ok(Some(s)) => status_of(&s),
                Ok(None) => "DELETE_COMPLETE".to_string(),
                Err(e) => break Err(e),
            };
            match self.fetch_new(cfn).await {
                Ok(lines) => {
                    for l in lines {
                        ui.line(&l.to_string());
                        rolling_back |= l.resource_type == "AWS::CloudFormation::Stack"
                            && l.status.contains("ROLLBACK");
                        if let Some(shift) = shift_note(&l, rolling_back) {
                            ui.line(&shift);
                        }
                    }
                }
                Err(e) => break Err(e),
            }
            ui.progress_message(&format!("{what}: {status}"));
            if is_terminal(&status) {
                break Ok(status);
            }
            if started.elapsed() >= poll.timeout {
                break Err(wait_timed_out(what, &self.stack_id, &status, poll.timeout));
            }
            tokio::time::sleep(poll.interval).await;
        };
        ui.progress_finish();
        if let Ok(status) = &result {
            ui.line(&format!(
                "{what}: {status} after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        result
    }
}

/// What an event of a live alias means for its traffic: under CodeDeploy (`deployment.strategy` canary or
/// linear) the alias's update *is* the shift, which can take the configured minutes; its completion means the
/// new version serves all traffic (or, while the stack rolls back, the previous one again), its failure that
/// CodeDeploy stopped the shift and rolled it back.
pub fn shift_note(e: &EventLine, rolling_back: bool) -> Option<String> {
    if e.resource_type != "AWS::Lambda::Alias" {
        return None;
    }
    let function = e
        .logical_id
        .strip_suffix("LiveAlias")
        .unwrap_or(&e.logical_id);
    match e.status.as_str() {
        "UPDATE_IN_PROGRESS" if !rolling_back => Some(format!(
            "  traffic shift: {function} is moving to its new version (with a canary or linear deployment, CodeDeploy shifts it step by step and watches its alarms)"
        )),
        "UPDATE_COMPLETE" if rolling_back => Some(format!(
            "  traffic shift: {function} serves its previous version again"
        )),
        "UPDATE_COMPLETE" => Some(format!(
            "  traffic shift: {function} serves its new version"
        )),
        "UPDATE_FAILED" => Some(format!(
            "  traffic shift: {function} stopped and rolled back to its previous version"
        )),
        _ => None,
    }
}

/// The root cause of a failed operation: its first `*_FAILED` event with a reason (or without, if none has one).
pub fn root_cause(events: &[EventLine]) -> Option<&EventLine> {
    let mut failed = events.iter().filter(|e| e.status.ends_with("_FAILED"));
    let first = failed.clone().next();
    failed.find(|e| e.reason.is_some()).or(first)
}

/// Whether a failure's reason says it may pass by itself (throttling, a service's internal error, an IAM role
/// or its policy not yet visible to Lambda), so that trying the same create again is worth it. Anything else (a
/// bad property, a name already taken, a quota) fails the same way again and needs a person.
pub fn is_transient(reason: &str) -> bool {
    const MARKERS: [&str; 13] = [
        "throttl",
        "rate exceeded",
        "too many requests",
        "toomanyrequests",
        "requestlimitexceeded",
        "internal failure",
        "internalfailure",
        "internal error",
        "service unavailable",
        "serviceunavailable",
        "try again later",
        // Lambda sees a new IAM role only after it has propagated.
        "cannot be assumed by lambda",
        // ... and the role's new policy too: the stream mapping is created right after the projector's role, and
        // Lambda checks the role may read the stream before IAM has propagated the grant (`Cannot access stream
        // <arn>. Please ensure the role can perform the GetRecords, ... Actions on your stream in IAM.`). The
        // projector's role grants those actions on the stream (`templates/roles.yaml.hbs`), so the same create
        // succeeds once IAM has caught up; a role that truly lacked them fails the one retry the same way.
        "cannot access stream",
    ];
    let reason = reason.to_ascii_lowercase();
    MARKERS.iter().any(|m| reason.contains(m))
}

/// The failure report: the root cause (the first `*_FAILED` event with a reason) first, then the other
/// failures, oldest first.
pub fn failure_report(stack: &str, status: &str, events: &[EventLine]) -> String {
    let failed: Vec<&EventLine> = events
        .iter()
        .filter(|e| e.status.ends_with("_FAILED"))
        .collect();
    let root = root_cause(events);
    let mut out = format!("stack `{stack}` ended in {status}");
    match root {
        Some(r) => {
            out.push_str(&format!(
                "\nroot cause: {} ({}) {}: {}",
                r.logical_id,
                r.resource_type,
                r.status,
                r.reason.as_deref().unwrap_or("no reason given")
            ));
            let rest: Vec<&&EventLine> = failed.iter().filter(|e| !std::ptr::eq(**e, r)).collect();
            if !rest.is_empty() {
                out.push_str("\nthen:");
                for e in rest {
                    out.push_str(&format!(
                        "\n  {} ({}) {}: {}",
                        e.logical_id,
                        e.resource_type,
                        e.status,
                        e.reason.as_deref().unwrap_or("")
                    ));
                }
            }
        }
        None => out.push_str(
            "\nno failed resource event was reported; see the stack's events in the console",
        ),
    }
    out
}

/// The events of the stack's latest operation (newest page first, back to the event that started it), oldest
/// first: what a recovery step names when the stack was found in a failed state rather than watched into it.
pub async fn last_operation_events(cfn: &Client, stack_id: &str) -> Result<Vec<EventLine>> {
    let mut found: Vec<EventLine> = Vec::new();
    let mut next: Option<String> = None;
    // A few pages cover any operation of this stack's size; the loop is bounded all the same.
    for _ in 0..10 {
        let page = cfn
            .describe_stack_events()
            .stack_name(stack_id)
            .set_next_token(next.clone())
            .send()
            .await
            .map_err(Error::aws(format!("reading events of `{stack_id}`")))?;
        for e in page.stack_events() {
            let line = event_line(e);
            let started = line.resource_type == "AWS::CloudFormation::Stack"
                && matches!(
                    line.status.as_str(),
                    "CREATE_IN_PROGRESS"
                        | "UPDATE_IN_PROGRESS"
                        | "DELETE_IN_PROGRESS"
                        | "IMPORT_IN_PROGRESS"
                );
            found.push(line);
            if started {
                found.reverse();
                return Ok(found);
            }
        }
        next = page.next_token().map(String::from);
        if next.is_none() {
            break;
        }
    }
    found.reverse();
    Ok(found)
}

/// The exact recovery step for a stack state in which CloudFormation accepts no change set (or in which one
/// would fail), or `None` when a deploy can go on. `env` names the environment for the `cargo xtask` command
/// to run afterwards; `region` defaults to the one in `stack` when that is an ARN; `events` are the failed
/// operation's events (for the resources to name).
pub fn recovery_step(
    stack: &str,
    region: Option<&str>,
    env: Option<&str>,
    status: &str,
    events: &[EventLine],
) -> Option<String> {
    let region = region.or_else(|| region_of(stack));
    let target = match region {
        Some(r) => format!("--stack-name {stack} --region {r}"),
        None => format!("--stack-name {stack}"),
    };
    let env_arg = env.map(|e| format!(" --env {e}")).unwrap_or_default();
    let then_deploy = format!("then run `cargo xtask deploy{env_arg}` again");
    let failed = |state: &str| -> Vec<&str> {
        let mut ids: Vec<&str> = events
            .iter()
            .filter(|e| e.status == state && e.resource_type != "AWS::CloudFormation::Stack")
            .map(|e| e.logical_id.as_str())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let step = match status {
        "UPDATE_ROLLBACK_FAILED" => {
            let skip = failed("UPDATE_FAILED");
            let mut out = format!(
                "the stack is in UPDATE_ROLLBACK_FAILED and needs a person: fix the cause above, then run\n  aws cloudformation continue-update-rollback {target}"
            );
            if !skip.is_empty() {
                out.push_str(&format!(
                    "\nif a resource cannot be rolled back, skip it (it is then left as is):\n  aws cloudformation continue-update-rollback {target} --resources-to-skip {}",
                    skip.join(" ")
                ));
            }
            out.push('\n');
            out.push_str(&then_deploy);
            out
        }
        "ROLLBACK_FAILED" => format!(
            "the first create failed and so did its rollback; the stack can only be deleted: fix the cause above, then run\n  aws cloudformation delete-stack {target}\n{then_deploy}"
        ),
        "DELETE_FAILED" => {
            let stuck = failed("DELETE_FAILED");
            let mut out = format!(
                "the stack could not be deleted: fix the cause above and run `cargo xtask teardown{env_arg}` again"
            );
            if !stuck.is_empty() {
                out.push_str(&format!(
                    ", or delete the stack but keep what could not be deleted (remove it by hand later):\n  aws cloudformation delete-stack {target} --retain-resources {}",
                    stuck.join(" ")
                ));
            }
            out
        }
        "CREATE_FAILED" | "UPDATE_FAILED" => format!(
            "the stack is in {status} with rollback disabled (not by this tool); roll it back first:\n  aws cloudformation rollback-stack {target}\n{then_deploy}"
        ),
        "IMPORT_ROLLBACK_FAILED" | "IMPORT_ROLLBACK_COMPLETE" => format!(
            "adopting the retained tables into the stack failed ({status}); the tables are untouched (imported tables are retained). Fix the cause above, then delete the stack that holds nothing else:\n  aws cloudformation delete-stack {target}\n{then_deploy} (it imports the tables again)"
        ),
        _ => return None,
    };
    Some(step)
}

/// The region of a stack ARN (`arn:aws:cloudformation:<region>:...`); `None` for a plain name.
fn region_of(stack: &str) -> Option<&str> {
    stack
        .strip_prefix("arn:")
        .and_then(|r| r.split(':').nth(2))
        .filter(|r| !r.is_empty())
}

/// Turns on the termination protection of a protected environment's stack, unless it is on already. A change
/// set cannot carry it (only `CreateStack` takes `EnableTerminationProtection`), so a deploy sets it right after
/// the first create, and on any stack deployed before. It makes CloudFormation refuse `DeleteStack` until
/// someone turns it off by hand; `teardown` refuses first, saying how ([`termination_protected`]).
pub async fn protect_from_termination(cfn: &Client, stack: &str, ui: &dyn Ui) -> Result<()> {
    let Some(found) = describe(cfn, stack).await? else {
        return Ok(());
    };
    if found.enable_termination_protection() == Some(true) {
        return Ok(());
    }
    cfn.update_termination_protection()
        .stack_name(stack)
        .enable_termination_protection(true)
        .send()
        .await
        .map_err(Error::aws(format!(
            "turning on termination protection of stack `{stack}`"
        )))?;
    ui.line(&format!(
        "turned on termination protection of stack `{stack}` (a protected environment): teardown and DeleteStack refuse it"
    ));
    Ok(())
}

/// The refusal to tear down a stack with termination protection on, with the deliberate step that lifts it;
/// `None` when the stack has none.
pub fn termination_protected(stack: &Stack, region: &str, env: &str) -> Option<String> {
    let name = stack.stack_name().unwrap_or_default();
    (stack.enable_termination_protection() == Some(true)).then(|| {
        format!(
            "refusing to tear down `{name}`: the stack has termination protection (`{env}` is a protected environment, so every deploy turns it on) and nothing was deleted; \
             if it really must go, turn the protection off by hand, `aws cloudformation update-termination-protection --no-enable-termination-protection --stack-name {name} --region {region}`, \
             then run `cargo xtask teardown --env {env}` again (its tables are retained either way)"
        )
    })
}

/// Deletes a stack and follows it; a delete that fails ends with the report and the recovery step.
pub async fn delete_and_wait(
    cfn: &Client,
    stack_id: &str,
    ui: &dyn Ui,
    poll: Polling,
) -> Result<String> {
    let mut watcher = Watcher::new(cfn, stack_id).await?;
    cfn.delete_stack()
        .stack_name(stack_id)
        .send()
        .await
        .map_err(Error::aws(format!("deleting stack `{stack_id}`")))?;
    watcher
        .wait(cfn, ui, "deleting", poll)
        .await
        .and_then(|status| {
            if status == "DELETE_COMPLETE" {
                Ok(status)
            } else {
                let mut report = failure_report(stack_id, &status, &watcher.events);
                if let Some(step) = recovery_step(stack_id, None, None, &status, &watcher.events) {
                    report.push('\n');
                    report.push_str(&step);
                }
                Err(Error::StackFailed(report))
            }
        })
}
