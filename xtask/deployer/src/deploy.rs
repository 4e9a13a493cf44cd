//! One deploy, start to finish: no-op detection, the stack states that need a person (refused with the exact
//! recovery command instead of a change set CloudFormation would reject), artifact upload, adoption of retained
//! tables, change set, preview and guards, confirmation, execution with progress, one retry of a first create
//! that failed for a transient reason, outputs, and termination protection on a protected environment's stack.
//! Every wait has an overall deadline (`wait_timeout`).
//!
//! The same function deploys to AWS and to the local endpoint; only the clients differ.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter};
use serde::Serialize;
use stack::{EnvKind, Plan};

use crate::api::ApiReport;
use crate::artifacts::{self, UploadSummary};
use crate::aws::Clients;
use crate::build::Release;
use crate::error::{Error, Result};
use crate::preview::{self, Preview};
use crate::stackops::{self, ChangeSetInput, Polling, Watcher};
use crate::ui::{Confirmation, Ui};

/// How a deploy behaves.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// `--allow-data-loss`: let a change replace or remove a table, or change its keys or stream.
    pub allow_data_loss: bool,
    /// Whether to ask before executing (the CLI asks for AWS environments; `--yes` answers for CI).
    pub confirm: bool,
    /// How often to poll change sets and stack events.
    pub poll_interval: Duration,
    /// The overall limit of each wait on CloudFormation (change set, execution, deletion); `--wait-timeout`.
    pub wait_timeout: Duration,
    /// Apply a reviewed change set with `CreateStack`/`UpdateStack` (same template and parameters) instead of
    /// `ExecuteChangeSet`. Only for the local endpoint: moto does not compute stack outputs when it executes a
    /// change set (its `execute_change_set` never rebuilds the output map), and the local engine reads them.
    pub apply_with_stack_calls: bool,
    /// After a successful create or update of an `aws` environment, read the HTTP API back from API Gateway and
    /// fail when a planned route is missing. Off only where no API Gateway exists behind CloudFormation: an `aws`
    /// environment whose SDK endpoint is overridden to the local AWS endpoint (moto's CloudFormation silently
    /// skips `AWS::ApiGatewayV2::*`), as the cross-account promotion test does.
    pub read_back_api: bool,
}

impl DeployOptions {
    pub fn for_plan(plan: &Plan) -> Self {
        DeployOptions {
            allow_data_loss: false,
            confirm: plan.kind == EnvKind::Aws,
            poll_interval: poll_interval(plan),
            wait_timeout: stackops::DEFAULT_WAIT_TIMEOUT,
            apply_with_stack_calls: plan.kind == EnvKind::Local,
            read_back_api: plan.kind == EnvKind::Aws,
        }
    }

    /// The polling interval and the overall deadline of every wait.
    pub fn polling(&self) -> Polling {
        Polling {
            interval: self.poll_interval,
            timeout: self.wait_timeout,
        }
    }
}

/// Stack events arrive within seconds on AWS; the local endpoint applies a change set synchronously.
pub fn poll_interval(plan: &Plan) -> Duration {
    match plan.kind {
        EnvKind::Aws => Duration::from_secs(3),
        EnvKind::Local => Duration::from_millis(100),
    }
}

/// What is deployed: the plan, its rendered template, the built release and where its artifacts go.
#[derive(Debug, Clone, Copy)]
pub struct DeployRequest<'a> {
    pub plan: &'a Plan,
    pub template_body: &'a str,
    pub release: &'a Release,
    pub bucket: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployResult {
    /// The stack already matched: nothing was uploaded, no change set was created.
    UpToDate,
    Created,
    Updated,
}

/// The outcome of a deploy: `Display` for people, `Serialize` for `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub env: String,
    pub stack_name: String,
    pub result: DeployResult,
    pub release_digest: String,
    pub final_status: String,
    pub change_set: Option<String>,
    pub preview: Option<Preview>,
    pub uploads: Option<UploadSummary>,
    pub elapsed_ms: u64,
    pub outputs: BTreeMap<String, String>,
    /// The HTTP API as read back from API Gateway (AWS environments).
    pub api: Option<ApiReport>,
    /// Where the API answers: the deployed endpoint, or the local gateway (filled in by the caller for `local`).
    pub api_url: Option<String>,
}

