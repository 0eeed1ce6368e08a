//! Applies configured header edits. Order: remove, then set, then add, so a rule can replace
//! a header and add a second value in one go.

use pingora::http::{RequestHeader, ResponseHeader};

use crate::config::HeaderEdits;

pub(super) fn apply_request(edits: &HeaderEdits, req: &mut RequestHeader) {
    for name in &edits.remove {
        req.remove_header(name.as_str());
    }
    // Names and values were validated when the config was loaded, so these cannot fail;
    // ignoring the Result keeps a bad edit from failing the request.
    for (name, value) in &edits.set {
        let _ = req.insert_header(name.clone(), value.as_str());
    }
    for (name, value) in &edits.add {
        let _ = req.append_header(name.clone(), value.as_str());
    }
}

pub(super) fn apply_response(edits: &HeaderEdits, resp: &mut ResponseHeader) {
    for name in &edits.remove {
        resp.remove_header(name.as_str());
    }
    for (name, value) in &edits.set {
        let _ = resp.insert_header(name.clone(), value.as_str());
    }
    for (name, value) in &edits.add {
        let _ = resp.append_header(name.clone(), value.as_str());
    }
}
