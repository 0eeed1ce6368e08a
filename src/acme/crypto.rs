//! The certificates and keys ACME needs, made with the openssl crate strait already builds:
//! a certificate's key and CSR, the self-signed placeholder served until a host has its
//! certificate, and the TLS-ALPN-01 challenge certificate (RFC 8737).

use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Extension, X509NameBuilder, X509Req, X509};

/// The acmeIdentifier extension of a TLS-ALPN-01 certificate (RFC 8737 §3).
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

fn err(what: &str) -> impl Fn(openssl::error::ErrorStack) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A new P-256 key (what Let's Encrypt and browsers handle best).
pub(crate) fn new_key() -> Result<PKey<Private>, String> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(err("EC group"))?;
    let ec = EcKey::generate(&group).map_err(err("EC key"))?;
    PKey::from_ec_key(ec).map_err(err("EC key"))
}

fn san(hosts: &[String], ctx: &openssl::x509::X509v3Context) -> Result<X509Extension, String> {
    let mut san = SubjectAlternativeName::new();
    for h in hosts {
        san.dns(h);
    }
    san.build(ctx).map_err(err("subjectAltName"))
}

/// A CSR (DER) for `host`, signed by `key`.
pub(crate) fn csr(host: &str, key: &PKey<Private>) -> Result<Vec<u8>, String> {
    let mut req = X509Req::builder().map_err(err("CSR"))?;
    let mut name = X509NameBuilder::new().map_err(err("CSR"))?;
    name.append_entry_by_nid(Nid::COMMONNAME, host)
        .map_err(err("CSR"))?;
    let name = name.build();
    req.set_subject_name(&name).map_err(err("CSR"))?;
    req.set_pubkey(key).map_err(err("CSR"))?;
    let mut exts = Stack::new().map_err(err("CSR"))?;
    exts.push(san(&[host.to_string()], &req.x509v3_context(None))?)
        .map_err(err("CSR"))?;
    req.add_extensions(&exts).map_err(err("CSR"))?;
    req.sign(key, MessageDigest::sha256()).map_err(err("CSR"))?;
    req.build().to_der().map_err(err("CSR"))
}

/// A self-signed certificate for `hosts`, valid `days`, with `extra` extensions.
fn self_signed(
    hosts: &[String],
    key: &PKey<Private>,
    days: u32,
    extra: Option<X509Extension>,
) -> Result<X509, String> {
    let mut b = X509::builder().map_err(err("certificate"))?;
    b.set_version(2).map_err(err("certificate"))?;
    let mut serial = BigNum::new().map_err(err("serial"))?;
    serial
        .rand(127, MsbOption::MAYBE_ZERO, false)
        .map_err(err("serial"))?;
    let serial = serial.to_asn1_integer().map_err(err("serial"))?;
    b.set_serial_number(&serial).map_err(err("serial"))?;
    let mut name = X509NameBuilder::new().map_err(err("certificate"))?;
    let cn = hosts.first().map_or("strait", String::as_str);
    name.append_entry_by_nid(Nid::COMMONNAME, cn)
        .map_err(err("certificate"))?;
    let name = name.build();
    b.set_subject_name(&name).map_err(err("certificate"))?;
    b.set_issuer_name(&name).map_err(err("certificate"))?;
    b.set_pubkey(key).map_err(err("certificate"))?;
    let from = Asn1Time::days_from_now(0).map_err(err("certificate"))?;
    let until = Asn1Time::days_from_now(days).map_err(err("certificate"))?;
    b.set_not_before(&from).map_err(err("certificate"))?;
    b.set_not_after(&until).map_err(err("certificate"))?;
    if !hosts.is_empty() {
        let ext = san(hosts, &b.x509v3_context(None, None))?;
        b.append_extension(ext).map_err(err("certificate"))?;
    }
    if let Some(ext) = extra {
        b.append_extension(ext).map_err(err("certificate"))?;
    }
    b.sign(key, MessageDigest::sha256())
        .map_err(err("certificate"))?;
    Ok(b.build())
}

/// What a host's handshakes get until its certificate is issued (and no static certificate
/// matches): clients will not trust it, but the listener answers.
pub(crate) fn placeholder(hosts: &[String]) -> Result<(X509, PKey<Private>), String> {
    let key = new_key()?;
    let cert = self_signed(hosts, &key, 7, None)?;
    Ok((cert, key))
}

/// The TLS-ALPN-01 certificate for `host`: self-signed, the host as its only name, and the
/// critical acmeIdentifier extension holding the SHA-256 of the key authorization.
pub(crate) fn alpn_challenge(host: &str, digest: &[u8]) -> Result<(X509, PKey<Private>), String> {
    let key = new_key()?;
    let oid = Asn1Object::from_str(ACME_IDENTIFIER_OID).map_err(err("acmeIdentifier"))?;
    // The extension's value is the DER of an OCTET STRING holding the digest.
    let mut der = vec![0x04, digest.len() as u8];
    der.extend_from_slice(digest);
    let value = Asn1OctetString::new_from_bytes(&der).map_err(err("acmeIdentifier"))?;
    let ext = X509Extension::new_from_der(&oid, true, &value).map_err(err("acmeIdentifier"))?;
    let cert = self_signed(&[host.to_string()], &key, 7, Some(ext))?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_certificate_carries_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let (cert, key) = alpn_challenge("a.example", &digest).expect("challenge cert");
        assert!(cert.verify(&key).expect("verify"));
        let der = cert.to_der().expect("der");
        // OID 1.3.6.1.5.5.7.1.31, critical, OCTET STRING { OCTET STRING (32 bytes) }.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der
            .windows(oid.len())
            .position(|w| w == oid)
            .expect("acmeIdentifier present");
        let rest = &der[at + oid.len()..];
        assert_eq!(&rest[..3], &[0x01, 0x01, 0xff], "critical");
        assert_eq!(&rest[3..7], &[0x04, 0x22, 0x04, 0x20]);
        assert_eq!(&rest[7..39], &digest);
    }

    #[test]
    fn a_csr_names_its_host() {
        let key = new_key().expect("key");
        let der = csr("www.example.com", &key).expect("csr");
        let req = X509Req::from_der(&der).expect("parse");
        assert!(req.verify(&key).expect("verify"));
        assert!(String::from_utf8_lossy(&der).contains("www.example.com"));
    }
}