impl std::fmt::Display for DeployOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.result {
            DeployResult::UpToDate => writeln!(
                f,
                "stack `{}` is up to date (release {})",
                self.stack_name,
                short(&self.release_digest)
            )?,
            DeployResult::Created => writeln!(
                f,
                "created stack `{}` in {:.1} s (release {})",
                self.stack_name,
                self.elapsed_ms as f64 / 1000.0,
                short(&self.release_digest)
            )?,
            DeployResult::Updated => writeln!(
                f,
                "updated stack `{}` in {:.1} s (release {})",
                self.stack_name,
                self.elapsed_ms as f64 / 1000.0,
                short(&self.release_digest)
            )?,
        }
        if !self.outputs.is_empty() {
            writeln!(f, "outputs:")?;
            for (k, v) in &self.outputs {
                writeln!(f, "  {k:<24} {v}")?;
            }
        }
        if let Some(api) = &self.api {
            write!(f, "{api}")?;
        }
        if let Some(url) = &self.api_url {
            writeln!(f, "API: {url}")?;
        }
        Ok(())
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// Deploys a release. See the module docs for the steps. A protected environment's stack ends with termination
/// protection on, whatever the deploy found (created, updated or up to date).
pub async fn deploy(
    clients: &Clients,
    req: DeployRequest<'_>,
    opts: &DeployOptions,
    ui: &dyn Ui,
) -> Result<DeployOutcome> {
    let outcome = deploy_release(clients, req, opts, ui).await?;
    if req.plan.protected {
        stackops::protect_from_termination(&clients.cfn, &req.plan.stack_name, ui).await?;
    }
    Ok(outcome)
}

async fn deploy_release(
    clients: &Clients,
    req: DeployRequest<'_>,
    opts: &DeployOptions,
    ui: &dyn Ui,
) -> Result<DeployOutcome> {
    let started = Instant::now();
    let plan = req.plan;
    let stack_name = plan.stack_name.as_str();
    let params = req.release.manifest.parameters(req.bucket);
    let digest = req.release.digest();
    let outcome = |result, final_status: String, outputs| DeployOutcome {
        env: plan.env.clone(),
        stack_name: stack_name.to_string(),
        result,
        release_digest: digest.clone(),
        final_status,
        change_set: None,
        preview: None,
        uploads: None,
        elapsed_ms: started.elapsed().as_millis() as u64,
        outputs,
        api: None,
        api_url: None,
    };

    // 1. No-op detection: two reads, no uploads, no change set.
    let existing = stackops::describe(&clients.cfn, stack_name).await?;
    if let Some(stack) = &existing
        && let Some(status) =
            up_to_date(clients, stack_name, stack, &params, req.template_body).await?
    {
        return Ok(outcome(
            DeployResult::UpToDate,
            status,
            stackops::outputs_of(stack),
        ));
    }

    // 2. States that decide how to go on.
    let mut existing = settle(clients, plan, existing, opts, ui).await?;

    // 3. Artifacts.
    let uploads = upload_artifacts(clients, &req, ui).await?;

    let mut attempt = 0;
    loop {
        attempt += 1;
        // 4. A first create after a teardown that retained the tables (or after a failed create, which retains
        //    them too): adopt them, or say what to do. Looked up again before each attempt.
        if existing.is_none() {
            let imports = retained_tables(clients, plan).await?;
            if !imports.is_empty() {
                import_retained(clients, req, &params, &imports, opts, ui).await?;
                existing = stackops::describe(&clients.cfn, stack_name).await?;
            }
        }
        let creating = existing.is_none();

        // 5. Change set and preview.
        let (input, change_set, preview) =
            propose(clients, &req, &params, &digest, existing.as_ref(), opts).await?;
        if change_set.empty || preview.is_empty() {
            stackops::delete_change_set(&clients.cfn, stack_name, &change_set.id).await?;
            let stack = stackops::describe(&clients.cfn, stack_name).await?;
            let (status, outputs) = stack
                .map(|s| (stackops::status_of(&s), stackops::outputs_of(&s)))
                .unwrap_or_default();
            let mut o = outcome(DeployResult::UpToDate, status, outputs);
            o.uploads = Some(uploads);
            return Ok(o);
        }
        ui.line(&format!(
            "change set `{}` for stack `{stack_name}`:",
            change_set.name
        ));
        for l in preview.to_string().lines() {
            ui.line(l);
        }

        // 6. Guards and confirmation.
        review(&clients.cfn, plan, &change_set, &preview, opts, ui).await?;

        // 7. Execute and follow.
        let (status, events, stack_id) =
            execute(&clients.cfn, &input, &change_set, creating, opts, ui).await?;
        if stackops::is_success(&status) {
            let stack = stackops::describe(&clients.cfn, stack_name).await?;
            let outputs = stack.as_ref().map(stackops::outputs_of).unwrap_or_default();
            let mut o = outcome(
                if creating {
                    DeployResult::Created
                } else {
                    DeployResult::Updated
                },
                status,
                outputs,
            );
            o.change_set = Some(change_set.name);
            o.preview = Some(preview);
            o.uploads = Some(uploads);
            read_back_api(clients, plan, opts, &mut o).await?;
            return Ok(o);
        }
        match after_failure(
            stack_name,
            &clients.region,
            &plan.env,
            &status,
            &events,
            creating,
            attempt,
        ) {
            AfterFailure::RetryCreate(report) => {
                ui.line(&report);
                ui.line(&format!(
                    "notice: the first create of `{stack_name}` failed for a transient reason and left an empty stack in ROLLBACK_COMPLETE; deleting it and retrying once"
                ));
                stackops::delete_and_wait(&clients.cfn, &stack_id, ui, opts.polling()).await?;
                existing = None;
            }
            AfterFailure::Fail(err) => return Err(err),
        }
    }
}

