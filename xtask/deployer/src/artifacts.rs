//! The artifact bucket: created by the tool outside the stack (the stack's functions need their code before
//! the stack exists), versioned, encrypted, closed to the public, and tagged so that teardown deletes only a
//! bucket this tool created. Uploads are content-addressed: a key that exists already holds the same bytes.
//!
//! The bucket's name is predictable (`<stack>-artifacts-<account>`) and a teardown frees it, so anyone could
//! create it in their own account. Every S3 call therefore states the account that must own the bucket
//! (`ExpectedBucketOwner`, [`expected_owner`]): S3 refuses a call on a bucket of another account instead of
//! reading our releases from it or writing them into it. (The deploy role's grants carry the same condition,
//! `s3:ResourceAccount`.) Old object versions expire ([`NONCURRENT_VERSION_DAYS`]), so the versioned bucket
//! does not grow with every release forever; current objects (the releases a stack can run) never expire.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    VersioningConfiguration,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;
use stack::Plan;

use crate::build::Release;
use crate::error::{Error, Result};

/// The tag marking a bucket as created by this tool (value: the stack name).
pub const OWNER_TAG: &str = "cargo-xtask:created-for-stack";

/// `<stack>-artifacts-<account>` (`local` when there is no account), lowercase, at most 63 characters.
pub fn bucket_name(plan: &Plan, account: Option<&str>) -> String {
    let mut name = format!(
        "{}-artifacts-{}",
        plan.stack_name,
        account.unwrap_or("local")
    )
    .to_lowercase();
    name.truncate(63);
    name
}

/// The account that must own `bucket`: the 12 digits its name ends with. [`bucket_name`] puts the account
/// there that `aws::verify_account` checked the credentials against, so the owner every call expects is the
/// environment's own. `None` for a bucket without an account in its name (`local`, on the local endpoint).
pub fn expected_owner(bucket: &str) -> Option<String> {
    let (_, tail) = bucket.rsplit_once('-')?;
    (tail.len() == 12 && tail.bytes().all(|b| b.is_ascii_digit())).then(|| tail.to_string())
}

/// How long an overwritten or deleted object version is kept before S3 expires it. Releases are stored
/// under content-addressed keys and never overwritten, so this only bounds drift records, smoke results and
/// anything deleted by hand.
pub const NONCURRENT_VERSION_DAYS: i32 = 30;

/// Creates the bucket if it is missing (returns whether it did), then makes sure versioning, encryption,
/// the lifecycle rule and the public access block are on: re-applying them is cheap and repairs a bucket
/// someone changed. A bucket of that name owned by another account is refused, never used.
pub async fn ensure_bucket(
    s3: &Client,
    bucket: &str,
    region: &str,
    stack_name: &str,
) -> Result<bool> {
    let exists = match s3
        .head_bucket()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .send()
        .await
    {
        Ok(_) => true,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => false,
        Err(err) => {
            return Err(Error::aws(format!(
                "checking the artifact bucket `{bucket}`: it exists but is not owned by account {}, or the deploy \
                 role lacks s3:ListBucket on it. Bucket names are global: if another account holds the name, \
                 set a different `stack_name` (the bucket is `<stack_name>-artifacts-<account>`)",
                expected_owner(bucket).as_deref().unwrap_or("(local)")
            ))(err));
        }
    };
    if !exists {
        create_bucket(s3, bucket, region, stack_name).await?;
    }
    apply_bucket_settings(s3, bucket).await?;
    Ok(!exists)
}

/// Creates the bucket in `region`, tagged with the stack that owns it.
async fn create_bucket(s3: &Client, bucket: &str, region: &str, stack_name: &str) -> Result<()> {
    let mut req = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" && !region.is_empty() {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    req.send().await.map_err(Error::aws(format!(
        "creating the artifact bucket `{bucket}`"
    )))?;
    let tagging = Tagging::builder()
        .tag_set(
            Tag::builder()
                .key(OWNER_TAG)
                .value(stack_name)
                .build()
                .expect("key and value are set"),
        )
        .build()
        .expect("tag set is set");
    s3.put_bucket_tagging()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .tagging(tagging)
        .send()
        .await
        .map_err(Error::aws(format!(
            "tagging the artifact bucket `{bucket}`"
        )))?;
    Ok(())
}

