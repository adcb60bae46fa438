//! Routing (spec 5.5.3, 5.5.14): targeted, MPAN lookup by effective date, and always. The
//! decision is stored with the message so that every recipient can be explained.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::catalogue::CompiledChannel;
use crate::envelope::{Header, PAYLOAD};
use crate::error::{ApiError, ErrorCode};
use crate::model::{AlwaysRule, Appointment, RoutingMode};
use crate::registry::Registry;

/// The appointment row that matched an MPAN lookup, with the date it ends (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentMatch {
    /// MPAN core.
    pub mpan: String,
    /// Role.
    pub role: String,
    /// First day it applies.
    pub effective_from: String,
    /// First day of the next appointment of the role, if any.
    pub effective_to: Option<String>,
}

/// Why one recipient was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleMatch {
    /// `targeted`, `mpan`, `always-role` or `always-participant`.
    pub rule: &'static str,
    /// Role in which the rule reaches the recipient.
    pub role: String,
    /// The appointment, for `mpan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment: Option<AppointmentMatch>,
}

/// One recipient of the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// DIP ID.
    #[serde(rename = "dipID")]
    pub dip_id: String,
    /// Role that governs obfuscation (the first matching rule's).
    pub role: String,
    /// Logical queue.
    pub queue: String,
    /// Every rule that selected the recipient.
    pub matched_by: Vec<RuleMatch>,
    /// Pointers removed for this recipient: those hidden from every role it was reached in.
    pub hidden: Vec<String>,
}

/// A rule that selected nobody, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unresolved {
    /// Rule.
    pub rule: &'static str,
    /// Role concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Participant concerned.
    #[serde(rename = "dipID", skip_serializing_if = "Option::is_none")]
    pub dip_id: Option<String>,
    /// Explanation.
    pub reason: String,
}

/// The routing decision of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Channel.
    #[serde(rename = "interfaceID")]
    pub interface_id: String,
    /// Routing modes the channel applies.
    pub modes: Vec<RoutingMode>,
    /// Date used for MPAN lookup.
    pub applicable_date: String,
    /// Where that date came from: a payload pointer, or `receipt`.
    pub date_source: String,
    /// Recipients, in DIP ID order.
    pub recipients: Vec<Recipient>,
    /// Rules that found nobody.
    pub unresolved: Vec<Unresolved>,
}

impl Decision {
    /// DIP IDs reached by a rule kind, for the outbound `A0` block.
    pub fn reached_by(&self, rules: &[&str]) -> Vec<String> {
        self.recipients
            .iter()
            .filter(|r| r.matched_by.iter().any(|m| rules.contains(&m.rule)))
            .map(|r| r.dip_id.clone())
            .collect()
    }
}

/// The appointment of `role` on `date` among one MPAN's rows (sorted by role and date).
pub fn appointment_on<'a>(
    rows: &'a [Appointment],
    role: &str,
    date: &str,
) -> Option<(&'a Appointment, Option<&'a str>)> {
    let of_role: Vec<&Appointment> = rows.iter().filter(|a| a.role == role).collect();
    let i = of_role.iter().rposition(|a| a.effective_from.as_str() <= date)?;
    Some((of_role[i], of_role.get(i + 1).map(|n| n.effective_from.as_str())))
}

/// One MPAN's rows (sorted by role and date), each with the first day of the next
/// appointment in its role, if any: the history as periods.
pub fn appointment_periods(rows: &[Appointment]) -> impl Iterator<Item = (&Appointment, Option<&str>)> {
    rows.iter().enumerate().map(|(i, a)| {
        let next = rows[i + 1..].iter().find(|n| n.role == a.role);
        (a, next.map(|n| n.effective_from.as_str()))
    })
}