/// Step 5 of a deploy: the change set of this release against the stack as it runs (a create when there is no
/// stack), and the preview people review: CloudFormation's changes merged with the template and parameter diff.
async fn propose<'a>(
    clients: &Clients,
    req: &DeployRequest<'a>,
    params: &'a BTreeMap<String, String>,
    digest: &str,
    existing: Option<&aws_sdk_cloudformation::types::Stack>,
    opts: &DeployOptions,
) -> Result<(ChangeSetInput<'a>, stackops::ChangeSet, Preview)> {
    let stack_name = req.plan.stack_name.as_str();
    let (old_body, old_params) = deployed_template(clients, stack_name, existing).await?;
    let input = ChangeSetInput {
        stack: stack_name,
        name: change_set_name(digest),
        kind: if existing.is_none() {
            ChangeSetType::Create
        } else {
            ChangeSetType::Update
        },
        template_body: req.template_body,
        parameters: params,
        tags: &req.plan.tags,
        imports: Vec::new(),
    };
    let change_set =
        stackops::create_change_set(&clients.cfn, input.clone(), opts.polling()).await?;
    let preview = Preview {
        changes: preview::merge(
            change_set.changes.clone(),
            preview::template_diff(old_body.as_deref(), req.template_body, &old_params, params)?,
        ),
        parameters: preview::parameter_changes(&old_params, params),
    };
    Ok((input, change_set, preview))
}

/// The template and parameters the stack runs now (none for a stack to create): the "before" of the preview.
async fn deployed_template(
    clients: &Clients,
    stack_name: &str,
    existing: Option<&aws_sdk_cloudformation::types::Stack>,
) -> Result<(Option<String>, BTreeMap<String, String>)> {
    Ok(match existing {
        Some(stack) => (
            Some(stackops::template_body(&clients.cfn, stack_name).await?),
            stackops::parameters_of(stack),
        ),
        None => (None, BTreeMap::new()),
    })
}

/// After a successful deploy to AWS, the HTTP API as deployed (routes, authorizer, stage), read back into the
/// outcome when the options ask for it.
async fn read_back_api(
    clients: &Clients,
    plan: &Plan,
    opts: &DeployOptions,
    outcome: &mut DeployOutcome,
) -> Result<()> {
    if plan.kind == EnvKind::Aws && opts.read_back_api {
        let api = crate::api::read_back(clients, plan).await?;
        outcome.api_url = Some(api.endpoint.clone());
        outcome.api = Some(api);
    }
    Ok(())
}

