//! The ARNs of what a stack creates, in one account: built here from the plan's physical names and the region's
//! partition, so that no other crate spells an ARN (the deploy role's statements, the permission checks, the
//! local engine's function ARNs all read them from here). Templates write `${AWS::Partition}` and `!GetAtt`
//! instead; `stack::validate` checks those.

use crate::plan::{
    FunctionName, Plan, access_log_group_name, dlq_name, function_log_group_name, partition,
    views_table_name,
};

/// `arn:<partition>:lambda:<region>:<account>:function:<function name>`: a function's unqualified ARN.
pub fn function_arn(region: &str, account: &str, function_name: &str) -> String {
    regional(
        region,
        account,
        "lambda",
        &format!("function:{function_name}"),
    )
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>`.
fn regional(region: &str, account: &str, service: &str, resource: &str) -> String {
    format!(
        "arn:{}:{service}:{region}:{account}:{resource}",
        partition(region)
    )
}

/// The ARNs of one plan's resources in one account (see [`Plan::arns`]).
#[derive(Debug, Clone, Copy)]
pub struct Arns<'a> {
    plan: &'a Plan,
    account: &'a str,
}

impl Plan {
    /// The ARNs of this plan's resources in `account`.
    pub fn arns<'a>(&'a self, account: &'a str) -> Arns<'a> {
        Arns {
            plan: self,
            account,
        }
    }
}

impl Arns<'_> {
    fn regional(&self, service: &str, resource: &str) -> String {
        regional(&self.plan.region, self.account, service, resource)
    }

    fn partition(&self) -> &'static str {
        partition(&self.plan.region)
    }

    /// The stack (every stack id of that name): `...:cloudformation:...:stack/<stack>/*`.
    pub fn stack(&self) -> String {
        self.regional(
            "cloudformation",
            &format!("stack/{}/*", self.plan.stack_name),
        )
    }

    /// A table by its physical name.
    pub fn table(&self, table_name: &str) -> String {
        self.regional("dynamodb", &format!("table/{table_name}"))
    }

    /// The events, projections and views tables. The views table is listed whether or not the domain declares
    /// a view yet: a domain's first view then needs no new deploy role.
    pub fn tables(&self) -> Vec<String> {
        [
            self.plan.events_table.table_name.clone(),
            self.plan.projections_table.table_name.clone(),
            views_table_name(&self.plan.stack_name),
        ]
        .iter()
        .map(|t| self.table(t))
        .collect()
    }

    /// Every table the stack's naming rule allows: `table/<stack>-*` (a table's indexes and streams are below it).
    pub fn tables_pattern(&self) -> String {
        self.table(&format!("{}-*", self.plan.stack_name))
    }

    /// One function's unqualified ARN.
    pub fn function(&self, function: FunctionName) -> String {
        function_arn(
            &self.plan.region,
            self.account,
            &self.plan.function(function).function_name,
        )
    }

    /// Every planned function's unqualified ARN.
    pub fn functions(&self) -> Vec<String> {
        self.plan
            .functions
            .iter()
            .map(|f| self.function(f.name))
            .collect()
    }

    /// Every function the stack's naming rule allows, with its versions and aliases: `function:<stack>-*`.
    pub fn functions_pattern(&self) -> String {
        function_arn(
            &self.plan.region,
            self.account,
            &format!("{}-*", self.plan.stack_name),
        )
    }

    /// A log group with its streams: `...:logs:...:log-group:<name>:*`.
    pub fn log_group(&self, name: &str) -> String {
        self.regional("logs", &format!("log-group:{name}:*"))
    }

    /// The planned functions' log groups.
    pub fn function_log_groups(&self) -> Vec<String> {
        self.plan
            .functions
            .iter()
            .map(|f| self.log_group(&function_log_group_name(&f.function_name)))
            .collect()
    }

    /// Every function log group the stack's naming rule allows: `log-group:/aws/lambda/<stack>-*`.
    pub fn function_log_groups_pattern(&self) -> String {
        self.regional(
            "logs",
            &format!(
                "log-group:{}*",
                function_log_group_name(&format!("{}-", self.plan.stack_name))
            ),
        )
    }

    /// The HTTP API stage's access log group.
    pub fn access_log_group(&self) -> String {
        self.log_group(&access_log_group_name(&self.plan.stack_name))
    }

    /// The access log group and its streams, as a pattern.
    pub fn access_log_group_pattern(&self) -> String {
        self.regional(
            "logs",
            &format!(
                "log-group:{}*",
                access_log_group_name(&self.plan.stack_name)
            ),
        )
    }

    /// The projector's dead-letter queue.
    pub fn dlq(&self) -> String {
        self.regional("sqs", &dlq_name(&self.plan.stack_name))
    }

    /// Every HTTP API of the region (IAM scopes API Gateway by path, not by account).
    pub fn http_apis(&self) -> String {
        format!(
            "arn:{}:apigateway:{}::/apis/*",
            self.partition(),
            self.plan.region
        )
    }

    /// An S3 bucket (S3 ARNs carry neither region nor account).
    pub fn bucket(&self, bucket: &str) -> String {
        format!("arn:{}:s3:::{bucket}", self.partition())
    }

    /// Every object of an S3 bucket.
    pub fn bucket_objects(&self, bucket: &str) -> String {
        format!("arn:{}:s3:::{bucket}/*", self.partition())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_use_the_plans_names_and_the_regions_partition() {
        let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut plan = crate::config::load(&config, "dev").expect("config/dev.yaml loads");
        for (region, partition) in [
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
        ] {
            plan.region = region.into();
            let arns = plan.arns("111111111111");
            let all: Vec<String> = [
                arns.stack(),
                arns.tables_pattern(),
                arns.functions_pattern(),
                arns.function_log_groups_pattern(),
                arns.access_log_group(),
                arns.access_log_group_pattern(),
                arns.dlq(),
                arns.http_apis(),
                arns.bucket("b"),
                arns.bucket_objects("b"),
            ]
            .into_iter()
            .chain(arns.tables())
            .chain(arns.functions())
            .chain(arns.function_log_groups())
            .collect();
            for arn in &all {
                assert!(arn.starts_with(&format!("arn:{partition}:")), "{arn}");
            }
            let stack = &plan.stack_name;
            assert_eq!(
                arns.function(FunctionName::Command),
                format!(
                    "arn:{partition}:lambda:{region}:111111111111:function:{}",
                    plan.function(FunctionName::Command).function_name
                )
            );
            assert_eq!(
                arns.dlq(),
                format!("arn:{partition}:sqs:{region}:111111111111:{stack}-projector-dlq")
            );
            assert_eq!(
                arns.tables()[2],
                format!("arn:{partition}:dynamodb:{region}:111111111111:table/{stack}-views")
            );
            assert_eq!(
                arns.bucket_objects("b"),
                format!("arn:{partition}:s3:::b/*")
            );
        }
    }
}
