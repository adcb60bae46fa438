//! Errors of the participant API: stable codes that participants code against.

use serde::Serialize;

/// A stable error code of the participant API. The string forms are part of the wire
/// contract (`docs/api.md`); never rename one, only add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // Request level.
    /// The body is not valid JSON.
    InvalidJson,
    /// The body is JSON but neither an item object nor an array of them.
    InvalidRequest,
    /// The array holds no item.
    EmptyRequest,
    /// More items than the platform accepts in one request.
    TooManyItems,
    /// The body is larger than the platform accepts.
    PayloadTooLarge,
    /// No or an unknown credential.
    Unauthenticated,
    /// The caller may not use this endpoint.
    Forbidden,
    /// The requested resource does not exist or is not visible to the caller.
    NotFound,
    /// The platform cannot make the work durable now; retry later.
    Unavailable,
    // Item level: structure of the CommonBlock.
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong type or format.
    InvalidField,
    /// `interfaceID` names no channel of the platform.
    UnknownInterface,
    /// The channel does not accept this `schemaVersion`.
    UnsupportedSchemaVersion,
    /// The channel does not accept this `eventCode`.
    UnknownEventCode,
    /// `environmentTag` is not the platform's environment.
    EnvironmentMismatch,
    /// `MPANCore` is not 13 digits with a valid check digit.
    InvalidMpan,
    /// The CustomBlock does not satisfy the interface's JSON Schema.
    SchemaViolation,
    // Item level: authorisation.
    /// `senderDIPID` is neither the caller nor a participant that nominated the caller.
    SenderMismatch,
    /// `DIPConnectionProviderID` does not name the connecting DCP.
    DcpMismatch,
    /// The sender does not hold `senderRoleID`.
    RoleNotHeld,
    /// The role may not send on this channel.
    RoleNotPermitted,
    // Item level: routing.
    /// A primary recipient is not a known, active participant.
    UnknownRecipient,
    /// A primary recipient holds no recipient role of the channel.
    RecipientNotPermitted,
    /// The channel does not route by `primaryRecipients`.
    TargetingNotAllowed,
    /// Routing found nobody to deliver to.
    NoRecipients,
    /// The `senderUniqueReference` was used before for a different payload.
    DuplicateReferenceConflict,
    // Delivery.
    /// The recipient refused a message without saying why (return to sender).
    RecipientRejected,
    /// The message waited longer than its channel allows and was dead-lettered.
    Stale,
    /// Another consumer holds the pull lease of the queue.
    QueueLeased,
    /// The pull lease expired or was taken over; the messages will be offered again.
    LeaseLost,
    /// The queue is delivered by webhook, so it cannot be pulled.
    NotPullQueue,
    /// The channel takes only X-DIP-signed requests.
    SignatureRequired,
    /// The request's X-DIP signature does not verify.
    SignatureInvalid,
    /// A CustomBlock encrypted to the platform does not decrypt.
    DecryptionFailed,
    /// A replay would exceed the recipient's replay quota over the rolling window.
    ReplayQuotaExceeded,
    /// A JSON string of the body (an object key or a value) holds U+0000; `path` points
    /// at it.
    NulCharacter,
}

impl ErrorCode {
    /// The wire string of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "INVALID_JSON",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::EmptyRequest => "EMPTY_REQUEST",
            Self::TooManyItems => "TOO_MANY_ITEMS",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::Unavailable => "UNAVAILABLE",
            Self::MissingField => "MISSING_FIELD",
            Self::InvalidField => "INVALID_FIELD",
            Self::UnknownInterface => "UNKNOWN_INTERFACE",
            Self::UnsupportedSchemaVersion => "UNSUPPORTED_SCHEMA_VERSION",
            Self::UnknownEventCode => "UNKNOWN_EVENT_CODE",
            Self::EnvironmentMismatch => "ENVIRONMENT_MISMATCH",
            Self::InvalidMpan => "INVALID_MPAN",
            Self::SchemaViolation => "SCHEMA_VIOLATION",
            Self::SenderMismatch => "SENDER_MISMATCH",
            Self::DcpMismatch => "DCP_MISMATCH",
            Self::RoleNotHeld => "ROLE_NOT_HELD",
            Self::RoleNotPermitted => "ROLE_NOT_PERMITTED",
            Self::UnknownRecipient => "UNKNOWN_RECIPIENT",
            Self::RecipientNotPermitted => "RECIPIENT_NOT_PERMITTED",
            Self::TargetingNotAllowed => "TARGETING_NOT_ALLOWED",
            Self::NoRecipients => "NO_RECIPIENTS",
            Self::DuplicateReferenceConflict => "DUPLICATE_REFERENCE_CONFLICT",
            Self::RecipientRejected => "RECIPIENT_REJECTED",
            Self::Stale => "STALE",
            Self::QueueLeased => "QUEUE_LEASED",
            Self::LeaseLost => "LEASE_LOST",
            Self::NotPullQueue => "NOT_PULL_QUEUE",
            Self::SignatureRequired => "SIGNATURE_REQUIRED",
            Self::SignatureInvalid => "SIGNATURE_INVALID",
            Self::DecryptionFailed => "DECRYPTION_FAILED",
            Self::ReplayQuotaExceeded => "REPLAY_QUOTA_EXCEEDED",
            Self::NulCharacter => "NUL_CHARACTER",
        }
    }

    /// Whether the code reports an authorisation failure (a request rejected only for
    /// such reasons is answered 403 rather than 400).
    pub fn is_authorisation(self) -> bool {
        matches!(
            self,
            Self::SenderMismatch
                | Self::DcpMismatch
                | Self::RoleNotHeld
                | Self::RoleNotPermitted
                | Self::SignatureRequired
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with a request or an item: `path` is a JSON pointer into the item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// JSON pointer to the offending part of the item (`""` for the whole item).
    pub path: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// A new error at `path`.
    pub fn new(code: ErrorCode, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            path: path.into(),
            message: message.into(),
        }
    }
}
