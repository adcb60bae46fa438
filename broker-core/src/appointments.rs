//! Bulk input of the MPAN appointment table (spec 5.5.14 initial load): rows as JSON or
//! CSV, validated against the registry, loaded all or nothing.

use serde::Deserialize;

use crate::error::{ApiError, ErrorCode};
use crate::input::echo;
use crate::model::Appointment;
use crate::mpan::is_valid_mpan_core;
use crate::registry::Registry;

/// One input row. An empty or absent `dipID` records a de-appointment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppointmentRow {
    /// MPAN core.
    pub mpan: String,
    /// Role code.
    pub role: String,
    /// Appointed DIP ID.
    #[serde(rename = "dipID", default)]
    pub dip_id: Option<String>,
    /// First day, `YYYY-MM-DD`.
    pub effective_from: String,
}

/// Rows from a JSON array of `{mpan, role, dipID, effectiveFrom}` (`input::parse_body`:
/// NUL refused).
pub fn parse_json(body: &[u8]) -> Result<Vec<AppointmentRow>, Vec<ApiError>> {
    crate::input::parse_body(body).map_err(|e| {
        vec![e.to_api_error(
            ErrorCode::InvalidJson,
            "expected an array of {mpan, role, dipID, effectiveFrom}",
        )]
    })
}

/// Rows from CSV with the header `mpan,role,dip_id,effective_from`.
pub fn parse_csv(text: &str) -> Result<Vec<AppointmentRow>, Vec<ApiError>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    if !lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .eq(["mpan", "role", "dip_id", "effective_from"])
    {
        return Err(vec![ApiError::new(
            ErrorCode::InvalidRequest,
            "",
            "the header must be mpan,role,dip_id,effective_from",
        )]);
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in lines.enumerate() {
        match line.split(',').map(str::trim).collect::<Vec<_>>()[..] {
            [mpan, role, dip, from] => rows.push(AppointmentRow {
                mpan: mpan.into(),
                role: role.into(),
                dip_id: Some(dip.into()),
                effective_from: from.into(),
            }),
            _ => errors.push(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("/{i}"),
                format!("data row {}: four fields expected", i + 1),
            )),
        }
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

/// Checks every row (valid MPAN, known role, known participant holding the role, a real
/// date) and returns them all, or every error with `/row/field` paths.
pub fn validate(rows: Vec<AppointmentRow>, registry: &Registry) -> Result<Vec<Appointment>, Vec<ApiError>> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.into_iter().enumerate() {
        let at = |f: &str| format!("/{i}/{f}");
        let before = errors.len();
        if !is_valid_mpan_core(&r.mpan) {
            errors.push(ApiError::new(
                ErrorCode::InvalidMpan,
                at("mpan"),
                "13 digits with a valid check digit",
            ));
        }
        if !registry.catalogue.roles.contains_key(&r.role) {
            errors.push(ApiError::new(
                ErrorCode::InvalidField,
                at("role"),
                format!("unknown role {}", echo(&r.role)),
            ));
        }
        let dip_id = r.dip_id.filter(|d| !d.is_empty());
        if let Some(d) = &dip_id {
            match registry.participant(d) {
                None => errors.push(ApiError::new(
                    ErrorCode::UnknownRecipient,
                    at("dipID"),
                    format!("{} is not a known participant", echo(d)),
                )),
                Some(p) if !p.roles.contains(&r.role) => {
                    errors.push(ApiError::new(
                        ErrorCode::InvalidField,
                        at("dipID"),
                        format!("{} does not hold role {}", echo(d), echo(&r.role)),
                    ));
                }
                Some(_) => {}
            }
        }
        if chrono::NaiveDate::parse_from_str(&r.effective_from, "%Y-%m-%d").is_err() {
            errors.push(ApiError::new(
                ErrorCode::InvalidField,
                at("effectiveFrom"),
                "a date YYYY-MM-DD",
            ));
        }
        if errors.len() == before {
            out.push(Appointment {
                mpan: r.mpan,
                role: r.role,
                effective_from: r.effective_from,
                dip_id,
                source_transaction_id: None,
            });
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}
