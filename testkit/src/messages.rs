//! The demo participants and MPANs (`broker-core/demo/demo.toml`), and message items to
//! send: a well-formed skeleton ([`item`], [`msg`]) and the fixtures the suites share.

use serde_json::{Value, json};

// Demo participants.
pub const SUP1: &str = "1000000001"; // splits channels over `registration` and `default`
pub const SUP2: &str = "1000000002"; // nominated DCP 1000000090
pub const SUP3: &str = "1000000003";
pub const REGS_N: &str = "1000000011";
pub const REGS_S: &str = "1000000012";
pub const LDSO_P: &str = "1000000021";
pub const MS_KEY: &str = "1000000031"; // MSS and MSA
pub const SDS_O: &str = "1000000041"; // nominated DCP 1000000090
pub const DS_Q: &str = "1000000042"; // SDS, ADS, UMDS
pub const MDS: &str = "1000000051"; // MDS, LSS, VAS
pub const LSS: &str = "1000000052"; // LSS, VAS
pub const DCP: &str = "1000000090";

/// Smart MPAN whose supplier changes from SUP1 to SUP2 on 2024-10-15.
pub const MPAN_COS: &str = "1600001000010";
/// Smart MPAN: SUP1, LDSO_P, REGS_N, MSS 1000000032, SDS DS_Q, all from 2024-04-01.
pub const MPAN_SMART: &str = "1600001000020";

/// A message item with a well-formed CommonBlock; `custom` is the CustomBlock.
pub fn item(interface: &str, sender: &str, role: &str, reference: &str, custom: Value) -> Value {
    json!({
        "payload": {
            "CommonBlock": {
                "S0": { "interfaceID": interface, "schemaVersion": "001", "eventCode": "[Test]" },
                "S1": {
                    "environmentTag": "DEV",
                    "senderUniqueReference": reference,
                    "senderTimestamp": "2026-11-27T09:00:00+00:00",
                    "senderDIPID": sender,
                    "senderRoleID": role,
                    "senderCorrelationID": null,
                    "DIPConnectionProviderID": null
                },
                "M0": {},
                "A0": { "primaryRecipients": [] }
            },
            "CustomBlock": custom
        }
    })
}

/// Sets a field of an item by JSON pointer (parents must exist).
pub fn set(item: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = item.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
    target
        .as_object_mut()
        .expect("object")
        .insert(key.replace("~1", "/"), value);
}

/// An item with event code, MPAN and primary recipients set.
#[allow(clippy::too_many_arguments)]
pub fn msg(
    interface: &str,
    sender: &str,
    role: &str,
    reference: &str,
    event: &str,
    mpan: Option<&str>,
    targets: &[&str],
    custom: Value,
) -> Value {
    let mut it = item(interface, sender, role, reference, custom);
    set(&mut it, "/payload/CommonBlock/S0/eventCode", json!(event));
    if let Some(m) = mpan {
        set(&mut it, "/payload/CommonBlock/M0/MPANCore", json!(m));
    }
    set(&mut it, "/payload/CommonBlock/A0/primaryRecipients", json!(targets));
    it
}

/// IF-031 Supplier Service Appointment Request: SUP1 to its Registration Service
/// (targeted; starts a workflow; event codes restricted).
pub fn if031(reference: &str) -> Value {
    if031_from(SUP1, reference, &[REGS_N])
}

/// IF-031 from a supplier to registration services.
pub fn if031_from(sender: &str, reference: &str, targets: &[&str]) -> Value {
    msg(
        "IF-031",
        sender,
        "SUP",
        reference,
        "SupplierServiceAppointmentRequest",
        Some(MPAN_SMART),
        targets,
        if031_block(),
    )
}

pub fn if031_block() -> Value {
    json!({
        "mpanCore": MPAN_SMART,
        "supplierId": "AURA",
        "serviceRole": "MSS",
        "serviceProviderId": "KYST",
        "serviceProviderDIPID": MS_KEY,
        "effectiveFromDate": "2025-02-01",
        "contractReference": "C-1"
    })
}

/// IF-032 Registration Service response: REGS_N back to SUP1 (targeted; not a workflow
/// start), answering the message of `correlation` if given. SUP1 takes it on its
/// `registration` endpoint.
pub fn if032(reference: &str, correlation: Option<&str>) -> Value {
    let mut it = if032_from(REGS_N, reference, &[SUP1]);
    set(
        &mut it,
        "/payload/CommonBlock/S1/senderCorrelationID",
        json!(correlation),
    );
    it
}

/// IF-032 from a registration service to suppliers.
pub fn if032_from(sender: &str, reference: &str, targets: &[&str]) -> Value {
    msg(
        "IF-032",
        sender,
        "REGS",
        reference,
        "SupplierServiceAppointmentResponse",
        Some(MPAN_SMART),
        targets,
        json!({
            "mpanCore": MPAN_SMART,
            "serviceRole": "MSS",
            "serviceProviderId": "KYST",
            "effectiveFromDate": "2025-02-01",
            "appointmentRequestOutcome": "A"
        }),
    )
}

/// The spec 5.5.12 worked example IF-909: the MSS targets a Registration Service; every
/// supplier always gets a copy without three fields.
pub fn if909(reference: &str) -> Value {
    msg(
        "IF-909",
        MS_KEY,
        "MSS",
        reference,
        "[NotificationOfDataServiceAppointment]",
        Some(MPAN_COS),
        &[REGS_N],
        if909_block(),
    )
}

pub fn if909_block() -> Value {
    json!({
        "mpanCore": MPAN_COS,
        "contractReferenceMeteringService": "MS-42",
        "supplierId": "AURA",
        "meteringServiceId": "KYST",
        "meteringServiceEffectiveFromDate": "2025-01-01T00:00:00Z",
        "appointmentCode": "A"
    })
}