/// Routes one message. `appointments` holds the rows of the message's MPAN.
pub fn route(
    channel: &CompiledChannel,
    header: &Header,
    registry: &Registry,
    appointments: &[Appointment],
    (date, date_source): (NaiveDate, String),
) -> Result<Decision, Vec<ApiError>> {
    let def = &channel.channel;
    let mut found: BTreeMap<String, Vec<RuleMatch>> = BTreeMap::new();
    let mut unresolved = Vec::new();
    let mut errors = Vec::new();
    let date_str = date.format("%Y-%m-%d").to_string();
    let recipient_roles_of = |dip: &str| -> Vec<String> {
        registry
            .participant(dip)
            .map(|p| {
                p.roles
                    .iter()
                    .filter(|r| def.recipient_roles.contains(r))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };

    if def.routes_by(RoutingMode::Targeted) {
        for (i, dip) in header.primary_recipients.iter().enumerate() {
            let path = format!("{PAYLOAD}/CommonBlock/A0/primaryRecipients/{i}");
            match registry.participant(dip).filter(|p| p.active) {
                None => errors.push(ApiError::new(
                    ErrorCode::UnknownRecipient,
                    path,
                    format!("{dip} is not an active participant"),
                )),
                Some(_) => match recipient_roles_of(dip).into_iter().next() {
                    None => errors.push(ApiError::new(
                        ErrorCode::RecipientNotPermitted,
                        path,
                        format!(
                            "{dip} holds no recipient role of {} ({})",
                            def.id,
                            def.recipient_roles.join(", ")
                        ),
                    )),
                    Some(role) => found.entry(dip.clone()).or_default().push(RuleMatch {
                        rule: "targeted",
                        role,
                        appointment: None,
                    }),
                },
            }
        }
    }

    if def.routes_by(RoutingMode::Mpan) {
        match &header.mpan {
            None => unresolved.push(Unresolved {
                rule: "mpan",
                role: None,
                dip_id: None,
                reason: "the message carries no MPANCore".into(),
            }),
            Some(mpan) => {
                for role in &def.mpan_roles {
                    let unresolved_role = |reason: String| Unresolved {
                        rule: "mpan",
                        role: Some(role.clone()),
                        dip_id: None,
                        reason,
                    };
                    match appointment_on(appointments, role, &date_str) {
                        None => {
                            unresolved.push(unresolved_role(format!("no {role} appointed to {mpan} on {date_str}")))
                        }
                        Some((a, _)) if a.dip_id.is_none() => unresolved.push(unresolved_role(format!(
                            "{role} de-appointed from {mpan} since {}",
                            a.effective_from
                        ))),
                        Some((a, next)) => {
                            let dip = a.dip_id.clone().unwrap_or_default();
                            let holds = registry
                                .participant(&dip)
                                .is_some_and(|p| p.active && p.roles.contains(role));
                            if holds {
                                found.entry(dip).or_default().push(RuleMatch {
                                    rule: "mpan",
                                    role: role.clone(),
                                    appointment: Some(AppointmentMatch {
                                        mpan: mpan.clone(),
                                        role: role.clone(),
                                        effective_from: a.effective_from.clone(),
                                        effective_to: next.map(str::to_owned),
                                    }),
                                });
                            } else {
                                unresolved.push(Unresolved {
                                    rule: "mpan",
                                    role: Some(role.clone()),
                                    dip_id: Some(dip.clone()),
                                    reason: format!("appointed {dip} is not an active holder of {role}"),
                                });
                            }
                        }
                    }
                }
            }
        }
    }

    if def.routes_by(RoutingMode::Always) {
        for rule in &def.always {
            match rule {
                AlwaysRule::Role { role } => {
                    for dip in registry.holders(role) {
                        found.entry(dip.clone()).or_default().push(RuleMatch {
                            rule: "always-role",
                            role: role.clone(),
                            appointment: None,
                        });
                    }
                    if registry.holders(role).is_empty() {
                        unresolved.push(Unresolved {
                            rule: "always-role",
                            role: Some(role.clone()),
                            dip_id: None,
                            reason: format!("no active participant holds {role}"),
                        });
                    }
                }
                AlwaysRule::Participant { participant } => match recipient_roles_of(participant).into_iter().next() {
                    Some(role) if registry.participant(participant).is_some_and(|p| p.active) => {
                        found.entry(participant.clone()).or_default().push(RuleMatch {
                            rule: "always-participant",
                            role,
                            appointment: None,
                        });
                    }
                    _ => unresolved.push(Unresolved {
                        rule: "always-participant",
                        role: None,
                        dip_id: Some(participant.clone()),
                        reason: format!(
                            "{participant} is not an active holder of a recipient role of {}",
                            def.id
                        ),
                    }),
                },
            }
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    if found.remove(&header.sender_dip_id).is_some() {
        unresolved.push(Unresolved {
            rule: "sender",
            role: None,
            dip_id: Some(header.sender_dip_id.clone()),
            reason: "the sender is not sent its own message".into(),
        });
    }
    if found.is_empty() {
        let why: Vec<&str> = unresolved.iter().map(|u| u.reason.as_str()).collect();
        let detail = if why.is_empty() {
            "no routing rule selected a recipient".to_owned()
        } else {
            why.join("; ")
        };
        return Err(vec![ApiError::new(
            ErrorCode::NoRecipients,
            format!("{PAYLOAD}/CommonBlock"),
            detail,
        )]);
    }

    let recipients = found
        .into_iter()
        .map(|(dip_id, matched_by)| {
            let mut hidden: Option<Vec<String>> = None;
            for m in &matched_by {
                let of_role = def.obfuscation.get(&m.role).cloned().unwrap_or_default();
                hidden = Some(match hidden {
                    None => of_role,
                    Some(h) => h.into_iter().filter(|p| of_role.contains(p)).collect(),
                });
            }
            Recipient {
                queue: registry.queue_for(&dip_id, &def.id),
                role: matched_by[0].role.clone(),
                hidden: hidden.unwrap_or_default(),
                matched_by,
                dip_id,
            }
        })
        .collect();
    Ok(Decision {
        interface_id: def.id.clone(),
        modes: def.routing.clone(),
        applicable_date: date_str,
        date_source,
        recipients,
        unresolved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(role: &str, from: &str, dip: Option<&str>) -> Appointment {
        Appointment {
            mpan: "m".into(),
            role: role.into(),
            effective_from: from.into(),
            dip_id: dip.map(Into::into),
            source_transaction_id: None,
        }
    }

    #[test]
    fn appointment_by_effective_date() {
        let rows = vec![
            row("SUP", "2024-01-01", Some("a")),
            row("SUP", "2024-06-01", Some("b")),
            row("SUP", "2024-09-01", None),
        ];
        assert!(appointment_on(&rows, "SUP", "2023-12-31").is_none());
        let (a, next) = appointment_on(&rows, "SUP", "2024-05-31").unwrap();
        assert_eq!((a.dip_id.as_deref(), next), (Some("a"), Some("2024-06-01")));
        let (a, next) = appointment_on(&rows, "SUP", "2024-06-01").unwrap();
        assert_eq!((a.dip_id.as_deref(), next), (Some("b"), Some("2024-09-01")));
        assert_eq!(appointment_on(&rows, "SUP", "2025-01-01").unwrap().0.dip_id, None);
        assert!(appointment_on(&rows, "LDSO", "2025-01-01").is_none());
    }
}