/// Step 3 of [`deploy`]: the artifact bucket made sure of, and the release's zips not already in it uploaded.
async fn upload_artifacts(
    clients: &Clients,
    req: &DeployRequest<'_>,
    ui: &dyn Ui,
) -> Result<UploadSummary> {
    artifacts::ensure_bucket(
        &clients.s3,
        req.bucket,
        &clients.region,
        &req.plan.stack_name,
    )
    .await?;
    let uploads = artifacts::upload_release(&clients.s3, req.bucket, req.release).await?;
    ui.line(&format!(
        "artifacts: {} uploaded, {} already in s3://{}",
        uploads.uploaded.len(),
        uploads.skipped.len(),
        req.bucket
    ));
    Ok(uploads)
}

/// Step 1 of [`deploy`]: the stack's status when it already runs `template_body` with `params` (nothing to do).
async fn up_to_date(
    clients: &Clients,
    stack_name: &str,
    stack: &aws_sdk_cloudformation::types::Stack,
    params: &BTreeMap<String, String>,
    template_body: &str,
) -> Result<Option<String>> {
    let status = stackops::status_of(stack);
    if !stackops::is_success(&status) || &stackops::parameters_of(stack) != params {
        return Ok(None);
    }
    let deployed = stackops::template_body(&clients.cfn, stack_name).await?;
    Ok((deployed == template_body).then_some(status))
}

/// Step 2 of [`deploy`]: the existing stack a change set applies to, after the states that decide how to go on
/// (`None`: create it). A stack left empty by a failed first create is deleted; a busy stack, or one in a state
/// a change set cannot fix, is an error naming the command that gets it out.
async fn settle(
    clients: &Clients,
    plan: &Plan,
    existing: Option<aws_sdk_cloudformation::types::Stack>,
    opts: &DeployOptions,
    ui: &dyn Ui,
) -> Result<Option<aws_sdk_cloudformation::types::Stack>> {
    let stack_name = plan.stack_name.as_str();
    let Some(stack) = &existing else {
        return Ok(None);
    };
    let status = stackops::status_of(stack);
    let id = stack.stack_id().unwrap_or(stack_name).to_string();
    match status.as_str() {
        "ROLLBACK_COMPLETE" => {
            ui.line(&format!("notice: stack `{stack_name}` is in ROLLBACK_COMPLETE from a failed first create; it holds nothing, deleting it before creating it again"));
            stackops::delete_and_wait(&clients.cfn, &id, ui, opts.polling()).await?;
            return Ok(None);
        }
        // A stack created by a change set that was never executed: creating again reuses it.
        "REVIEW_IN_PROGRESS" => return Ok(None),
        s if !stackops::is_terminal(s) => {
            return Err(Error::StackFailed(format!(
                "stack `{stack_name}` is busy ({s}); wait for that operation to finish (`cargo xtask status --env {}`) and deploy again",
                plan.env
            )));
        }
        "DELETE_COMPLETE" => return Ok(None),
        s if stackops::recovery_step(stack_name, None, None, s, &[]).is_some() => {
            // CloudFormation would reject a change set here (or apply it to a broken stack): say what
            // happened and the command that gets the stack out of this state.
            let events = stackops::last_operation_events(&clients.cfn, &id).await?;
            let step = stackops::recovery_step(
                stack_name,
                Some(&clients.region),
                Some(&plan.env),
                s,
                &events,
            )
            .unwrap_or_default();
            return Err(Error::StackFailed(format!(
                "{}\n{step}",
                stackops::failure_report(stack_name, s, &events)
            )));
        }
        _ => {}
    }
    Ok(existing)
}

/// Applies the data-loss guard and asks for confirmation. On refusal the change set is deleted, so nothing is
/// left that someone could execute by accident.
pub async fn review(
    cfn: &aws_sdk_cloudformation::Client,
    plan: &Plan,
    change_set: &stackops::ChangeSet,
    preview: &Preview,
    opts: &DeployOptions,
    ui: &dyn Ui,
) -> Result<()> {
    let stack_name = plan.stack_name.as_str();
    let risks = preview.data_loss_risks();
    let refusal = if !risks.is_empty() && !opts.allow_data_loss {
        Some(format!(
            "refusing to deploy: this change can lose data:\n  - {}\nthe change set was deleted; rerun with --allow-data-loss if this is intended",
            risks.join("\n  - ")
        ))
    } else if opts.confirm {
        match ui.confirm(&format!("Deploy these changes to `{stack_name}` ({})?", plan.env), None) {
            Confirmation::Yes => None,
            Confirmation::No => Some("deploy cancelled; nothing was changed".to_string()),
            Confirmation::NoTerminal => Some(
                "no terminal to confirm the deploy on; pass --yes to deploy without asking (the change set was deleted)".to_string(),
            ),
        }
    } else {
        None
    };
    match refusal {
        None => Ok(()),
        Some(msg) => {
            stackops::delete_change_set(cfn, stack_name, &change_set.id).await?;
            Err(Error::Refused(msg))
        }
    }
}

