//! `cargo xtask drift` on AWS: CloudFormation's own drift detection on the environment's stack, and what it
//! found changed outside the pipeline (a property edited in the console, a resource deleted by hand).
//!
//! CloudFormation does the comparison: `DetectStackDrift` starts it, `DescribeStackDriftDetectionStatus` is
//! polled until it ends (within the `--wait-timeout` deadline, like every wait on CloudFormation), and
//! `DescribeStackResourceDrifts`, every page, filtered to `MODIFIED` and `DELETED`, lists each drifted resource
//! with its property differences. CloudFormation reads each resource with the caller's credentials, so the
//! deploy role's read permissions (the resource handlers' `read` permissions, which it holds) are what it uses.
//! It checks only the properties the template sets, and only resource types that support drift detection.
//!
//! The local endpoint (moto) does not implement drift detection; `xtask` refuses a local environment before
//! calling this, and the tests replay CloudFormation answers recorded in the shapes of the SDK's model.

use std::fmt;
use std::time::Instant;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{StackDriftDetectionStatus, StackResourceDriftStatus};
use serde::Serialize;
use stack::Plan;

use crate::error::{Error, Result};
use crate::stackops::Polling;
use crate::ui::Ui;

/// How detection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detection {
    /// Every resource that supports drift detection was checked.
    Complete,
    /// CloudFormation could not check at least one resource (the reason names it, often a missing read
    /// permission); the drifts listed are those of the resources it did check.
    Failed,
}

/// One property that differs from the template (CloudFormation's `PropertyDifference`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyDifference {
    /// The property's path in the resource's properties, as JSON Pointer (`/MemorySize`, `/Tags/1/Value`).
    pub path: String,
    /// The value the template sets, as JSON text.
    pub expected: String,
    /// The value the resource has now, as JSON text.
    pub actual: String,
    /// `ADD`, `REMOVE` or `NOT_EQUAL`.
    pub difference: String,
}

/// A resource that changed outside the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftedResource {
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub resource_type: String,
    /// `MODIFIED` or `DELETED`.
    pub status: String,
    /// Empty for a deleted resource.
    pub differences: Vec<PropertyDifference>,
}

/// The outcome of one drift detection of an environment's stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftReport {
    pub env: String,
    pub stack_name: String,
    pub region: String,
    /// CloudFormation's id of this detection (`aws cloudformation describe-stack-drift-detection-status`).
    pub detection_id: String,
    pub detection: Detection,
    /// Why detection failed, as CloudFormation says it.
    pub detection_reason: Option<String>,
    /// The stack's drift status: `IN_SYNC`, `DRIFTED`, `UNKNOWN` or `NOT_CHECKED`.
    pub stack_drift_status: String,
    /// When CloudFormation finished checking (ISO 8601).
    pub checked_at: Option<String>,
    /// The drifted resources, by logical id.
    pub resources: Vec<DriftedResource>,
}

impl DriftReport {
    /// Whether anything changed outside the pipeline.
    pub fn drifted(&self) -> bool {
        !self.resources.is_empty() || self.stack_drift_status == "DRIFTED"
    }
}

impl fmt::Display for DriftReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stack = format!("stack `{}` ({})", self.stack_name, self.env);
        let when = self
            .checked_at
            .as_deref()
            .map(|t| format!(", checked {t}"))
            .unwrap_or_default();
        if self.drifted() {
            let n = self.resources.len();
            writeln!(
                f,
                "{stack} has drifted: {n} resource{} changed outside the pipeline{when}",
                if n == 1 { "" } else { "s" }
            )?;
        } else if self.detection == Detection::Complete {
            writeln!(
                f,
                "{stack} is in sync with its template: nothing changed outside the pipeline{when}"
            )?;
        } else {
            writeln!(
                f,
                "{stack}: no drift found in the resources CloudFormation could check{when}"
            )?;
        }
        for r in &self.resources {
            let sign = if r.status == "DELETED" { '-' } else { '~' };
            write!(
                f,
                "  {sign} {} ({}) {}",
                r.logical_id, r.resource_type, r.status
            )?;
            match &r.physical_id {
                Some(id) if r.status == "DELETED" => writeln!(f, ": `{id}` no longer exists")?,
                Some(id) => writeln!(f, " `{id}`")?,
                None => writeln!(f)?,
            }
            for d in &r.differences {
                writeln!(
                    f,
                    "      {}: expected {}, actual {} ({})",
                    d.path,
                    shown(&d.expected),
                    shown(&d.actual),
                    d.difference
                )?;
            }
        }
        if self.detection == Detection::Failed {
            writeln!(
                f,
                "drift detection failed for part of the stack: {}",
                self.detection_reason
                    .as_deref()
                    .unwrap_or("(no reason given)")
            )?;
        }
        if self.drifted() {
            writeln!(
                f,
                "a deploy does not undo this (CloudFormation updates only what the template changes): change it back by hand, or make the config say what you want and run `cargo xtask deploy --env {}`",
                self.env
            )?;
        }
        writeln!(
            f,
            "drift detection {} (region {})",
            self.detection_id, self.region
        )
    }
}

