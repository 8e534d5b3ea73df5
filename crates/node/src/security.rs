//! What a node checks before it exposes a plane: the TLS each endpoint speaks, and protected
//! mode.
//!
//! Protected mode (after Redis's): the management plane relays commands to the fleet, so
//! binding it to an address other hosts can reach is refused unless it authenticates its
//! terminals: a `tls://` endpoint with a client CA. `AdminConfig::insecure`
//! (`--admin-insecure`) lifts the rule for networks the operator trusts.

use crate::admin::AdminConfig;
use crate::error::{resolve, StartError};
use avp_endpoint::{Endpoint, Scheme};
use avp_tls::ServerTls;
use std::sync::Arc;

/// The TLS configuration of `endpoint`'s connections: `tls` for a `tls://` endpoint, which
/// needs one, and none for any other.
pub(crate) fn endpoint_tls(
    endpoint: &Endpoint,
    tls: Option<&ServerTls>,
) -> Result<Option<Arc<rustls::ServerConfig>>, StartError> {
    match (endpoint.scheme, tls) {
        (Scheme::Tls, Some(tls)) => Ok(Some(tls.config().clone())),
        (Scheme::Tls, None) => Err(StartError::TlsNotConfigured(endpoint.clone())),
        _ => Ok(None),
    }
}

/// Refuses a management endpoint that other hosts can reach (its address is not loopback)
/// and that does not authenticate its clients, unless `admin.insecure`.
pub(crate) fn check_protected(admin: &AdminConfig) -> Result<(), StartError> {
    if admin.insecure {
        return Ok(());
    }
    let authenticated = admin
        .tls
        .as_ref()
        .is_some_and(ServerTls::authenticates_clients);
    for endpoint in &admin.listen {
        if endpoint.scheme == Scheme::Tls && authenticated {
            continue;
        }
        if !resolve(endpoint)?.ip().is_loopback() {
            return Err(StartError::Unprotected(endpoint.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(urls: &[&str], insecure: bool) -> AdminConfig {
        AdminConfig {
            listen: urls.iter().map(|u| u.parse().unwrap()).collect(),
            insecure,
            ..AdminConfig::default()
        }
    }

    #[test]
    fn only_loopback_is_open_without_client_authentication() {
        assert!(check_protected(&admin(&["tcp://127.0.0.1:0", "tcp://[::1]:0"], false)).is_ok());
        let err =
            check_protected(&admin(&["tcp://127.0.0.1:0", "tcp://0.0.0.0:0"], false)).unwrap_err();
        assert!(matches!(&err, StartError::Unprotected(e) if e.authority == "0.0.0.0:0"));
        let text = err.to_string();
        assert!(
            text.contains("--tls-client-ca") && text.contains("--admin-insecure"),
            "{text}"
        );
        // A tls:// endpoint without client authentication is no better.
        assert!(check_protected(&admin(&["tls://0.0.0.0:0"], false)).is_err());
        assert!(check_protected(&admin(&["tcp://0.0.0.0:0"], true)).is_ok());
    }

    #[test]
    fn a_tls_endpoint_needs_a_certificate() {
        let tls: Endpoint = "tls://127.0.0.1:0".parse().unwrap();
        assert!(matches!(
            endpoint_tls(&tls, None),
            Err(StartError::TlsNotConfigured(_))
        ));
        let tcp: Endpoint = "tcp://127.0.0.1:0".parse().unwrap();
        assert!(endpoint_tls(&tcp, None).unwrap().is_none());
    }
}