/// Executes a change set and follows the stack's events until it settles. Returns the final status, the
/// events seen, and the stack id.
pub async fn execute(
    cfn: &aws_sdk_cloudformation::Client,
    input: &ChangeSetInput<'_>,
    change_set: &stackops::ChangeSet,
    creating: bool,
    opts: &DeployOptions,
    ui: &dyn Ui,
) -> Result<(String, Vec<stackops::EventLine>, String)> {
    let stack_name = input.stack;
    let mut stack_id = match stackops::describe(cfn, stack_name).await? {
        Some(s) => s.stack_id().unwrap_or(stack_name).to_string(),
        None => stack_name.to_string(),
    };
    let mut watcher;
    if opts.apply_with_stack_calls {
        stackops::delete_change_set(cfn, stack_name, &change_set.id).await?;
        // What the change set was created with, for CreateStack / UpdateStack.
        let parameters: Vec<Parameter> = input
            .parameters
            .iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build()
            })
            .collect();
        let tags: Vec<aws_sdk_cloudformation::types::Tag> = input
            .tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_cloudformation::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
            })
            .collect();
        let capabilities = vec![Capability::CapabilityIam, Capability::CapabilityNamedIam];
        if creating {
            // The change set left an empty stack in REVIEW_IN_PROGRESS; it must go before CreateStack.
            cfn.delete_stack()
                .stack_name(&stack_id)
                .send()
                .await
                .map_err(Error::aws(format!(
                    "removing the reviewed empty stack `{stack_name}`"
                )))?;
            let out = cfn
                .create_stack()
                .stack_name(stack_name)
                .template_body(input.template_body)
                .set_capabilities(Some(capabilities))
                .set_parameters(Some(parameters))
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(Error::aws(format!("creating stack `{stack_name}`")))?;
            stack_id = out.stack_id().unwrap_or(stack_name).to_string();
            watcher = Watcher::fresh(&stack_id);
        } else {
            watcher = Watcher::new(cfn, &stack_id).await?;
            cfn.update_stack()
                .stack_name(stack_name)
                .template_body(input.template_body)
                .set_capabilities(Some(capabilities))
                .set_parameters(Some(parameters))
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(Error::aws(format!("updating stack `{stack_name}`")))?;
        }
    } else {
        watcher = Watcher::new(cfn, &stack_id).await?;
        cfn.execute_change_set()
            .stack_name(stack_name)
            .change_set_name(&change_set.id)
            .send()
            .await
            .map_err(Error::aws(format!(
                "executing change set `{}`",
                change_set.name
            )))?;
    }
    let status = watcher
        .wait(
            cfn,
            ui,
            if creating { "creating" } else { "updating" },
            opts.polling(),
        )
        .await?;
    Ok((status, watcher.events, stack_id))
}

/// What to do after an execution that did not succeed.
#[derive(Debug)]
pub enum AfterFailure {
    /// A first create rolled back (`ROLLBACK_COMPLETE`) for a transient reason: the stack is empty; delete it
    /// and try once more. Holds the failure report to print first.
    RetryCreate(String),
    /// Give up with this error (root cause first, then the recovery step where the stack needs one).
    Fail(Error),
}

