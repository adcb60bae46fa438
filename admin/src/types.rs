//! Types shared by the server and the browser: who is signed in, what they may do, the
//! error of every server function, and the list query of every table.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What a portal user may do. Operator staff hold `PlatformAdmin`, `Analyst` or
/// `Auditor` platform-wide; a participant's users hold the others, or `Analyst`/`Auditor`,
/// for their participant only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalRole {
    /// Operator: manages the whole platform.
    PlatformAdmin,
    /// Participant: manages its participant's users.
    UserAdmin,
    /// Participant: works with its participant's messages (audit, replay).
    MessageUser,
    /// Reports and dashboards.
    Analyst,
    /// Reads everything in scope, changes nothing.
    Auditor,
}

impl PortalRole {
    /// Every role, in display order.
    pub const ALL: [PortalRole; 5] = [
        Self::PlatformAdmin,
        Self::UserAdmin,
        Self::MessageUser,
        Self::Analyst,
        Self::Auditor,
    ];

    /// Stored and form code.
    pub fn code(self) -> &'static str {
        match self {
            Self::PlatformAdmin => "platform_admin",
            Self::UserAdmin => "user_admin",
            Self::MessageUser => "message_user",
            Self::Analyst => "analyst",
            Self::Auditor => "auditor",
        }
    }

    /// Parses a code.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Name shown.
    pub fn label(self) -> &'static str {
        match self {
            Self::PlatformAdmin => "Platform administrator",
            Self::UserAdmin => "User administrator",
            Self::MessageUser => "Message user",
            Self::Analyst => "Analyst",
            Self::Auditor => "Read-only auditor",
        }
    }

    /// Whether a user of the operator (`operator`) or of a participant may hold the role.
    pub fn allowed_for(self, operator: bool) -> bool {
        match self {
            Self::PlatformAdmin => operator,
            Self::UserAdmin | Self::MessageUser => !operator,
            Self::Analyst | Self::Auditor => true,
        }
    }
}

/// The signed-in user (or, on the admin API, an operator credential) and what they may do.
/// Every check is made on the server; the browser uses the same predicates only to decide
/// what to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// User id; `None` for an API credential.
    pub user_id: Option<String>,
    /// Username, or `api:<key name>`.
    pub name: String,
    /// Name shown.
    pub display_name: String,
    /// Participant of the user; `None` for the operator.
    pub dip_id: Option<String>,
    /// Roles held.
    pub roles: Vec<PortalRole>,
    /// The user must choose a new password before anything else.
    pub must_change_password: bool,
}

impl Actor {
    /// Whether the actor holds `role`.
    pub fn has(&self, role: PortalRole) -> bool {
        self.roles.contains(&role)
    }

    /// Operator staff (not a participant's user).
    pub fn is_operator(&self) -> bool {
        self.dip_id.is_none()
    }

    /// May change the platform: participants, channels, endpoints, certificates.
    pub fn is_platform_admin(&self) -> bool {
        self.is_operator() && self.has(PortalRole::PlatformAdmin)
    }

    /// May read the whole directory and the audit log.
    pub fn reads_platform(&self) -> bool {
        self.is_platform_admin() || (self.is_operator() && self.has(PortalRole::Auditor))
    }

    /// May read the message audit trail (its own participant's messages, or all for
    /// operator staff): a participant's user administrator alone may not.
    pub fn reads_messages(&self) -> bool {
        self.is_operator()
            || [PortalRole::MessageUser, PortalRole::Auditor, PortalRole::Analyst]
                .iter()
                .any(|r| self.has(*r))
    }

    /// May act on messages: redrive dead letters and replay (the platform administrator
    /// for any participant, a participant's message users for their own).
    pub fn handles_messages(&self) -> bool {
        self.is_platform_admin() || (!self.is_operator() && self.has(PortalRole::MessageUser))
    }

    /// May manage users of `dip_id` (`None`: the operator's staff).
    pub fn manages_users_of(&self, dip_id: Option<&str>) -> bool {
        self.is_platform_admin()
            || (dip_id.is_some() && self.dip_id.as_deref() == dip_id && self.has(PortalRole::UserAdmin))
    }

    /// May see the user list at all.
    pub fn sees_users(&self) -> bool {
        self.reads_platform() || self.has(PortalRole::UserAdmin)
    }

    /// May see a user of `dip_id` (`None`: the operator's staff).
    pub fn sees_user(&self, dip_id: Option<&str>) -> bool {
        self.sees_users() && (self.reads_platform() || (dip_id.is_some() && self.dip_id.as_deref() == dip_id))
    }