/// Versioning, encryption, the lifecycle rule and the public access block, (re)applied on every deploy.
async fn apply_bucket_settings(s3: &Client, bucket: &str) -> Result<()> {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(Error::aws(format!("enabling versioning on `{bucket}`")))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .expect("algorithm is set"),
        )
        .build();
    s3.put_bucket_encryption()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .expect("rules are set"),
        )
        .send()
        .await
        .map_err(Error::aws(format!("enabling encryption on `{bucket}`")))?;
    let lifecycle = LifecycleRule::builder()
        .id("expire-noncurrent-versions")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(NONCURRENT_VERSION_DAYS)
                .build(),
        )
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(7)
                .build(),
        )
        .build()
        .expect("status is set");
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(lifecycle)
                .build()
                .expect("rules are set"),
        )
        .send()
        .await
        .map_err(Error::aws(format!(
            "setting the lifecycle rule of `{bucket}`"
        )))?;
    s3.put_public_access_block()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(Error::aws(format!("blocking public access on `{bucket}`")))?;
    Ok(())
}

/// What an upload did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UploadSummary {
    pub uploaded: Vec<String>,
    pub skipped: Vec<String>,
}

/// Uploads each zip under its content-addressed key (skipping keys that exist) and the manifest under
/// `releases/<digest>.json`.
pub async fn upload_release(s3: &Client, bucket: &str, release: &Release) -> Result<UploadSummary> {
    let mut summary = UploadSummary::default();
    for (name, artifact) in &release.manifest.functions {
        let path = release.zip_path(*name);
        upload_if_missing(
            s3,
            bucket,
            &artifact.s3_key,
            || async {
                ByteStream::from_path(&path)
                    .await
                    .map_err(|e| Error::Tool(format!("reading {}: {e}", path.display())))
            },
            &mut summary,
        )
        .await?;
    }
    let json = release.manifest.canonical_json();
    upload_if_missing(
        s3,
        bucket,
        &release.manifest.s3_key(),
        || async { Ok(ByteStream::from(json)) },
        &mut summary,
    )
    .await?;
    Ok(summary)
}

async fn upload_if_missing<F, Fut>(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: F,
    summary: &mut UploadSummary,
) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<ByteStream>>,
{
    if s3
        .head_object()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .key(key)
        .send()
        .await
        .is_ok()
    {
        summary.skipped.push(key.to_string());
        return Ok(());
    }
    s3.put_object()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .key(key)
        .body(body().await?)
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .map_err(Error::aws(format!("uploading s3://{bucket}/{key}")))?;
    summary.uploaded.push(key.to_string());
    Ok(())
}

/// Reads a release manifest back from the bucket (promotion and status use this).
pub async fn read_manifest(
    s3: &Client,
    bucket: &str,
    digest: &str,
) -> Result<crate::manifest::ReleaseManifest> {
    let key = crate::manifest::release_key(digest);
    let out = s3
        .get_object()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .key(&key)
        .send()
        .await
        .map_err(Error::aws(format!("reading s3://{bucket}/{key}")))?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| Error::Tool(format!("reading s3://{bucket}/{key}: {e}")))?
        .into_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::InvalidInput(format!(
            "s3://{bucket}/{key} is not a release manifest: {e}"
        ))
    })
}

/// Whether the bucket exists and carries our owner tag for this stack.
///
/// Only a missing bucket or a bucket without tags is "not ours"; any other failure (access denied above all)
/// is an error naming the permission, so a deploy role missing `s3:ListBucket` or `s3:GetBucketTagging` does
/// not make teardown silently leave the bucket behind.
pub async fn is_ours(s3: &Client, bucket: &str, stack_name: &str) -> Result<bool> {
    match s3
        .head_bucket()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .send()
        .await
    {
        Ok(_) => {}
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => return Ok(false),
        Err(err) => {
            return Err(Error::aws(format!(
                "checking the artifact bucket `{bucket}` (s3:ListBucket on arn:aws:s3:::{bucket}); \
                 a bucket owned by another account is refused too (ExpectedBucketOwner); if access is denied, grant s3:ListBucket to the deploy role (templates/oidc-roles.yaml.hbs)"
            ))(err));
        }
    }
    let tags = match s3
        .get_bucket_tagging()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .send()
        .await
    {
        Ok(t) => t,
        Err(err)
            if err.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("NoSuchTagSet") =>
        {
            return Ok(false);
        }
        Err(err) => {
            return Err(Error::aws(format!(
                "reading the tags of the artifact bucket `{bucket}` (s3:GetBucketTagging on arn:aws:s3:::{bucket}); \
                 if access is denied, grant s3:GetBucketTagging to the deploy role (templates/oidc-roles.yaml.hbs)"
            ))(err));
        }
    };
    Ok(tags
        .tag_set()
        .iter()
        .any(|t| t.key() == OWNER_TAG && t.value() == stack_name))
}

