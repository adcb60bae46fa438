//! The first step of ingest: one item from JSON to an item ready to route.
//!
//! The item's CustomBlock is decrypted when its channel takes it encrypted to the
//! platform (security pattern 2), so that it is checked like any other; then the envelope
//! is validated, the sender authorised (signatures where the channel or sender requires
//! them), the idempotency key computed, the routing date read and, for registration
//! channels, the MPAN appointment change taken from the payload. A refusal after the
//! sender was authorised keeps the key, so the item can still be recognised as the resend
//! of a message accepted earlier.

use serde_json::Value;

use crate::broker::Broker;
use crate::catalogue::CompiledChannel;
use crate::envelope::{self, Header, PAYLOAD};
use crate::error::{ApiError, ErrorCode};
use crate::model::{Appointment, Principal};
use crate::registry::Registry;

impl Broker {
    /// For a channel of security pattern 2, the item with its CustomBlock (a JWE made for
    /// the platform) decrypted, so that it is validated, routed and archived like any
    /// other; `None` for other channels.
    pub(super) fn open_custom_block(&self, item: &Value, registry: &Registry) -> Result<Option<Value>, Vec<ApiError>> {
        let pattern_2 = item
            .pointer(&format!("{PAYLOAD}/CommonBlock/S0/interfaceID"))
            .and_then(Value::as_str)
            .and_then(|id| registry.channel(id))
            .is_some_and(|c| c.channel.encrypted_to_platform());
        if !pattern_2 {
            return Ok(None);
        }
        let path = format!("{PAYLOAD}/CustomBlock");
        let fail = |why: String| vec![ApiError::new(ErrorCode::DecryptionFailed, path.clone(), why)];
        let Some(jwe) = item.pointer(&path).and_then(Value::as_str) else {
            return Err(fail(
                "this channel takes a CustomBlock encrypted to the platform (compact JWE)".into(),
            ));
        };
        let Some(decrypter) = &self.config().decrypter else {
            return Err(fail("the platform has no decryption key configured".into()));
        };
        let plain = decrypter.decrypt(jwe).map_err(|e| fail(e.to_string()))?;
        // Read like a request body: a NUL inside the encryption is refused as one outside,
        // at its place in the item.
        let custom: Value = crate::input::parse_body(&plain).map_err(|e| match e {
            crate::input::BodyError::Nul(_) => {
                let mut error = e.to_api_error(ErrorCode::DecryptionFailed, "");
                error.path = format!("{path}{}", error.path);
                vec![error]
            }
            crate::input::BodyError::Parse(_) => fail("the decrypted CustomBlock is not JSON".into()),
        })?;
        let mut opened = item.clone();
        if let Some(slot) = opened.pointer_mut(&path) {
            *slot = custom;
        }
        Ok(Some(opened))
    }
}

/// The idempotency key of an authorised item and the hash of its payload.
#[derive(Clone)]
pub(super) struct Key {
    pub(super) sender: String,
    pub(super) reference: String,
    pub(super) content_hash: String,
}

/// Why an item was refused; `key` is set once the caller was authorised to send it.
pub(super) struct Rejection {
    pub(super) errors: Vec<ApiError>,
    pub(super) key: Option<Key>,
}

impl From<Vec<ApiError>> for Rejection {
    fn from(errors: Vec<ApiError>) -> Self {
        Self { errors, key: None }
    }
}

/// An item that passed validation and authorisation, ready to be routed.
pub(super) struct Prepared<'r> {
    pub(super) key: Key,
    pub(super) header: Header,
    pub(super) channel: &'r CompiledChannel,
    pub(super) payload: Value,
    /// The date routing is effective on, and where it came from (a payload pointer or
    /// `receipt`).
    pub(super) date: (chrono::NaiveDate, String),
    pub(super) appointments: Vec<Appointment>,
}

/// Validates and authorises one item (opened already) and keys it for idempotency.
pub(super) fn prepare<'r>(
    item: &Value,
    principal: &Principal,
    signed: bool,
    registry: &'r Registry,
    environment: &str,
    received: chrono::DateTime<chrono::Utc>,
) -> Result<Prepared<'r>, Rejection> {
    let (header, channel) = envelope::check_item(item, registry, environment)?;
    let mut errors = envelope::authorise(principal, &header, channel, registry);
    if !signed {
        if channel.channel.requires_signature() {
            errors.push(ApiError::new(
                ErrorCode::SignatureRequired,
                "",
                format!("{} takes only X-DIP-signed requests", channel.channel.id),
            ));
        } else if registry
            .participant(&header.sender_dip_id)
            .is_some_and(|p| p.signatures_required)
        {
            errors.push(ApiError::new(
                ErrorCode::SignatureRequired,
                "",
                format!("{} sends only X-DIP-signed requests", header.sender_dip_id),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let payload = item.get("payload").cloned().unwrap_or(Value::Null);
    let key = Key {
        sender: header.sender_dip_id.clone(),
        reference: header.sender_unique_reference.clone(),
        content_hash: envelope::content_hash(&payload),
    };
    let reject = |errors| Rejection {
        errors,
        key: Some(key.clone()),
    };
    let date = match &channel.channel.applicable_date {
        Some(ptr) => match envelope::date_at(&payload, ptr) {
            Some(d) => (d, ptr.clone()),
            None => {
                return Err(reject(vec![ApiError::new(
                    ErrorCode::InvalidField,
                    format!("{PAYLOAD}{ptr}"),
                    "the routing date must be a date or date-time",
                )]));
            }
        },
        None => (received.date_naive(), "receipt".to_owned()),
    };
    let appointments = appointment_changes(channel, &header, &payload, registry).map_err(reject)?;
    Ok(Prepared {
        key,
        header,
        channel,
        payload,
        date,
        appointments,
    })
}

/// The MPAN appointment change a registration channel's message carries (spec 5.5.14).
fn appointment_changes(
    channel: &CompiledChannel,
    header: &Header,
    payload: &Value,
    registry: &Registry,
) -> Result<Vec<Appointment>, Vec<ApiError>> {
    let Some(rule) = &channel.channel.appointment_update else {
        return Ok(vec![]);
    };
    let invalid = |ptr: &str, why: &str| {
        vec![ApiError::new(
            ErrorCode::InvalidField,
            format!("{PAYLOAD}{ptr}"),
            why.to_owned(),
        )]
    };
    let Some(mpan) = header.mpan.clone() else {
        return Err(vec![ApiError::new(
            ErrorCode::MissingField,
            format!("{PAYLOAD}/CommonBlock/M0/MPANCore"),
            "this channel maintains MPAN appointments and needs MPANCore",
        )]);
    };
    let role = payload
        .pointer(&rule.role)
        .and_then(Value::as_str)
        .filter(|r| registry.catalogue.roles.contains_key(*r));
    let Some(role) = role else {
        return Err(invalid(&rule.role, "must be a known role code"));
    };
    let dip_id = match &rule.participant {
        None => None,
        Some(ptr) => match payload.pointer(ptr).and_then(Value::as_str) {
            Some(d) if d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()) => Some(d.to_owned()),
            _ => return Err(invalid(ptr, "must be a DIP ID of 10 digits")),
        },
    };
    let Some(from) = envelope::date_at(payload, &rule.effective_from) else {
        return Err(invalid(&rule.effective_from, "must be a date or date-time"));
    };
    Ok(vec![Appointment {
        mpan,
        role: role.to_owned(),
        effective_from: from.format("%Y-%m-%d").to_string(),
        dip_id,
        source_transaction_id: None,
    }])
}
