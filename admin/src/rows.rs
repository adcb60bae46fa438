//! What the portal's tables and forms show: plain data, the same on server and browser.

use serde::{Deserialize, Serialize};

use crate::types::{ListQuery, PAGE_SIZE, Page};

/// A user as listed (no password hash, ever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    /// Id.
    pub id: String,
    /// Sign-in name.
    pub username: String,
    /// Name.
    pub display_name: String,
    /// Email.
    pub email: String,
    /// Participant, or `None` for the operator.
    pub dip_id: Option<String>,
    /// Role codes.
    pub roles: Vec<String>,
    /// Disabled.
    pub disabled: bool,
    /// Last sign-in, RFC 3339.
    pub last_sign_in: Option<String>,
}

/// A participant or DCP as listed and edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRow {
    /// DIP ID.
    pub dip_id: String,
    /// MPID.
    pub mpid: String,
    /// Name.
    pub name: String,
    /// `participant` or `dcp`.
    pub kind: String,
    /// Role codes.
    pub roles: Vec<String>,
    /// Nominated DCPs.
    pub nominated_dcps: Vec<String>,
    /// Active.
    pub active: bool,
    /// Signatures required on everything it sends.
    pub signatures_required: bool,
}

/// A channel as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRow {
    /// Interface id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Business process.
    pub business_process: String,
    /// Sender roles.
    pub sender_roles: Vec<String>,
    /// Recipient roles.
    pub recipient_roles: Vec<String>,
    /// Routing modes.
    pub routing: Vec<String>,
    /// Schema versions.
    pub versions: Vec<String>,
    /// Retention in days.
    pub retention_days: u32,
}

/// An endpoint (recipient queue) as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRow {
    /// Queue id.
    pub id: String,
    /// Owner.
    pub dip_id: String,
    /// Name.
    pub name: String,
    /// Webhook URL, empty for pull.
    pub url: String,
    /// Assigned channels (empty: every other channel).
    pub channels: Vec<String>,
}

/// A certificate as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRow {
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Holder.
    pub dip_id: String,
    /// Subject.
    pub subject: String,
    /// Valid until, RFC 3339.
    pub not_after: String,
    /// `active`, `expiring`, `expired`, `revoked`.
    pub status: String,
    /// Environment.
    pub environment: String,
}

/// An admin audit entry as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Sequence.
    pub id: i64,
    /// When, RFC 3339.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// The change, JSON.
    pub detail: String,
}

/// Role codes and names of the market, for forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketRole {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// Everything the channel editor shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDetail {
    /// The row.
    pub row: ChannelRow,
    /// Description.
    pub description: String,
    /// MPAN roles.
    pub mpan_roles: Vec<String>,
    /// Always rules, as `role:SUP` / `participant:1000000001`.
    pub always: Vec<String>,
    /// Obfuscation, one line per role: `ROLE /pointer /pointer`.
    pub obfuscation: String,
    /// Security category.
    pub security_category: u8,
    /// Market roles to choose from.
    pub market_roles: Vec<MarketRole>,
}

/// Filters, sorts and pages rows in memory (directory tables are small); `text` gives a
/// row's searchable text and `key` its value in a sort column.
pub fn paginate<T>(
    rows: Vec<T>,
    q: &ListQuery,
    text: impl Fn(&T) -> String,
    key: impl Fn(&T, &str) -> String,
) -> Page<T> {
    let needle = q.q.trim().to_lowercase();
    let mut rows: Vec<T> = rows
        .into_iter()
        .filter(|r| needle.is_empty() || text(r).to_lowercase().contains(&needle))
        .collect();
    if !q.sort.is_empty() {
        rows.sort_by_cached_key(|r| key(r, &q.sort));
        if q.desc {
            rows.reverse();
        }
    }
    let total = rows.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = q.page.clamp(1, pages);
    let rows = rows.into_iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE).collect();
    Page { rows, total, page }
}