/// Deletes every object version and delete marker, then the bucket. Returns how many versions were deleted.
pub async fn empty_and_delete(s3: &Client, bucket: &str) -> Result<usize> {
    let mut deleted = 0;
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .set_expected_bucket_owner(expected_owner(bucket))
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .map_err(Error::aws(format!("listing object versions of `{bucket}`")))?;
        let mut ids = Vec::new();
        for v in page.versions() {
            ids.push(
                ObjectIdentifier::builder()
                    .key(v.key().unwrap_or_default())
                    .set_version_id(v.version_id().map(String::from))
                    .build(),
            );
        }
        for m in page.delete_markers() {
            ids.push(
                ObjectIdentifier::builder()
                    .key(m.key().unwrap_or_default())
                    .set_version_id(m.version_id().map(String::from))
                    .build(),
            );
        }
        let ids: Vec<ObjectIdentifier> = ids
            .into_iter()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Tool(format!("{e}")))?;
        for chunk in ids.chunks(1000) {
            deleted += chunk.len();
            s3.delete_objects()
                .bucket(bucket)
                .set_expected_bucket_owner(expected_owner(bucket))
                .delete(
                    Delete::builder()
                        .set_objects(Some(chunk.to_vec()))
                        .quiet(true)
                        .build()
                        .map_err(|e| Error::Tool(format!("{e}")))?,
                )
                .send()
                .await
                .map_err(Error::aws(format!("deleting objects of `{bucket}`")))?;
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(String::from);
        version_marker = page.next_version_id_marker().map(String::from);
    }
    s3.delete_bucket()
        .bucket(bucket)
        .set_expected_bucket_owner(expected_owner(bucket))
        .send()
        .await
        .map_err(Error::aws(format!(
            "deleting the artifact bucket `{bucket}`"
        )))?;
    Ok(deleted)
}

/// `is_ours` on the answers only AWS gives (moto grants everything): a denied permission is an error naming
/// it, never "not ours" (which made teardown leave the bucket behind silently).
#[cfg(test)]
mod tests {
    use aws_config::{BehaviorVersion, Region};
    use aws_credential_types::Credentials;
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn answer(method: &str, uri: &str, status: u16, body: &str) -> ReplayEvent {
        ReplayEvent::new(
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(SdkBody::empty())
                .unwrap(),
            http::Response::builder()
                .status(status)
                .header("content-type", "application/xml")
                .body(SdkBody::from(body.to_string()))
                .unwrap(),
        )
    }

    fn error(code: &str) -> String {
        format!("<Error><Code>{code}</Code><Message>{code}</Message></Error>")
    }

    const HEAD: &str = "https://b.s3.us-east-1.amazonaws.com/";
    const TAGS: &str = "https://b.s3.us-east-1.amazonaws.com/?tagging";

    async fn client(replay: &StaticReplayClient) -> Client {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .http_client(replay.clone())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        crate::aws::Clients::from_sdk_config(&sdk).s3
    }

    async fn is_ours_with(events: Vec<ReplayEvent>) -> Result<bool> {
        let replay = StaticReplayClient::new(events);
        is_ours(&client(&replay).await, "b", "cqrs-dev").await
    }

    /// A bucket named for an AWS account: every call must carry that account as the expected owner.
    const OURS: &str = "cqrs-dev-artifacts-111111111111";

