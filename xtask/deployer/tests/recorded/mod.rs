//! CloudFormation answers for the recorded-exchange tests (`replay_states`, `replay_failures`): the query
//! protocol's XML bodies for the few actions the deployer reads, and an SDK config that sends every request
//! to a `StaticReplayClient` with our retry policy at a tiny backoff (so throttling tests do not wait).

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::test_util::StaticReplayClient;

pub const NS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";
pub const STACK: &str = "cqrs-dev";

/// A successful `<action>Response` around `result`.
pub fn ok_body(action: &str, result: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{NS}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"
    )
}

/// A sender error (HTTP 400) with its code and message.
pub fn error_body(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    )
}

/// `DescribeStacks`: the stack `STACK` with id `stack_id` in `status`.
pub fn stacks_body(stack_id: &str, status: &str) -> String {
    ok_body(
        "DescribeStacks",
        &format!(
            "<Stacks><member><StackId>{stack_id}</StackId><StackName>{STACK}</StackName><CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>{status}</StackStatus></member></Stacks>"
        ),
    )
}

/// `DescribeStackEvents`, newest first as the API lists them: (id, logical id, type, status, reason), each
/// stamped with the second `second(id)` of 2026-01-01T00:00.
pub fn events_body(
    stack_id: &str,
    list: &[(&str, &str, &str, &str, &str)],
    second: impl Fn(&str) -> usize,
) -> String {
    let members: String = list
        .iter()
        .map(|(id, logical, kind, status, reason)| {
            format!(
                "<member><EventId>{id}</EventId><StackId>{stack_id}</StackId><StackName>{STACK}</StackName><LogicalResourceId>{logical}</LogicalResourceId><ResourceType>{kind}</ResourceType><Timestamp>2026-01-01T00:00:{:02}Z</Timestamp><ResourceStatus>{status}</ResourceStatus><ResourceStatusReason>{reason}</ResourceStatusReason></member>",
                second(id)
            )
        })
        .collect();
    ok_body(
        "DescribeStackEvents",
        &format!("<StackEvents>{members}</StackEvents>"),
    )
}

/// An SDK config in `region` whose every request goes to `replay`.
pub async fn sdk_config(replay: &StaticReplayClient, region: &'static str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
        .http_client(replay.clone())
        .retry_config(deployer::aws::retry_config().with_initial_backoff(Duration::from_millis(1)))
        .load()
        .await
}
