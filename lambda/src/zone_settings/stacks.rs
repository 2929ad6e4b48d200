//! CloudFormation's word on whether the function's stack is being deleted: the only thing that lets a
//! custom resource's Delete empty the zone (a Delete also comes when the resource is removed in an
//! update or a rollback, or from anyone allowed to invoke the function).
//! CloudFormation User Guide, "Stack status codes": `DELETE_IN_PROGRESS`, "ongoing removal of one or
//! more stacks", is the status while a stack's resources are deleted, custom resources included.

use std::future::Future;

use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};

/// The status of a stack being deleted.
pub const DELETING: &str = "DELETE_IN_PROGRESS";

/// Asks CloudFormation about a stack.
pub trait Stacks: Sync {
    /// The stack's `StackStatus`, `None` when CloudFormation says there is no such stack (then it is
    /// not being deleted either); an error says why there is no answer.
    fn status(&self, stack_id: &str) -> impl Future<Output = Result<Option<String>, String>> + Send;
}

impl Stacks for aws_sdk_cloudformation::Client {
    async fn status(&self, stack_id: &str) -> Result<Option<String>, String> {
        let described = match self.describe_stacks().stack_name(stack_id).send().await {
            Ok(described) => described,
            // DescribeStacks models no error of its own: an unknown stack is the generic
            // ValidationError, "Stack with id ... does not exist" (a deleted stack's id is still
            // described, as DELETE_COMPLETE).
            Err(e) if e.code() == Some("ValidationError") => return Ok(None),
            Err(e) => return Err(format!("DescribeStacks {stack_id}: {}", DisplayErrorContext(&e))),
        };
        let stack =
            described.stacks().first().ok_or_else(|| format!("DescribeStacks {stack_id}: no such stack"))?;
        let status =
            stack.stack_status().ok_or_else(|| format!("DescribeStacks {stack_id}: no StackStatus"))?;
        Ok(Some(status.as_str().to_owned()))
    }
}
