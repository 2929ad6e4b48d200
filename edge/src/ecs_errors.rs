//! The ECS and EC2 operations ecssd calls (the sweeper, and the sidecar finding its host's address),
//! each with the class of every error the SDK models for it (ECS API reference, "Errors" of each action; "Common Errors"), matched on the SDK's typed enums.
//! EC2's query API models no operation errors: its codes are all classed generically.

use crate::ErrorClass;
use crate::retry::Operation;
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesError;
use aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesError;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionError;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksError;
use aws_sdk_ecs::operation::stop_task::StopTaskError;

pub const DESCRIBE_TASKS: Operation<DescribeTasksError> =
    Operation { name: "DescribeTasks", modeled: describe_tasks };

pub const DESCRIBE_CONTAINER_INSTANCES: Operation<DescribeContainerInstancesError> =
    Operation { name: "DescribeContainerInstances", modeled: describe_container_instances };

pub const DESCRIBE_TASK_DEFINITION: Operation<DescribeTaskDefinitionError> =
    Operation { name: "DescribeTaskDefinition", modeled: describe_task_definition };

pub const STOP_TASK: Operation<StopTaskError> = Operation { name: "StopTask", modeled: stop_task };

pub const DESCRIBE_INSTANCES: Operation<DescribeInstancesError> =
    Operation { name: "DescribeInstances", modeled: |_| None };

// ECS documents ServerException as "a server issue" (HTTP 500): transient. ClientException ("a
// client action", e.g. missing permissions or an invalid identifier) and InvalidParameterException
// cannot succeed on retry. ClusterNotFoundException is modeled for every call that names a cluster
// (DescribeTaskDefinition names none).
macro_rules! ecs_classes {
    ($err:expr, $enum:ident $(, $cluster_not_found:ident)?) => {{
        use $enum as E;
        Some(match $err {
            E::ServerException(_) => ErrorClass::Transient,
            $(E::$cluster_not_found(_) => ErrorClass::NotFound,)?
            E::ClientException(_) | E::InvalidParameterException(_) => ErrorClass::Permanent,
            _ => return None,
        })
    }};
}

fn describe_tasks(err: &DescribeTasksError) -> Option<ErrorClass> {
    ecs_classes!(err, DescribeTasksError, ClusterNotFoundException)
}

fn describe_container_instances(err: &DescribeContainerInstancesError) -> Option<ErrorClass> {
    ecs_classes!(err, DescribeContainerInstancesError, ClusterNotFoundException)
}

fn describe_task_definition(err: &DescribeTaskDefinitionError) -> Option<ErrorClass> {
    ecs_classes!(err, DescribeTaskDefinitionError)
}

fn stop_task(err: &StopTaskError) -> Option<ErrorClass> {
    ecs_classes!(err, StopTaskError, ClusterNotFoundException)
}

#[cfg(test)]
mod tests {
    use crate::retry::testing::{assert_generic_classes, class_of};
    use aws_sdk_ecs::types::error::{
        ClientException, ClusterNotFoundException, InvalidParameterException, ServerException,
    };
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// The errors ECS models for these calls (ClusterNotFoundException for those that name a
    /// cluster), with their HTTP status and class.
    macro_rules! assert_ecs_classes {
        ($op:expr, $enum:ident $(, $missing:ident)?) => {{
            use $enum as E;
            let op = &$op;
            assert_eq!(
                class_of(op, E::ServerException(ServerException::builder().build()), 500),
                ErrorClass::Transient
            );
            assert_eq!(
                class_of(op, E::ClientException(ClientException::builder().build()), 400),
                ErrorClass::Permanent
            );
            let invalid = E::InvalidParameterException(InvalidParameterException::builder().build());
            assert_eq!(class_of(op, invalid, 400), ErrorClass::Permanent);
            $(
                let missing = E::$missing(ClusterNotFoundException::builder().build());
                assert_eq!(class_of(op, missing, 400), ErrorClass::NotFound);
            )?
            assert_generic_classes(op, |meta: ErrorMetadata| E::generic(meta));
        }};
    }

    #[test]
    fn every_modeled_ecs_error_is_classed() {
        assert_ecs_classes!(DESCRIBE_TASKS, DescribeTasksError, ClusterNotFoundException);
        assert_ecs_classes!(
            DESCRIBE_CONTAINER_INSTANCES,
            DescribeContainerInstancesError,
            ClusterNotFoundException
        );
        assert_ecs_classes!(STOP_TASK, StopTaskError, ClusterNotFoundException);
        assert_ecs_classes!(DESCRIBE_TASK_DEFINITION, DescribeTaskDefinitionError);
    }

    #[test]
    fn ec2_errors_are_classed_generically() {
        assert_generic_classes(&DESCRIBE_INSTANCES, |meta: ErrorMetadata| {
            DescribeInstancesError::generic(meta)
        });
        let unknown =
            DescribeInstancesError::generic(ErrorMetadata::builder().code("UnauthorizedOperation").build());
        assert_eq!(class_of(&DESCRIBE_INSTANCES, unknown, 403), ErrorClass::Permanent);
    }
}
