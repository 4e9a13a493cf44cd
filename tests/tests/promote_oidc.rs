//! The OIDC bootstrap template (`cargo xtask promote --oidc-roles-template`), rendered from the repository's
//! configs, one per account (the shipped prod has an account of its own): one deploy role per AWS environment named exactly as its `role_arn`, trusting only this repository's
//! GitHub environment of the job that deploys it (the one the workflow uses), itself (the tool assumes
//! `role_arn` again) and the roles that promote from it; checked by cfn-lint like the stack's templates.

use std::process::Command;

use deployer::promote::OidcEnvironment;
use serde_json::Value;

use tests::cli::xtask_binary as xtask_bin;
use tests::repo_root;

fn aws_plans() -> Vec<stack::Plan> {
    let dir = repo_root().join("config");
    stack::config::environments(&dir)
        .unwrap()
        .into_iter()
        .map(|env| stack::config::load(&dir, &env).unwrap())
        .filter(|p| p.kind == stack::EnvKind::Aws)
        .collect()
}

/// The shipped environments' accounts: dev and staging share one, prod (protected) has its own.
fn accounts(plans: &[stack::Plan]) -> Vec<String> {
    let mut accounts: Vec<String> = plans.iter().filter_map(|p| p.account_id.clone()).collect();
    accounts.sort();
    accounts.dedup();
    accounts
}

/// The template of the first plan's account.
fn render(plans: &[stack::Plan], repo: &str) -> deployer::Result<String> {
    render_account(plans, repo, plans[0].account_id.as_deref().unwrap())
}

/// The template of one account: its environments' roles (the others only as promotion peers).
fn render_account(plans: &[stack::Plan], repo: &str, account: &str) -> deployer::Result<String> {
    let all: Vec<OidcEnvironment<'_>> = plans
        .iter()
        .map(|p| OidcEnvironment {
            plan: p,
            artifact_bucket: deployer::artifacts::bucket_name(p, p.account_id.as_deref()),
        })
        .collect();
    let account = account.to_string();
    let mine: Vec<_> = all
        .iter()
        .filter(|e| e.plan.account_id.as_deref() == Some(account.as_str()))
        .cloned()
        .collect();
    deployer::promote::render_oidc_roles(repo, &account, &mine, &all)
}

fn resources(body: &str) -> serde_json::Map<String, Value> {
    let template = stack::template::parse(body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    template["Resources"].as_object().unwrap().clone()
}

#[test]
fn every_aws_environment_gets_its_configured_role_trusting_only_its_github_environment() {
    let plans = aws_plans();
    assert!(
        plans.len() >= 3,
        "dev, staging and prod are aws environments"
    );
    // One template per account (the shipped prod has an account of its own), each with its provider.
    let accounts = accounts(&plans);
    assert_eq!(accounts.len(), 2, "{accounts:?}");
    let mut res = serde_json::Map::new();
    let mut body = String::new();
    for account in &accounts {
        let text = render_account(&plans, "acme/cqrs", account).unwrap();
        let mine = resources(&text);
        assert!(mine.contains_key("GitHubOidcProvider"));
        res.extend(
            mine.into_iter()
                .map(|(id, r)| (format!("{account}/{id}"), r)),
        );
        body.push_str(&text);
    }
    for plan in &plans {
        let arn = plan.role_arn.clone().unwrap();
        let name = arn.rsplit('/').next().unwrap();
        let (_, role) = res
            .iter()
            .find(|(_, r)| r["Type"] == "AWS::IAM::Role" && r["Properties"]["RoleName"] == name)
            .unwrap_or_else(|| panic!("no role named {name} for {}", plan.env));
        let trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
        let oidc = &trust[0];
        assert_eq!(oidc["Action"], "sts:AssumeRoleWithWebIdentity");
        let github_env = deployer::promote::github_environment(&plan.env);
        assert_eq!(
            oidc["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"],
            format!("repo:acme/cqrs:environment:{github_env}")
        );
        assert_eq!(
            oidc["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"],
            "sts.amazonaws.com"
        );
        // The role trusts itself (the tool assumes role_arn again inside the CI job).
        assert!(
            trust
                .iter()
                .any(|s| s["Condition"]["ArnEquals"]["aws:PrincipalArn"] == arn.as_str()),
            "{}",
            plan.env
        );
        // The environment that promotes from this one may read its release.
        for promoter in plans
            .iter()
            .filter(|p| p.deploy.promote_from.as_deref() == Some(plan.env.as_str()))
        {
            let promoter_arn = promoter.role_arn.as_deref().unwrap();
            assert!(
                trust
                    .iter()
                    .any(|s| s["Condition"]["ArnEquals"]["aws:PrincipalArn"] == promoter_arn),
                "{} must trust {promoter_arn}",
                plan.env
            );
        }
        // Its deploy permissions are scoped to its own stack.
        let policy = serde_json::to_string(&role["Properties"]["Policies"]).unwrap();
        assert!(
            policy.contains(&format!("stack/{}/*", plan.stack_name)),
            "{policy}"
        );
        assert!(
            policy.contains(&format!(
                "role{}*",
                stack::function_role_path(&plan.stack_name)
            )),
            "{policy}"
        );
    }
    // Prod's role is only for the protected `production` environment (manual approval in the workflow).
    assert!(body.contains("repo:acme/cqrs:environment:production"));
    assert!(!body.contains("environment:prod\n"));
}

#[test]
fn the_workflow_jobs_run_in_the_github_environments_the_roles_trust() {
    let text = std::fs::read_to_string(repo_root().join(".github/workflows/ci.yml")).unwrap();
    let workflow: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for plan in aws_plans() {
        let role = plan.role_arn.clone().unwrap();
        let job = workflow["jobs"]
            .as_mapping()
            .unwrap()
            .values()
            .find(|j| text_of(j).contains(&role))
            .unwrap_or_else(|| panic!("no job assumes {role}"));
        assert_eq!(
            job["environment"].as_str(),
            Some(deployer::promote::github_environment(&plan.env).as_str()),
            "the job assuming {role} must run in the GitHub environment its trust policy names"
        );
    }
}

/// `v` with every `{"Fn::Sub": "..."}` replaced by its text as CloudFormation resolves it, pseudo parameters
/// at their longest.
fn resolve_subs(v: Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
            let text = m["Fn::Sub"].as_str().expect("a Fn::Sub string").to_string();
            Value::String(
                text.replace("${AWS::Partition}", "aws-us-gov")
                    .replace("${AWS::AccountId}", "111111111111")
                    .replace("${AWS::Region}", "ap-southeast-5"),
            )
        }
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, resolve_subs(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(resolve_subs).collect()),
        other => other,
    }
}

