//! Teardown: delete the stack, keep or delete the retained tables, and remove the artifact bucket the tool
//! created (every object version first, as S3 requires for a versioned bucket). A stack with termination
//! protection (a protected environment's) is refused, naming the deliberate step that lifts it.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::client::Waiters as _;
use serde::Serialize;
use stack::Plan;

use crate::artifacts;
use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::stackops;
use crate::ui::{Confirmation, Ui};

#[derive(Debug, Clone)]
pub struct TeardownOptions {
    /// `--delete-data`: also delete tables the stack retains (refused when the config protects them).
    pub delete_data: bool,
    /// Whether to ask (type the stack name) before deleting.
    pub confirm: bool,
    pub poll_interval: Duration,
    /// The overall limit of the wait for the stack's deletion (`--wait-timeout`).
    pub wait_timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeardownOutcome {
    pub env: String,
    pub stack_name: String,
    /// False when there was no stack to delete.
    pub stack_deleted: bool,
    /// Tables that survive (retained by the stack, `--delete-data` not given).
    pub retained_tables: Vec<String>,
    /// Retained tables deleted because of `--delete-data`.
    pub deleted_tables: Vec<String>,
    /// The artifact bucket removed, if the tool had created one.
    pub deleted_bucket: Option<String>,
    pub elapsed_ms: u64,
}

impl std::fmt::Display for TeardownOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.stack_deleted {
            writeln!(
                f,
                "deleted stack `{}` in {:.1} s",
                self.stack_name,
                self.elapsed_ms as f64 / 1000.0
            )?;
        } else {
            writeln!(f, "stack `{}` did not exist", self.stack_name)?;
        }
        for t in &self.retained_tables {
            writeln!(
                f,
                "kept table `{t}` (retained; `--delete-data` deletes it, a later deploy adopts it)"
            )?;
        }
        for t in &self.deleted_tables {
            writeln!(f, "deleted retained table `{t}`")?;
        }
        if let Some(b) = &self.deleted_bucket {
            writeln!(f, "deleted artifact bucket `{b}`")?;
        }
        Ok(())
    }
}

pub async fn teardown(
    clients: &Clients,
    plan: &Plan,
    bucket: &str,
    opts: &TeardownOptions,
    ui: &dyn Ui,
) -> Result<TeardownOutcome> {
    let started = Instant::now();
    let tables: Vec<_> = plan.tables().into_iter().map(|(_, t)| t).collect();
    if opts.delete_data && tables.iter().any(|t| t.deletion_protection) {
        return Err(Error::Refused(format!(
            "refusing --delete-data: {} protects this environment's data (`deletion_protection` on a table); \
             turn it off in the config and deploy first if the data really must go",
            plan.config_path.display()
        )));
    }
    // Looked up before asking: a stack with termination protection is refused without a question.
    let existing = stackops::describe(&clients.cfn, &plan.stack_name).await?;
    if let Some(refusal) = existing
        .as_ref()
        .and_then(|s| stackops::termination_protected(s, &plan.region, &plan.env))
    {
        return Err(Error::Refused(refusal));
    }
    if opts.confirm {
        let what = if opts.delete_data {
            "Delete the stack and ALL its data"
        } else {
            "Delete the stack"
        };
        match ui.confirm(
            &format!("{what} `{}` ({})?", plan.stack_name, plan.env),
            Some(&plan.stack_name),
        ) {
            Confirmation::Yes => {}
            Confirmation::No => {
                return Err(Error::Refused(
                    "teardown cancelled; nothing was deleted".into(),
                ));
            }
            Confirmation::NoTerminal => return Err(Error::Refused(
                "no terminal to confirm the teardown on; pass --yes to tear down without asking"
                    .into(),
            )),
        }
    }

    let mut stack_deleted = false;
    if let Some(stack) = existing {
        let id = stack.stack_id().unwrap_or(&plan.stack_name).to_string();
        let polling = stackops::Polling {
            interval: opts.poll_interval,
            timeout: opts.wait_timeout,
        };
        stackops::delete_and_wait(&clients.cfn, &id, ui, polling).await?;
        stack_deleted = true;
    }

    let mut retained_tables = Vec::new();
    let mut deleted_tables = Vec::new();
    for table in tables.iter().filter(|t| t.retain_on_delete) {
        let exists = clients
            .dynamodb
            .describe_table()
            .table_name(&table.table_name)
            .send()
            .await
            .is_ok();
        if !exists {
            continue;
        }
        if opts.delete_data {
            clients
                .dynamodb
                .delete_table()
                .table_name(&table.table_name)
                .send()
                .await
                .map_err(Error::aws(format!(
                    "deleting retained table `{}`",
                    table.table_name
                )))?;
            clients
                .dynamodb
                .wait_until_table_not_exists()
                .table_name(&table.table_name)
                .wait(Duration::from_secs(300))
                .await
                .map_err(Error::aws(format!(
                    "waiting for table `{}` to be deleted",
                    table.table_name
                )))?;
            deleted_tables.push(table.table_name.clone());
        } else {
            retained_tables.push(table.table_name.clone());
        }
    }

    if opts.delete_data && plan.retains_operational_resources() {
        delete_operational_resources(clients, plan, ui).await?;
    }

    let mut deleted_bucket = None;
    if artifacts::is_ours(&clients.s3, bucket, &plan.stack_name).await? {
        let n = artifacts::empty_and_delete(&clients.s3, bucket).await?;
        ui.line(&format!(
            "emptied ({n} object versions) and deleted artifact bucket `{bucket}`"
        ));
        deleted_bucket = Some(bucket.to_string());
    }
    Ok(TeardownOutcome {
        env: plan.env.clone(),
        stack_name: plan.stack_name.clone(),
        stack_deleted,
        retained_tables,
        deleted_tables,
        deleted_bucket,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The log groups retained with the tables (`Plan::retains_operational_resources`), as (logical id, name).
pub fn retained_log_groups(plan: &Plan) -> Vec<(String, String)> {
    let mut groups: Vec<(String, String)> = plan
        .functions
        .iter()
        .map(|f| {
            (
                format!("{}LogGroup", f.name.logical_prefix()),
                stack::function_log_group_name(&f.function_name),
            )
        })
        .collect();
    groups.push((
        "HttpApiAccessLogGroup".into(),
        stack::access_log_group_name(&plan.stack_name),
    ));
    groups
}

/// `--delete-data` deletes what the stack retained besides the tables (the dead-letter queue and the log
/// groups), so the next deploy starts empty instead of failing on names that already exist.
async fn delete_operational_resources(clients: &Clients, plan: &Plan, ui: &dyn Ui) -> Result<()> {
    use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;
    for (_, name) in retained_log_groups(plan) {
        match clients
            .logs
            .delete_log_group()
            .log_group_name(&name)
            .send()
            .await
        {
            Ok(_) => ui.line(&format!("deleted retained log group {name}")),
            Err(e)
                if e.as_service_error().and_then(|s| s.code())
                    == Some("ResourceNotFoundException") => {}
            Err(e) => {
                return Err(Error::aws(format!(
                    "deleting retained log group {name} (logs:DeleteLogGroup)"
                ))(e));
            }
        }
    }
    let queue = stack::dlq_name(&plan.stack_name);
    if let Ok(out) = clients.sqs.get_queue_url().queue_name(&queue).send().await
        && let Some(url) = out.queue_url()
    {
        clients
            .sqs
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .map_err(Error::aws(format!(
                "deleting retained queue {queue} (sqs:DeleteQueue)"
            )))?;
        ui.line(&format!("deleted retained dead-letter queue {queue}"));
    }
    Ok(())
}