fn minutes_or_seconds(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// An absent value (a property added or removed) shows as `(none)`.
fn shown(v: &str) -> &str {
    if v.is_empty() { "(none)" } else { v }
}

/// Runs drift detection on `plan`'s stack and returns what changed outside the pipeline.
///
/// A stack that does not exist is an error (nothing to compare); so is a detection still running at the
/// deadline (CloudFormation carries on: the message names its id). A detection that failed for some resources
/// is a report with [`Detection::Failed`] and the drifts of the resources CloudFormation could check.
pub async fn detect(cfn: &Client, plan: &Plan, poll: Polling, ui: &dyn Ui) -> Result<DriftReport> {
    let stack = plan.stack_name.as_str();
    ui.line(&format!(
        "detecting drift of stack `{stack}`: CloudFormation reads each resource and compares it with the template (a minute or so)"
    ));
    let started = cfn
        .detect_stack_drift()
        .stack_name(stack)
        .send()
        .await
        .map_err(|err| {
            let text = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
            if text.contains("does not exist") {
                Error::Aws {
                    context: format!("detecting drift of stack `{stack}`"),
                    message: format!(
                        "the stack does not exist in {}: nothing is deployed to compare with its template (`cargo xtask deploy --env {}` creates it)",
                        plan.region, plan.env
                    ),
                }
            } else {
                Error::Aws {
                    context: format!("starting drift detection of stack `{stack}`"),
                    message: text,
                }
            }
        })?;
    let id = started
        .stack_drift_detection_id()
        .ok_or_else(|| Error::Aws {
            context: format!("starting drift detection of stack `{stack}`"),
            message: "CloudFormation returned no drift detection id".into(),
        })?
        .to_string();

    let began = Instant::now();
    let status = loop {
        let out = cfn
            .describe_stack_drift_detection_status()
            .stack_drift_detection_id(&id)
            .send()
            .await
            .map_err(Error::aws(format!(
                "reading drift detection `{id}` of stack `{stack}`"
            )))?;
        match out.detection_status() {
            Some(StackDriftDetectionStatus::DetectionInProgress) | None => {}
            Some(_) => break out,
        }
        if began.elapsed() >= poll.timeout {
            return Err(Error::StackFailed(format!(
                "gave up waiting after {} (the wait limit; raise it with --wait-timeout): drift detection `{id}` of stack `{stack}` is still DETECTION_IN_PROGRESS; \
                 CloudFormation carries on by itself: follow it with `aws cloudformation describe-stack-drift-detection-status --stack-drift-detection-id {id} --region {}`, \
                 or run the command again later",
                minutes_or_seconds(poll.timeout),
                plan.region
            )));
        }
        tokio::time::sleep(poll.interval).await;
    };
    let detection = match status.detection_status() {
        Some(StackDriftDetectionStatus::DetectionComplete) => Detection::Complete,
        _ => Detection::Failed,
    };
    let resources = drifted_resources(cfn, stack).await?;
    Ok(DriftReport {
        env: plan.env.clone(),
        stack_name: stack.to_string(),
        region: plan.region.clone(),
        detection_id: id,
        detection,
        detection_reason: status.detection_status_reason().map(str::to_string),
        stack_drift_status: status
            .stack_drift_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "UNKNOWN".into()),
        checked_at: status
            .timestamp()
            .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
        resources,
    })
}

/// Every page of the stack's last drift results, only the `MODIFIED` and `DELETED` resources, by logical id.
async fn drifted_resources(cfn: &Client, stack: &str) -> Result<Vec<DriftedResource>> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = cfn
            .describe_stack_resource_drifts()
            .stack_name(stack)
            .stack_resource_drift_status_filters(StackResourceDriftStatus::Modified)
            .stack_resource_drift_status_filters(StackResourceDriftStatus::Deleted)
            .set_next_token(next.clone())
            .send()
            .await
            .map_err(Error::aws(format!(
                "listing the drifted resources of stack `{stack}`"
            )))?;
        for d in page.stack_resource_drifts() {
            out.push(DriftedResource {
                logical_id: d.logical_resource_id().unwrap_or_default().to_string(),
                physical_id: d.physical_resource_id().map(str::to_string),
                resource_type: d.resource_type().unwrap_or_default().to_string(),
                status: d
                    .stack_resource_drift_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                differences: d
                    .property_differences()
                    .iter()
                    .map(|p| PropertyDifference {
                        path: p.property_path().unwrap_or_default().to_string(),
                        expected: p.expected_value().unwrap_or_default().to_string(),
                        actual: p.actual_value().unwrap_or_default().to_string(),
                        difference: p
                            .difference_type()
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_default(),
                    })
                    .collect(),
            });
        }
        next = page.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    out.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    Ok(out)
}