fn text_of(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

#[test]
fn bad_input_is_refused_with_what_to_do() {
    let plans = aws_plans();
    let err = render(&plans, "not a repo").unwrap_err();
    assert!(err.to_string().contains("pass it as owner/name"), "{err}");
    let mut broken = plans.clone();
    broken[0].role_arn = Some("arn:aws:s3:::bucket".into());
    let err = render(&broken, "acme/cqrs").unwrap_err();
    assert!(err.to_string().contains("is not an IAM role ARN"), "{err}");
}

/// IAM caps the inline policies of a role at 10,240 characters in all, whitespace not counted. Measured as
/// CloudFormation sends them: each `Fn::Sub` resolved (`${AWS::Partition}` to `aws-us-gov`, the longest
/// partition, `${AWS::AccountId}` to 12 digits, `${AWS::Region}` to the longest region name), so a role that
/// fits here fits in every partition; the generated statements repeat some handler actions, hence the check.
#[test]
fn every_deploy_roles_inline_policy_fits_iams_size_limit() {
    let plans = aws_plans();
    let bodies: Vec<String> = accounts(&plans)
        .iter()
        .map(|a| render_account(&plans, "acme/cqrs", a).unwrap())
        .collect();
    let roles: Vec<(String, Value)> = bodies
        .iter()
        .flat_map(|b| resources(b))
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .collect();
    assert_eq!(roles.len(), plans.len(), "one deploy role per environment");
    for (id, role) in &roles {
        let size: usize = role["Properties"]["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                serde_json::to_string(&resolve_subs(p["PolicyDocument"].clone()))
                    .unwrap()
                    .len()
            })
            .sum();
        eprintln!("{id}: inline policies {size} of 10240 characters");
        assert!(size <= 10_240, "{id}: inline policies of {size} characters");
    }
}

#[test]
fn the_rendered_template_passes_cfn_lint() {
    let plans = aws_plans();
    let dir = tempfile::tempdir().unwrap();
    for account in accounts(&plans) {
        let body = render_account(&plans, "acme/cqrs", &account).unwrap();
        let path = dir.path().join(format!("oidc-roles-{account}.yaml"));
        std::fs::write(&path, &body).unwrap();
        let out = Command::new(tests::tools::cfn_lint())
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cfn-lint:\n{}{}\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_cli_prints_it() {
    let out = Command::new(xtask_bin())
        .args([
            "promote",
            "--oidc-roles-template",
            "--github-repo",
            "acme/cqrs",
            "--account",
            stack::placeholders::EXAMPLE_ACCOUNT,
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = String::from_utf8(out.stdout).unwrap();
    assert!(resources(&body).contains_key("GitHubOidcProvider"));
    // Without --account the shipped configs name two accounts: one template each, said so.
    let out = Command::new(xtask_bin())
        .args([
            "promote",
            "--oidc-roles-template",
            "--github-repo",
            "acme/cqrs",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("render one template per account with --account"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(xtask_bin())
        .args(["promote", "--oidc-roles-template"])
        .env_remove("GITHUB_REPOSITORY")
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--github-repo"));
}