    /// May see data of participant `dip_id`.
    pub fn sees_participant(&self, dip_id: &str) -> bool {
        self.reads_platform() || self.dip_id.as_deref() == Some(dip_id)
    }
}

/// The error of every server function and admin API call. Internals never reach the
/// browser: store failures become `Unavailable` with a generic message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppError {
    /// Not signed in (or the session ended).
    SignInRequired,
    /// Signed in, but not allowed.
    Forbidden,
    /// The password was set by someone else (a reset, a new account): the user must
    /// choose their own before anything else.
    PasswordChangeRequired,
    /// Nothing of that name (or nothing the caller may see).
    NotFound(String),
    /// The input breaks a rule: a message, errors per field, and the values sent back
    /// (never passwords) so that a form without JavaScript loses nothing.
    Invalid {
        /// Summary.
        message: String,
        /// Field name → error.
        fields: BTreeMap<String, String>,
        /// Field name → value as sent.
        values: BTreeMap<String, String>,
    },
    /// The change conflicts with the current state (e.g. the name is taken).
    Conflict(String),
    /// Too many attempts; try again later.
    TooManyAttempts(String),
    /// The platform could not do it now.
    Unavailable,
    /// The request did not reach the function (transport or decoding).
    Request(String),
}

impl AppError {
    /// An `Invalid` error for one field.
    pub fn field(name: &str, error: impl Into<String>) -> Self {
        let error = error.into();
        Self::Invalid {
            message: error.clone(),
            fields: BTreeMap::from([(name.to_owned(), error)]),
            values: BTreeMap::new(),
        }
    }

    /// The HTTP status of the error.
    pub fn status(&self) -> u16 {
        match self {
            Self::SignInRequired => 401,
            Self::Forbidden | Self::PasswordChangeRequired => 403,
            Self::NotFound(_) => 404,
            Self::Invalid { .. } | Self::Request(_) => 400,
            Self::Conflict(_) => 409,
            Self::TooManyAttempts(_) => 429,
            Self::Unavailable => 503,
        }
    }

    /// Stable code for the admin API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::SignInRequired => "SIGN_IN_REQUIRED",
            Self::Forbidden => "FORBIDDEN",
            Self::PasswordChangeRequired => "PASSWORD_CHANGE_REQUIRED",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Invalid { .. } => "INVALID_REQUEST",
            Self::Conflict(_) => "CONFLICT",
            Self::TooManyAttempts(_) => "TOO_MANY_ATTEMPTS",
            Self::Unavailable => "UNAVAILABLE",
            Self::Request(_) => "BAD_REQUEST",
        }
    }

    /// The error of field `name`, if any.
    pub fn field_error(&self, name: &str) -> Option<String> {
        match self {
            Self::Invalid { fields, .. } => fields.get(name).cloned(),
            _ => None,
        }
    }

    /// The value sent for field `name`, if the error carries it.
    pub fn value(&self, name: &str) -> Option<String> {
        match self {
            Self::Invalid { values, .. } => values.get(name).cloned(),
            _ => None,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SignInRequired => write!(f, "Please sign in."),
            Self::Forbidden => write!(f, "You do not have access to this."),
            Self::PasswordChangeRequired => write!(f, "Choose a new password first, on your account page."),
            Self::NotFound(what) => write!(f, "Not found: {what}."),
            Self::Invalid { message, .. } => write!(f, "{message}"),
            Self::Conflict(m) | Self::TooManyAttempts(m) => write!(f, "{m}"),
            Self::Unavailable => write!(f, "The platform could not do this just now; please try again."),
            Self::Request(m) => write!(f, "The request failed: {m}"),
        }
    }
}

impl std::error::Error for AppError {}

impl leptos::server_fn::error::FromServerFnError for AppError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        Self::Request(value.to_string())
    }
}

/// Sort, filter and page of a table, kept in the URL (`?q=&sort=&dir=&page=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Free-text filter.
    #[serde(default)]
    pub q: String,
    /// Column sorted on.
    #[serde(default)]
    pub sort: String,
    /// `desc` for descending.
    #[serde(default)]
    pub desc: bool,
    /// 1-based page.
    #[serde(default)]
    pub page: usize,
    /// Extra filters (column → value) of a table.
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
}

/// Rows per page.
pub const PAGE_SIZE: usize = 20;

/// One page of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub rows: Vec<T>,
    /// Rows matching the filter.
    pub total: usize,
    /// This page, 1-based.
    pub page: usize,
}

impl<T> Page<T> {
    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.total.div_ceil(PAGE_SIZE).max(1)
    }
}

/// Percent-encodes a URL query key or value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