/// Decides what follows a failed execution: a first create that rolled back is retried once, and only when its
/// root cause is transient ([`stackops::is_transient`]); every state that needs a person gets its recovery step.
pub fn after_failure(
    stack_name: &str,
    region: &str,
    env: &str,
    status: &str,
    events: &[stackops::EventLine],
    creating: bool,
    attempt: u32,
) -> AfterFailure {
    let report = stackops::failure_report(stack_name, status, events);
    if status == "ROLLBACK_COMPLETE" && creating {
        let transient = stackops::root_cause(events)
            .and_then(|e| e.reason.as_deref())
            .is_some_and(stackops::is_transient);
        if transient && attempt == 1 {
            return AfterFailure::RetryCreate(report);
        }
        let why = if transient {
            "it failed again after one retry"
        } else {
            "the cause is not transient, so it was not retried"
        };
        return AfterFailure::Fail(Error::StackFailed(format!(
            "{report}\n{why}: fix the cause, then run `cargo xtask deploy --env {env}` again (it deletes the empty stack left in ROLLBACK_COMPLETE and creates it anew)"
        )));
    }
    // A live alias that failed to update under CodeDeploy is a traffic shift that was stopped (an alarm on the
    // new version, or a failed deployment) and rolled back: say so plainly, before the stack's own recovery.
    let report = match stackops::root_cause(events) {
        Some(e) if e.resource_type == "AWS::Lambda::Alias" && e.status == "UPDATE_FAILED" => {
            format!(
                "{report}\ntraffic shift stopped: CodeDeploy rolled `{}` back, so the previous version serves all traffic again; \
             the new version's alarms (`cargo xtask logs --env {env}`) say why",
                e.logical_id
            )
        }
        _ => report,
    };
    match stackops::recovery_step(stack_name, Some(region), Some(env), status, events) {
        Some(step) => AfterFailure::Fail(Error::StackFailed(format!("{report}\n{step}"))),
        None => AfterFailure::Fail(Error::StackFailed(report)),
    }
}

/// `xtask-<digest prefix>-<unix millis>`: unique, and says which release it carries.
fn change_set_name(digest: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("xtask-{}-{millis}", short(digest))
}

/// Tables of this plan that exist although the stack does not: left by a teardown that retained them, or by a
/// failed first create (its rollback keeps `Retain` tables too); with them the retained dead-letter queue and log
/// groups. Only "not found" means absent: any other error (access denied, say) is reported, so a table is never
/// created twice by mistake.
async fn retained_tables(
    clients: &Clients,
    plan: &Plan,
) -> Result<Vec<(String, String, String, String)>> {
    let mut found = Vec::new();
    for (logical, table) in plan.tables() {
        let exists = match clients
            .dynamodb
            .describe_table()
            .table_name(&table.table_name)
            .send()
            .await
        {
            Ok(_) => true,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(err) => {
                return Err(Error::aws(format!(
                    "looking for the retained table `{}` (dynamodb:DescribeTable)",
                    table.table_name
                ))(err));
            }
        };
        if exists {
            found.push((
                logical.to_string(),
                "AWS::DynamoDB::Table".to_string(),
                "TableName".to_string(),
                table.table_name.clone(),
            ));
        }
    }
    // The dead-letter queue and the log groups are retained with the events table: adopt them too, or the
    // create that follows the import fails on names that already exist.
    if plan.retains_operational_resources() {
        for (logical, name) in crate::teardown::retained_log_groups(plan) {
            let page = clients
                .logs
                .describe_log_groups()
                .log_group_name_prefix(&name)
                .send()
                .await
                .map_err(Error::aws(format!(
                    "looking for the retained log group {name} (logs:DescribeLogGroups)"
                )))?;
            if page
                .log_groups()
                .iter()
                .any(|g| g.log_group_name() == Some(name.as_str()))
            {
                found.push((
                    logical,
                    "AWS::Logs::LogGroup".into(),
                    "LogGroupName".into(),
                    name,
                ));
            }
        }
        let queue = stack::dlq_name(&plan.stack_name);
        if let Ok(out) = clients.sqs.get_queue_url().queue_name(&queue).send().await
            && let Some(url) = out.queue_url()
        {
            found.push((
                "ProjectorDeadLetterQueue".into(),
                "AWS::SQS::Queue".into(),
                "QueueUrl".into(),
                url.to_string(),
            ));
        }
    }
    Ok(found)
}

