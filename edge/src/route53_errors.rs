//! The Route53 operations ecssd calls, each with the class of every error the SDK models for it
//! (API reference, "Errors" of each action), matched on the SDK's typed error enums.
//!
//! `InvalidChangeBatch` is split by its messages: Route53 uses it both for a plan made from a stale
//! view (a CREATE of a record that exists, a DELETE of one that does not or whose values differ),
//! which a re-read and re-plan fixes, and for requests that can never succeed (a TXT string over 255
//! characters, a name outside the zone, too many records for a name, a CNAME at the name...), which
//! are permanent and must never be mistaken for someone else's records.

use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::operation::get_hosted_zone::GetHostedZoneError;
use aws_sdk_route53::operation::list_hosted_zones_by_name::ListHostedZonesByNameError;
use aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsError;
use aws_sdk_route53::types::error::InvalidChangeBatch;

use crate::retry::{ErrorClass, Operation};

pub const CHANGE_RESOURCE_RECORD_SETS: Operation<ChangeResourceRecordSetsError> =
    Operation { name: "ChangeResourceRecordSets", modeled: change_resource_record_sets };

pub const LIST_RESOURCE_RECORD_SETS: Operation<ListResourceRecordSetsError> =
    Operation { name: "ListResourceRecordSets", modeled: list_resource_record_sets };

pub const LIST_HOSTED_ZONES_BY_NAME: Operation<ListHostedZonesByNameError> =
    Operation { name: "ListHostedZonesByName", modeled: list_hosted_zones_by_name };

pub const GET_HOSTED_ZONE: Operation<GetHostedZoneError> =
    Operation { name: "GetHostedZone", modeled: get_hosted_zone };

fn change_resource_record_sets(err: &ChangeResourceRecordSetsError) -> Option<ErrorClass> {
    use ChangeResourceRecordSetsError as E;
    Some(match err {
        // "The request was rejected because Route 53 was still processing a prior request": the
        // zone's changes are processed one at a time; retry with increasing intervals.
        E::PriorRequestNotComplete(_) => ErrorClass::Transient,
        E::InvalidChangeBatch(batch) if is_stale_view(batch) => ErrorClass::Conflict,
        E::InvalidChangeBatch(_) | E::InvalidInput(_) | E::NoSuchHealthCheck(_) => ErrorClass::Permanent,
        E::NoSuchHostedZone(_) => ErrorClass::NotFound,
        _ => return None,
    })
}

fn list_resource_record_sets(err: &ListResourceRecordSetsError) -> Option<ErrorClass> {
    use ListResourceRecordSetsError as E;
    Some(match err {
        E::InvalidInput(_) => ErrorClass::Permanent,
        E::NoSuchHostedZone(_) => ErrorClass::NotFound,
        _ => return None,
    })
}

fn list_hosted_zones_by_name(err: &ListHostedZonesByNameError) -> Option<ErrorClass> {
    use ListHostedZonesByNameError as E;
    Some(match err {
        E::InvalidDomainName(_) | E::InvalidInput(_) => ErrorClass::Permanent,
        _ => return None,
    })
}

fn get_hosted_zone(err: &GetHostedZoneError) -> Option<ErrorClass> {
    use GetHostedZoneError as E;
    Some(match err {
        E::InvalidInput(_) => ErrorClass::Permanent,
        E::NoSuchHostedZone(_) => ErrorClass::NotFound,
        _ => return None,
    })
}

/// The problems Route53 reports for one rejected batch: its list of messages when it sends one,
/// else its single message.
pub fn batch_messages(batch: &InvalidChangeBatch) -> Vec<&str> {
    match batch.messages() {
        [] => batch.message().into_iter().collect(),
        messages => messages.iter().map(String::as_str).collect(),
    }
}

/// Whether every problem Route53 reports for a batch is one a stale view explains.
pub fn is_stale_view(batch: &InvalidChangeBatch) -> bool {
    let messages = batch_messages(batch);
    !messages.is_empty() && messages.iter().all(|message| only_stale_problems(message))
}

/// The three problems a plan made from a stale view meets, as Route53 words them:
/// `Tried to create resource record set [name='x.', type='A'] but it already exists`, and so on.
const STALE_OPENINGS: [&str; 2] =
    ["Tried to create resource record set [", "Tried to delete resource record set ["];
const STALE_ENDINGS: [&str; 3] = [
    "] but it already exists",
    "] but it was not found",
    "] but the values provided do not match the current values",
];

