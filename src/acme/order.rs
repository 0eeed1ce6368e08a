//! One ACME order for one host (RFC 8555 §7.4): the account (stored, or created once), the
//! order, its authorization answered by HTTP-01 or TLS-ALPN-01, a CSR for a new key, and the
//! certificate chain. Challenge answers are published in [`Certs`] while the server checks.

use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use openssl::pkey::{PKey, Private};

use super::certs::Certs;
use super::client::AcmeHttp;
use super::crypto;
use super::storage::Storage;
use crate::config;

/// How a host proves control of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// A token answered under `/.well-known/acme-challenge/` on the plain listeners.
    Http01,
    /// A certificate answered on the TLS listener for ALPN `acme-tls/1`.
    TlsAlpn01,
}

impl Method {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Method::Http01 => "http-01",
            Method::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// Polling an order (authorizations checked, certificate issued) gives up after this.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// What an order brings back: the PEM chain and its key.
pub(crate) struct Obtained {
    pub(crate) chain: String,
    pub(crate) key: PKey<Private>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: serde_json::Value,
}

/// The stored account for `settings.directory`, or a new one (then stored).
pub(crate) async fn account(
    settings: &config::Acme,
    http: &AcmeHttp,
    storage: &Storage,
) -> Result<Account, String> {
    let builder = || Account::builder_with_http(Box::new(http.clone()));
    if let Some(stored) = storage
        .read_account()
        .and_then(|json| serde_json::from_str::<StoredAccount>(&json).ok())
        .filter(|s| s.directory == settings.directory)
    {
        if let Ok(credentials) = serde_json::from_value::<AccountCredentials>(stored.credentials) {
            return builder()
                .from_credentials(credentials)
                .await
                .map_err(|e| format!("cannot use the stored ACME account: {e}"));
        }
    }
    let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .map_err(|e| {
            format!(
                "cannot create an ACME account at {}: {e}",
                settings.directory
            )
        })?;
    let stored = StoredAccount {
        directory: settings.directory.clone(),
        credentials: serde_json::to_value(&credentials)
            .map_err(|e| format!("cannot store the ACME account: {e}"))?,
    };
    let json = serde_json::to_string(&stored)
        .map_err(|e| format!("cannot store the ACME account: {e}"))?;
    storage.write_account(&json)?;
    Ok(account)
}

/// Orders a certificate for `host`, proving control by `method`.
pub(crate) async fn order(
    account: &Account,
    certs: &Certs,
    host: &str,
    method: Method,
) -> Result<Obtained, String> {
    let ids = [Identifier::Dns(host.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("new order refused: {e}"))?;
    let mut tokens = Vec::new();
    let published = publish(&mut order, certs, host, method, &mut tokens).await;
    let ready = match published {
        Ok(()) => order.poll_ready(&POLL).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    // The answers are only needed while the server checks.
    for token in &tokens {
        certs.set_http01(token, None);
    }
    certs.set_alpn01(host, None);
    match ready? {
        OrderStatus::Ready => {}
        status => return Err(format!("order {status:?}{}", why_invalid(&mut order).await)),
    }
    let key = crypto::new_key()?;
    let csr = crypto::csr(host, &key)?;
    order
        .finalize_csr(&csr)
        .await
        .map_err(|e| format!("finalize refused: {e}"))?;
    let chain = order
        .poll_certificate(&POLL)
        .await
        .map_err(|e| format!("no certificate: {e}"))?;
    Ok(Obtained { chain, key })
}

/// Answers each pending authorization's challenge of type `method` and tells the server.
async fn publish(
    order: &mut instant_acme::Order,
    certs: &Certs,
    host: &str,
    method: Method,
    tokens: &mut Vec<String>,
) -> Result<(), String> {
    let kind = match method {
        Method::Http01 => ChallengeType::Http01,
        Method::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let mut authz = result.map_err(|e| format!("authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            status => return Err(format!("authorization {status:?}")),
        }
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| format!("the server offers no {} challenge", method.name()))?;
        let key_authorization = challenge.key_authorization();
        match method {
            Method::Http01 => {
                tokens.push(challenge.token.clone());
                certs.set_http01(
                    &challenge.token,
                    Some(key_authorization.as_str().to_string()),
                );
            }
            Method::TlsAlpn01 => {
                let (cert, key) =
                    crypto::alpn_challenge(host, key_authorization.digest().as_ref())?;
                let context = crate::tls::acme_challenge_context(&cert, &key)?;
                certs.set_alpn01(host, Some(context));
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge refused: {e}"))?;
    }
    Ok(())
}

/// The server's reasons, from the failed challenges of an invalid order.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        if let Ok(state) = authz.refresh().await {
            for c in &state.challenges {
                if let Some(e) = &c.error {
                    reasons.push(e.to_string());
                }
            }
        }
    }
    if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join("; "))
    }
}
