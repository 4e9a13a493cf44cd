//! SDK clients for one environment: credentials and region from the standard chain (profiles, environment,
//! `AWS_ENDPOINT_URL`), the configured role assumed when there is one (unless a person deploys with their own
//! credentials, [`Access`]), and the account checked against the config before anything is touched.
//!
//! Throttling and eventual consistency are handled by the SDK's standard retry mode (exponential backoff with
//! jitter, a retry token bucket), never by sleeps of our own.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use stack::{EnvKind, Plan};

use crate::error::{Error, Result};

/// Attempts per call (the first try included) before an error reaches us.
pub const MAX_ATTEMPTS: u32 = 8;

/// The retry configuration every client uses: standard mode (throttling errors and transient failures are
/// retried with backoff).
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_max_backoff(Duration::from_secs(20))
}

/// The clients the deployer uses, all from one `SdkConfig`.
#[derive(Debug, Clone)]
pub struct Clients {
    pub cfn: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub apigw: aws_sdk_apigatewayv2::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sts: aws_sdk_sts::Client,
    /// CloudWatch Logs, for `cargo xtask logs` ([`crate::logs`]).
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// SQS, to find a dead-letter queue retained by a teardown.
    pub sqs: aws_sdk_sqs::Client,
    pub region: String,
}

impl Clients {
    /// Clients from a ready `SdkConfig` (tests pass one with a recorded HTTP client or pointed at moto).
    /// S3 uses path-style addressing when an endpoint override is set: a local endpoint has no per-bucket DNS.
    pub fn from_sdk_config(sdk: &SdkConfig) -> Self {
        let path_style = sdk.endpoint_url().is_some();
        let s3_conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .build();
        Clients {
            cfn: aws_sdk_cloudformation::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            lambda: aws_sdk_lambda::Client::new(sdk),
            apigw: aws_sdk_apigatewayv2::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        }
    }
}

/// Whose credentials a command uses for an `aws` environment.
///
/// By default the standard chain's credentials (environment, `AWS_PROFILE`, SSO, ...) assume the config's
/// `role_arn`, as CI does. A person deploys with their own identity instead: `own_credentials` skips the role,
/// `profile` picks a named profile of `~/.aws/config` (an SSO profile, say). The account check applies either way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// `--profile`: the named profile of the shared config files to take credentials from, ahead of any in the
    /// environment.
    pub profile: Option<String>,
    /// `--no-assume-role`: use the caller's credentials as they are, without assuming `role_arn`.
    pub own_credentials: bool,
}

/// Loads the SDK config for a plan: standard chain, the plan's region, our retry config, the endpoint override
/// (the local endpoint's URL for `local`; dummy credentials there, as nothing checks them), then the role.
pub async fn sdk_config(plan: &Plan, endpoint_url: Option<&str>) -> Result<SdkConfig> {
    sdk_config_with(plan, endpoint_url, &Access::default()).await
}

/// [`sdk_config`] with explicit [`Access`]: a profile, and whether to assume `role_arn`.
pub async fn sdk_config_with(
    plan: &Plan,
    endpoint_url: Option<&str>,
    access: &Access,
) -> Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(plan.region.clone()))
        .retry_config(retry_config());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if plan.kind == EnvKind::Local {
        loader = loader.credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "local-endpoint",
        ));
    } else if let Some(profile) = &access.profile {
        // As with the AWS CLI's `--profile`: the named profile's credentials win over any in the environment
        // (the standard chain would try environment variables first).
        loader = loader.profile_name(profile).credentials_provider(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name(profile)
                .build(),
        );
    }
    let base = loader.load().await;
    let Some(role) = plan
        .role_arn
        .as_deref()
        .filter(|_| plan.kind == EnvKind::Aws && !access.own_credentials)
    else {
        return Ok(base);
    };
    let provider = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name(format!("cargo-xtask-{}", plan.env))
        .configure(&base)
        .build()
        .await;
    Ok(base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// [`sdk_config`] then [`verify_account`]: the clients of an environment, ready to use.
pub async fn connect(plan: &Plan, endpoint_url: Option<&str>) -> Result<(Clients, Option<String>)> {
    let sdk = sdk_config(plan, endpoint_url).await?;
    let clients = Clients::from_sdk_config(&sdk);
    let account = verify_account(&clients, plan).await?;
    Ok((clients, account))
}

/// Whether an SDK error means that no credentials could be found: a `CredentialsError` in its chain of
/// sources (the standard chain gave up: every source was empty, or the last one, instance metadata, failed),
/// also under the role assumption, whose own STS call then had no base credentials. When base credentials
/// were found and AWS answered the role assumption (denying `sts:AssumeRole`, say), that answer is the error
/// to show, so this is false.
fn no_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    use aws_credential_types::provider::error::CredentialsError;
    type AssumeRoleFailure = aws_sdk_sts::error::SdkError<
        aws_sdk_sts::operation::assume_role::AssumeRoleError,
        aws_sdk_sts::config::http::HttpResponse,
    >;
    let mut found = false;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        found |= e.downcast_ref::<CredentialsError>().is_some();
        if e.downcast_ref::<AssumeRoleFailure>()
            .is_some_and(|f| f.as_service_error().is_some())
        {
            return false;
        }
        next = e.source();
    }
    found
}

/// Who the credentials belong to (`sts:GetCallerIdentity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    /// The caller's ARN, e.g. `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
}

/// For AWS environments, checks that the credentials belong to the configured account and returns it;
/// `local` is not checked (returns `None`).
pub async fn verify_account(clients: &Clients, plan: &Plan) -> Result<Option<String>> {
    Ok(verify_identity(clients, plan).await?.map(|i| i.account))
}

/// [`verify_account`], returning the whole identity (the CLI names it when a person deploys as themselves).
pub async fn verify_identity(clients: &Clients, plan: &Plan) -> Result<Option<Identity>> {
    if plan.kind == EnvKind::Local {
        return Ok(None);
    }
    let identity = match clients.sts.get_caller_identity().send().await {
        Ok(identity) => identity,
        Err(err) if no_credentials(&err) => {
            // The chain's own account of each provider it tried is long and for the curious: `-v` shows it.
            tracing::debug!(
                "the credential chain found nothing: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            );
            return Err(Error::Credentials(format!(
                "no AWS credentials for `{}`: tried the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE), \
                 ~/.aws/config and ~/.aws/credentials, web identity, SSO and the container/instance metadata\n\
                 configure credentials (`aws configure sso` then --profile <name>, or AWS_PROFILE) and retry; \
                 -v shows what each source answered",
                plan.env
            )));
        }
        Err(err) => {
            return Err(Error::aws(
                "checking the AWS credentials (sts:GetCallerIdentity); configure credentials (AWS_PROFILE or --profile, environment, or `aws sso login`) and retry",
            )(err));
        }
    };
    let actual = identity.account().unwrap_or_default().to_string();
    match plan.account_id.as_deref() {
        Some(expected) if expected != actual => Err(Error::Refused(format!(
            "the credentials ({}) belong to account {actual}, but {} is for account {expected}; switch credentials (--profile or AWS_PROFILE) or fix `account_id`",
            identity.arn().unwrap_or("unknown caller"),
            plan.config_path.display()
        ))),
        _ => Ok(Some(Identity {
            account: actual,
            arn: identity.arn().unwrap_or_default().to_string(),
        })),
    }
}
