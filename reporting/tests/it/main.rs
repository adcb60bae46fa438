//! The reporting crate's integration tests, in one binary: analytics (events, the pump,
//! every sink), the message audit trail (search and traces, who sees what), the sender
//! report, the home page's health summary and evidence bundles.

mod analytics;
mod evidence;
mod home;
mod sender;
mod trail;

use dip_admin::types::{Actor, ListQuery, PortalRole};

/// A portal user of `dip_id` (`None`: operator staff) holding `role`.
pub(crate) fn actor(dip_id: Option<&str>, role: PortalRole) -> Actor {
    Actor {
        user_id: Some(format!("user-{}", dip_id.unwrap_or("operator"))),
        name: format!("{}-{}", dip_id.unwrap_or("op"), role.code()),
        display_name: "Test".into(),
        dip_id: dip_id.map(str::to_owned),
        roles: vec![role],
        must_change_password: false,
    }
}

/// The first page of a table with these filters.
pub(crate) fn list(filters: &[(&str, &str)]) -> ListQuery {
    ListQuery {
        page: 1,
        filters: filters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    }
}