/// Whether `text` is nothing but stale-view problems: one, or several in Route53's bracketed,
/// comma-separated list. Anything else in it makes the batch invalid, not stale.
fn only_stale_problems(text: &str) -> bool {
    let text = text.trim();
    let mut rest = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text).trim();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some(after_opening) = STALE_OPENINGS.iter().find_map(|o| rest.strip_prefix(o)) else {
            return false;
        };
        // The bracketed record description holds no `]` of its own for the names ecssd writes; a
        // name that does makes this answer "not stale", the safe side.
        let Some(close) = after_opening.find(']') else { return false };
        let Some(after_ending) =
            STALE_ENDINGS.iter().find_map(|ending| after_opening[close..].strip_prefix(ending))
        else {
            return false;
        };
        rest = after_ending.trim_start();
        if let Some(next) = rest.strip_prefix(',') {
            rest = next.trim_start();
            if rest.is_empty() {
                return false;
            }
        } else if !rest.is_empty() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use aws_sdk_route53::types::error::{
        InvalidDomainName, InvalidInput, NoSuchHealthCheck, NoSuchHostedZone, PriorRequestNotComplete,
    };
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;
    use crate::retry::testing::{assert_generic_classes, class_of};

    fn invalid_batch(message: &str) -> InvalidChangeBatch {
        InvalidChangeBatch::builder().message(message).build()
    }

    const CREATE_EXISTS: &str = "Tried to create resource record set [name='_web._tcp.sd.internal.', type='SRV', set-identifier='ecssd:t1:web:80'] but it already exists";
    const DELETE_MISSING: &str =
        "Tried to delete resource record set [name='t1.sd.internal.', type='A'] but it was not found";
    const DELETE_DIFFERS: &str = "Tried to delete resource record set [name='_ecssd.t1.sd.internal.', type='TXT'] but the values provided do not match the current values";

    #[test]
    fn every_modeled_change_error_is_classed() {
        use ChangeResourceRecordSetsError as E;
        let op = &CHANGE_RESOURCE_RECORD_SETS;
        for (error, status, expected) in [
            (
                E::PriorRequestNotComplete(PriorRequestNotComplete::builder().build()),
                400,
                ErrorClass::Transient,
            ),
            (E::InvalidChangeBatch(invalid_batch(CREATE_EXISTS)), 400, ErrorClass::Conflict),
            (
                E::InvalidChangeBatch(invalid_batch(
                    "[RRSet with DNS name x. is not permitted in zone sd.internal.]",
                )),
                400,
                ErrorClass::Permanent,
            ),
            (E::InvalidInput(InvalidInput::builder().build()), 400, ErrorClass::Permanent),
            (E::NoSuchHealthCheck(NoSuchHealthCheck::builder().build()), 404, ErrorClass::Permanent),
            (E::NoSuchHostedZone(NoSuchHostedZone::builder().build()), 404, ErrorClass::NotFound),
        ] {
            let name = format!("{error:?}");
            assert_eq!(class_of(op, error, status), expected, "{name}");
        }
        assert_generic_classes(op, |meta: ErrorMetadata| E::generic(meta));
    }

    #[test]
    fn every_modeled_list_error_is_classed() {
        use ListResourceRecordSetsError as E;
        let op = &LIST_RESOURCE_RECORD_SETS;
        assert_eq!(
            class_of(op, E::InvalidInput(InvalidInput::builder().build()), 400),
            ErrorClass::Permanent
        );
        assert_eq!(
            class_of(op, E::NoSuchHostedZone(NoSuchHostedZone::builder().build()), 404),
            ErrorClass::NotFound
        );
        assert_generic_classes(op, |meta: ErrorMetadata| E::generic(meta));
    }

    #[test]
    fn every_modeled_zone_lookup_error_is_classed() {
        use ListHostedZonesByNameError as E;
        let op = &LIST_HOSTED_ZONES_BY_NAME;
        assert_eq!(
            class_of(op, E::InvalidDomainName(InvalidDomainName::builder().build()), 400),
            ErrorClass::Permanent
        );
        assert_eq!(
            class_of(op, E::InvalidInput(InvalidInput::builder().build()), 400),
            ErrorClass::Permanent
        );
        assert_generic_classes(op, |meta: ErrorMetadata| E::generic(meta));

        use GetHostedZoneError as G;
        let op = &GET_HOSTED_ZONE;
        assert_eq!(
            class_of(op, G::InvalidInput(InvalidInput::builder().build()), 400),
            ErrorClass::Permanent
        );
        assert_eq!(
            class_of(op, G::NoSuchHostedZone(NoSuchHostedZone::builder().build()), 404),
            ErrorClass::NotFound
        );
        assert_generic_classes(op, |meta: ErrorMetadata| G::generic(meta));
    }

    #[test]
    fn stale_views_are_told_from_invalid_batches() {
        for stale in [
            CREATE_EXISTS.to_owned(),
            DELETE_MISSING.to_owned(),
            DELETE_DIFFERS.to_owned(),
            format!("[{CREATE_EXISTS}]"),
            format!("[{DELETE_MISSING}, {DELETE_DIFFERS}]"),
        ] {
            assert!(is_stale_view(&invalid_batch(&stale)), "{stale}");
        }
        let listed = InvalidChangeBatch::builder().messages(CREATE_EXISTS).messages(DELETE_MISSING).build();
        assert!(is_stale_view(&listed));

        for invalid in [
            String::new(),
            "[]".to_owned(),
            "RRSet with DNS name x.other. is not permitted in zone sd.internal.".to_owned(),
            "[Invalid Resource Record: 'FATAL problem: CharacterStringTooLong (Value is too long) encountered with '\"aaaa\"'']".to_owned(),
            format!("[{CREATE_EXISTS}, RRSet of type CNAME with DNS name t1.sd.internal. is not permitted as it conflicts with other records with the same DNS name in zone sd.internal.]"),
            format!("{DELETE_MISSING},"),
            format!("{DELETE_MISSING} and more"),
        ] {
            assert!(!is_stale_view(&invalid_batch(&invalid)), "{invalid}");
        }
        let mixed =
            InvalidChangeBatch::builder().messages(CREATE_EXISTS).messages("Too many records").build();
        assert!(!is_stale_view(&mixed));
    }
}
