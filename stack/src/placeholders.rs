//! The example values the shipped `config/*.yaml` carry (two accounts, their deploy roles, a JWT issuer, a
//! CORS origin), recognised so that none of them ever reaches AWS.
//!
//! They are well-formed, so config validation accepts them and `cargo xtask validate` keeps passing on the
//! shipped examples (it prints these as warnings). A deploy or promotion into an `aws` environment refuses them
//! instead: with the example account the account check fails only after the build, with the example role CI
//! cannot assume anything, and with the example issuer every route but `/health` answers 401.

use crate::config::ConfigProblem;
use crate::plan::{EnvKind, Plan};

/// The account id of the shipped non-protected examples (`dev`, `staging`).
pub const EXAMPLE_ACCOUNT: &str = "111111111111";

/// The account id of the shipped `prod`: a protected environment needs an account of its own
/// (`stack::config` refuses one shared with a non-protected environment), so the example has its own too.
pub const EXAMPLE_PROD_ACCOUNT: &str = "888888888888";

/// Every example account id.
pub const EXAMPLE_ACCOUNTS: [&str; 2] = [EXAMPLE_ACCOUNT, EXAMPLE_PROD_ACCOUNT];

/// Domains reserved for documentation (RFC 2606); the shipped issuer and origin live under `example.com`.
const EXAMPLE_DOMAINS: [&str; 3] = ["example.com", "example.net", "example.org"];

/// Every example value still in an `aws` plan, each naming its file, its key and what to put there. Empty for
/// `local` environments (nothing there reaches AWS) and for a filled-in config.
pub fn placeholders(plan: &Plan) -> Vec<ConfigProblem> {
    if plan.kind != EnvKind::Aws {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut add = |key: &str, message: String| {
        found.push(ConfigProblem {
            file: plan.config_path.clone(),
            key: key.to_string(),
            message,
            unsafe_setting: false,
        })
    };
    if let Some(account) = plan
        .account_id
        .as_deref()
        .filter(|a| EXAMPLE_ACCOUNTS.contains(a))
    {
        add(
            "account_id",
            format!(
                "`{account}` is the shipped example; put the 12-digit id (quoted) of the AWS account `{}` deploys into (`aws sts get-caller-identity --query Account`)",
                plan.env
            ),
        );
    }
    if let Some(role) = &plan.role_arn
        && EXAMPLE_ACCOUNTS
            .iter()
            .any(|a| role.contains(&format!("::{a}:")))
    {
        let name = role.rsplit('/').next().unwrap_or("<name>");
        add(
            "role_arn",
            format!(
                "`{role}` is in the shipped example account; put the deploy role of your account, `arn:aws:iam::<account_id>:role/{name}` (created by the OIDC bootstrap, see README.md), or remove `role_arn` if only people deploy `{}` (with their own credentials)",
                plan.env
            ),
        );
    }
    if let Some(jwt) = &plan.api.jwt
        && is_example_url(&jwt.issuer)
    {
        add(
            "api.jwt.issuer",
            format!(
                "`{}` is the shipped example; put your identity provider's issuer URL (the `iss` claim of its tokens, e.g. `https://cognito-idp.<region>.amazonaws.com/<user pool id>`), or remove `api.jwt` to serve the API without authentication",
                jwt.issuer
            ),
        );
    }
    if let Some(topic) = &plan.alarm_topic_arn
        && EXAMPLE_ACCOUNTS
            .iter()
            .any(|a| topic.contains(&format!(":{a}:")))
    {
        add(
            "alarm_topic_arn",
            format!(
                "`{topic}` is in the shipped example account; put the ARN of the SNS topic that should receive `{}`'s alarms (`arn:aws:sns:<region>:<account_id>:<topic>`)",
                plan.env
            ),
        );
    }
    let origins = plan.api.cors.iter().flat_map(|c| c.allow_origins.iter());
    for (i, origin) in origins.enumerate() {
        if is_example_url(origin) {
            add(
                &format!("api.cors_origins.{i}"),
                format!(
                    "`{origin}` is the shipped example; put the origin of the web app that calls this API (`https://<host>[:port]`), or remove it"
                ),
            );
        }
    }
    found
}

/// Whether a URL's host is, or is under, a documentation domain.
fn is_example_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest
        .split(['/', ':', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    EXAMPLE_DOMAINS
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_hosts_are_recognised_and_real_ones_are_not() {
        assert!(is_example_url("https://auth.example.com/"));
        assert!(is_example_url("https://app.example.com"));
        assert!(is_example_url("https://EXAMPLE.org:8443/x"));
        assert!(!is_example_url("https://example.company.com"));
        assert!(!is_example_url("https://myexample.com"));
        assert!(!is_example_url("http://localhost:3000"));
    }
}
