//! The audit log of administrative actions, for the platform's readers.

use broker_core::store::AuditFilter;

use super::{Admin, Result, rfc3339};
use crate::rows::AuditRow;
use crate::types::{AppError, ListQuery, PAGE_SIZE, Page, PortalRole};

impl Admin<'_> {
    /// A page of the admin audit log: everything for the platform's readers, the entries
    /// of their own participant's users for a participant's user admin or auditor.
    pub async fn audit_log(&self, q: &ListQuery) -> Result<Page<AuditRow>> {
        let actor_dip_id = if self.actor.reads_platform() {
            None
        } else if self.actor.has(PortalRole::UserAdmin) || self.actor.has(PortalRole::Auditor) {
            self.actor.dip_id.clone()
        } else {
            return Err(AppError::Forbidden);
        };
        let page = q.page.max(1);
        let filter = AuditFilter {
            actor: q.filters.get("actor").filter(|s| !s.is_empty()).cloned(),
            action: q.filters.get("action").filter(|s| !s.is_empty()).cloned(),
            target: (!q.q.trim().is_empty()).then(|| q.q.trim().to_owned()),
            actor_dip_id,
            limit: PAGE_SIZE as i64,
            offset: ((page - 1) * PAGE_SIZE) as i64,
        };
        let (entries, total) = self.broker.accounts().audit_log(&filter).await?;
        Ok(Page {
            rows: entries
                .into_iter()
                .map(|e| AuditRow {
                    id: e.id,
                    at: rfc3339(e.at),
                    actor: e.actor,
                    action: e.action,
                    target: e.target,
                    detail: e.detail,
                })
                .collect(),
            total: total as usize,
            page,
        })
    }
}