    fn ours(method: &str, query: &str, status: u16, body: &str) -> ReplayEvent {
        answer(
            method,
            &format!("https://{OURS}.s3.us-east-1.amazonaws.com/{query}"),
            status,
            body,
        )
    }

    #[test]
    fn the_expected_owner_is_the_account_in_the_bucket_name() {
        assert_eq!(expected_owner(OURS).as_deref(), Some("111111111111"));
        assert_eq!(expected_owner("cqrs-local-artifacts-local"), None);
        assert_eq!(expected_owner("b"), None);
        assert_eq!(expected_owner("cqrs-dev-artifacts-11111111111x"), None);
    }

    #[tokio::test]
    async fn every_s3_call_names_the_account_that_must_own_the_bucket() {
        // An existing bucket: head, then the settings re-applied; then is_ours, an upload check, emptying.
        let replay = StaticReplayClient::new(vec![
            ours("HEAD", "", 200, ""),
            ours("PUT", "?versioning", 200, ""),
            ours("PUT", "?encryption", 200, ""),
            ours("PUT", "?lifecycle", 200, ""),
            ours("PUT", "?publicAccessBlock", 200, ""),
            ours("HEAD", "", 200, ""),
            ours(
                "GET",
                "?tagging",
                200,
                "<Tagging><TagSet></TagSet></Tagging>",
            ),
            ours(
                "GET",
                "?versions",
                200,
                "<ListVersionsResult><IsTruncated>false</IsTruncated></ListVersionsResult>",
            ),
            ours("DELETE", "", 204, ""),
        ]);
        let s3 = client(&replay).await;
        assert!(
            !ensure_bucket(&s3, OURS, "us-east-1", "cqrs-dev")
                .await
                .unwrap()
        );
        assert!(!is_ours(&s3, OURS, "cqrs-dev").await.unwrap());
        assert_eq!(empty_and_delete(&s3, OURS).await.unwrap(), 0);
        let requests = replay.actual_requests().collect::<Vec<_>>();
        assert_eq!(requests.len(), 9);
        for r in requests {
            assert_eq!(
                r.headers().get("x-amz-expected-bucket-owner"),
                Some("111111111111"),
                "{} {} carries no expected owner",
                r.method(),
                r.uri()
            );
        }
    }

    #[tokio::test]
    async fn a_bucket_of_our_name_owned_by_another_account_is_refused_not_used() {
        // S3 answers 403 to HeadBucket when ExpectedBucketOwner does not match the owner.
        let replay = StaticReplayClient::new(vec![ours("HEAD", "", 403, "")]);
        let err = ensure_bucket(&client(&replay).await, OURS, "us-east-1", "cqrs-dev")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is not owned by account 111111111111"),
            "{err}"
        );
        assert!(err.contains("set a different `stack_name`"), "{err}");
        // Nothing was created or written: the only request was the check.
        assert_eq!(replay.actual_requests().count(), 1);
    }

    #[tokio::test]
    async fn a_missing_bucket_or_one_without_tags_is_not_ours() {
        assert!(
            !is_ours_with(vec![answer("HEAD", HEAD, 404, "")])
                .await
                .unwrap()
        );
        let no_tags = vec![
            answer("HEAD", HEAD, 200, ""),
            answer("GET", TAGS, 404, &error("NoSuchTagSet")),
        ];
        assert!(!is_ours_with(no_tags).await.unwrap());
        let tagged = vec![
            answer("HEAD", HEAD, 200, ""),
            answer(
                "GET",
                TAGS,
                200,
                &format!(
                    "<Tagging><TagSet><Tag><Key>{OWNER_TAG}</Key><Value>cqrs-dev</Value></Tag></TagSet></Tagging>"
                ),
            ),
        ];
        assert!(is_ours_with(tagged).await.unwrap());
    }

    #[tokio::test]
    async fn access_denied_is_an_error_naming_the_permission() {
        let err = is_ours_with(vec![answer("HEAD", HEAD, 403, "")])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3:ListBucket"), "{err}");
        let err = is_ours_with(vec![
            answer("HEAD", HEAD, 200, ""),
            answer("GET", TAGS, 403, &error("AccessDenied")),
        ])
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("s3:GetBucketTagging"), "{err}");
        assert!(err.contains("AccessDenied"), "{err}");
    }
}