/// Brings retained tables back under a new stack with an `IMPORT` change set whose template holds only them,
/// as CloudFormation requires; the normal update that follows adds everything else. Where imports are not
/// supported (the local endpoint), refuses with the exact steps instead.
async fn import_retained(
    clients: &Clients,
    req: DeployRequest<'_>,
    params: &BTreeMap<String, String>,
    imports: &[(String, String, String, String)],
    opts: &DeployOptions,
    ui: &dyn Ui,
) -> Result<()> {
    let plan = req.plan;
    let names: Vec<&str> = imports.iter().map(|i| i.3.as_str()).collect();
    let steps = format!(
        "retained resources {} exist from an earlier teardown that retained them, and the stack `{}` does not;\n\
         to keep their data, import them: `aws cloudformation create-change-set --change-set-type IMPORT --stack-name {} ...` with only them in the template, then deploy again;\n\
         to start empty instead, run `cargo xtask teardown --env {} --delete-data --yes` (deletes them) and deploy again",
        names.join(" and "),
        plan.stack_name,
        plan.stack_name,
        plan.env
    );
    let body = crate::template::only_resources(
        req.template_body,
        &imports.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(),
    )?;
    ui.line(&format!(
        "adopting retained resources {} into a new stack `{}` (import)",
        names.join(", "),
        plan.stack_name
    ));
    let change_set = match stackops::create_change_set(
        &clients.cfn,
        ChangeSetInput {
            stack: &plan.stack_name,
            name: format!(
                "xtask-import-{}",
                &change_set_name(&req.release.digest())[6..]
            ),
            kind: ChangeSetType::Import,
            template_body: &body,
            parameters: params,
            tags: &plan.tags,
            imports: imports.to_vec(),
        },
        opts.polling(),
    )
    .await
    {
        Ok(cs) => cs,
        Err(e) => return Err(Error::Refused(format!("{steps}\n(the import failed: {e})"))),
    };
    let mut watcher = Watcher::fresh(&plan.stack_name);
    if let Err(e) = clients
        .cfn
        .execute_change_set()
        .stack_name(&plan.stack_name)
        .change_set_name(&change_set.id)
        .send()
        .await
    {
        return Err(Error::Refused(format!(
            "{steps}\n(the import failed: {})",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        )));
    }
    let status = watcher
        .wait(&clients.cfn, ui, "importing", opts.polling())
        .await?;
    if !stackops::is_success(&status) {
        return Err(Error::Refused(format!(
            "{steps}\n({})",
            stackops::failure_report(&plan.stack_name, &status, &watcher.events)
        )));
    }
    Ok(())
}

/// The preview of what [`deploy`] would change, from a change set that is deleted afterwards (with the empty
/// stack a `CREATE` change set leaves behind). Nothing is uploaded: a change set does not read the code.
pub async fn diff(
    clients: &Clients,
    req: DeployRequest<'_>,
    opts: &DeployOptions,
) -> Result<Preview> {
    let stack_name = req.plan.stack_name.as_str();
    let params = req.release.manifest.parameters(req.bucket);
    let existing = stackops::describe(&clients.cfn, stack_name)
        .await?
        .filter(|s| {
            !matches!(
                stackops::status_of(s).as_str(),
                "REVIEW_IN_PROGRESS" | "DELETE_COMPLETE"
            )
        });
    let (old_body, old_params) = match &existing {
        Some(stack) => (
            Some(stackops::template_body(&clients.cfn, stack_name).await?),
            stackops::parameters_of(stack),
        ),
        None => (None, BTreeMap::new()),
    };
    if old_body.as_deref() == Some(req.template_body) && old_params == params {
        return Ok(Preview::default());
    }
    let change_set = stackops::create_change_set(
        &clients.cfn,
        ChangeSetInput {
            stack: stack_name,
            name: change_set_name(&req.release.digest()),
            kind: if existing.is_some() {
                ChangeSetType::Update
            } else {
                ChangeSetType::Create
            },
            template_body: req.template_body,
            parameters: &params,
            tags: &req.plan.tags,
            imports: Vec::new(),
        },
        opts.polling(),
    )
    .await?;
    stackops::delete_change_set(&clients.cfn, stack_name, &change_set.id).await?;
    if existing.is_none()
        && let Some(s) = stackops::describe(&clients.cfn, stack_name).await?
        && stackops::status_of(&s) == "REVIEW_IN_PROGRESS"
    {
        let _ = clients
            .cfn
            .delete_stack()
            .stack_name(stack_name)
            .send()
            .await;
    }
    let diff =
        preview::template_diff(old_body.as_deref(), req.template_body, &old_params, &params)?;
    Ok(Preview {
        changes: preview::merge(change_set.changes, diff),
        parameters: preview::parameter_changes(&old_params, &params),
    })
}
