//! Who and where: the account the credentials belong to and the region, asked before
//! anything else, so that missing credentials, refused credentials or an endpoint that
//! does not answer is one clear error naming what to check, not one error per resource.

use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use super::{AwsError, ErrorCategory};

/// The account and region mooring reads and changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The AWS account ID of the credentials.
    pub account: String,
    /// The region.
    pub region: String,
    /// The endpoint every client uses instead of AWS's, when one is set (an emulator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "account {}, region {}", self.account, self.region)?;
        if let Some(e) = &self.endpoint {
            write!(f, ", endpoint {e}")?;
        }
        Ok(())
    }
}

const OPERATION: &str = "sts:GetCallerIdentity";

/// The error of the identity call, told as what to check.
pub(super) fn explain<E, R>(err: SdkError<E, R>, region: &str, endpoint: Option<&str>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    let no_credentials = {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        let mut found = false;
        while let Some(e) = source {
            if e.downcast_ref::<CredentialsError>().is_some() {
                found = true;
                break;
            }
            source = e.source();
        }
        found
    };
    let configuration = |message: String| AwsError {
        operation: OPERATION,
        code: err.code().map(str::to_string),
        message,
        category: ErrorCategory::Configuration,
    };
    if no_credentials {
        return configuration(
            "no AWS credentials were found (environment, AWS_PROFILE and the shared config \
             files, SSO, the ECS task role, EC2 instance metadata): set AWS_PROFILE, or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with a role"
                .to_string(),
        );
    }
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            let at = endpoint.map_or_else(
                || format!("STS in region {region}"),
                |e| format!("{e} (region {region})"),
            );
            AwsError {
                operation: OPERATION,
                code: None,
                message: format!(
                    "AWS did not answer at {at}: check the network and any proxy, \
                     AWS_REGION{}",
                    if endpoint.is_some() {
                        " and AWS_ENDPOINT_URL"
                    } else {
                        ""
                    }
                ),
                category: ErrorCategory::Transient,
            }
        }
        SdkError::ServiceError(_) => {
            let code = err.code().unwrap_or("unknown");
            let detail = err.message().unwrap_or("no message");
            configuration(format!(
                "the credentials were refused in region {region} ({code}: {detail}): check that \
                 they are current and belong to this partition"
            ))
        }
        _ => AwsError::from_sdk(OPERATION, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::error::ErrorMetadata;

    type Err = SdkError<GetCallerIdentityError, ()>;

    #[test]
    fn each_failure_names_what_to_check() {
        let missing: Err = SdkError::dispatch_failure(ConnectorError::other(
            Box::new(CredentialsError::not_loaded("no providers in chain")),
            None,
        ));
        let e = explain(missing, "eu-west-1", None);
        assert_eq!(e.category, ErrorCategory::Configuration);
        assert!(e.message.contains("no AWS credentials"), "{e}");

        let refused: Err = SdkError::service_error(
            GetCallerIdentityError::generic(
                ErrorMetadata::builder()
                    .code("InvalidClientTokenId")
                    .message("The security token included in the request is invalid.")
                    .build(),
            ),
            (),
        );
        let e = explain(refused, "eu-west-1", None);
        assert_eq!(e.category, ErrorCategory::Configuration);
        assert!(
            e.message
                .contains("refused in region eu-west-1 (InvalidClientTokenId"),
            "{e}"
        );

        let closed: Err = SdkError::dispatch_failure(ConnectorError::io("refused".into()));
        let e = explain(closed, "eu-west-1", Some("http://127.0.0.1:1"));
        assert_eq!(e.category, ErrorCategory::Transient);
        assert!(
            e.message
                .contains("did not answer at http://127.0.0.1:1 (region eu-west-1)"),
            "{e}"
        );
        assert!(e.message.contains("AWS_ENDPOINT_URL"), "{e}");
    }
}
