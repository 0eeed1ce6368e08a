//! Applies configured header edits. Order: remove, then set, then add, so a rule can replace
//! a header and add a second value in one go. Values with `$variables` are filled in per
//! request (`template.rs`); the others are used as written.

use pingora::http::{RequestHeader, ResponseHeader};

use super::template::{header_value, Vars};
use crate::config::HeaderEdits;

/// Edits the upstream request `req`; variables read the client's request, `client`.
pub(super) fn apply_request(
    edits: &HeaderEdits,
    req: &mut RequestHeader,
    client: &RequestHeader,
    vars: &Vars<'_>,
) {
    for name in &edits.remove {
        req.remove_header(name.as_str());
    }
    // Names and values were validated when the config was loaded, so these cannot fail
    // unless a variable brought in bytes a header cannot carry; ignoring the Result keeps a
    // bad edit from failing the request.
    for (name, value) in &edits.set {
        let _ = req.insert_header(name.clone(), header_value(value, client, vars).as_ref());
    }
    for (name, value) in &edits.add {
        let _ = req.append_header(name.clone(), header_value(value, client, vars).as_ref());
    }
}

/// Edits a response; `req` is the request it answers.
pub(super) fn apply_response(
    edits: &HeaderEdits,
    resp: &mut ResponseHeader,
    req: &RequestHeader,
    vars: &Vars<'_>,
) {
    for name in &edits.remove {
        resp.remove_header(name.as_str());
    }
    for (name, value) in &edits.set {
        let _ = resp.insert_header(name.clone(), header_value(value, req, vars).as_ref());
    }
    for (name, value) in &edits.add {
        let _ = resp.append_header(name.clone(), header_value(value, req, vars).as_ref());
    }
}
