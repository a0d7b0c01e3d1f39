//! Where webhooks may send: the outbound address policy that keeps an admin's webhook
//! from reaching into the server's private network (request forgery).
//!
//! A URL must be `https`, or `http` to a loopback host (tests and local setups); an
//! address must be public or loopback. `[webhooks] allow_private = true` lifts both rules
//! (a deployment whose receivers live on a private network). Names are checked where it
//! matters, when they are resolved for a connection ([`GuardedResolver`]): every address
//! the name resolves to that the policy refuses is dropped, and a name left with none
//! fails the attempt, so a name that is rebound to a private address after the webhook
//! was accepted is refused too. The client follows no redirects and uses no proxy, so the
//! address checked is the address connected to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Whether private (non-public, non-loopback) addresses and plain `http` to non-loopback
/// hosts are allowed: `[webhooks] allow_private`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Public addresses over `https`, and loopback (over `http` too). The default.
    PublicOnly,
    /// Anything, over `http` or `https`.
    Private,
}

/// Longest webhook URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// The JSON Schema pattern of a URL this module may accept (what [`check_url`] checks
/// before parsing): `http://` or `https://` as written, then visible ASCII only.
pub const URL_PATTERN: &str = "^https?://[!-~]+$";

/// Why a URL or address is refused, for the client's problem `detail`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// Not a URL this server sends to at all.
    #[error("url: {0}")]
    Malformed(String),
    /// Plain `http` to a host that is not loopback.
    #[error("url: plain http is allowed only to a loopback host (use https, or set [webhooks] allow_private = true)")]
    PlainHttp,
    /// A private, link-local or otherwise non-public address.
    #[error("url: {0} is not a public address (set [webhooks] allow_private = true to send to private networks)")]
    Private(IpAddr),
}

/// Checks a webhook URL as given by a client and answers it parsed. The host may be a
/// name: its addresses are checked when it is resolved ([`GuardedResolver`]).
pub fn check_url(raw: &str, reach: Reach) -> Result<Url, UrlRefused> {
    if raw.len() > MAX_URL_BYTES {
        return Err(UrlRefused::Malformed(format!(
            "at most {MAX_URL_BYTES} bytes"
        )));
    }
    let https = raw.starts_with("https://");
    if !https && !raw.starts_with("http://") {
        return Err(UrlRefused::Malformed(
            "must start with https:// (or http:// for a loopback host)".into(),
        ));
    }
    if !raw.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return Err(UrlRefused::Malformed(
            "only visible ASCII characters (percent-encode the rest)".into(),
        ));
    }
    let url = Url::parse(raw).map_err(|e| UrlRefused::Malformed(e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Malformed(
            "no credentials in the URL: receivers authenticate us by the signature".into(),
        ));
    }
    if url.fragment().is_some() {
        return Err(UrlRefused::Malformed("no #fragment".into()));
    }
    let loopback = match url.host() {
        None => return Err(UrlRefused::Malformed("a host is needed".into())),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => {
            check_addr(IpAddr::V4(ip), reach)?;
            ip.is_loopback()
        }
        Some(url::Host::Ipv6(ip)) => {
            check_addr(IpAddr::V6(ip), reach)?;
            ip.is_loopback()
        }
    };
    if !https && !loopback && reach == Reach::PublicOnly {
        return Err(UrlRefused::PlainHttp);
    }
    Ok(url)
}

/// Checks one address a webhook would connect to: loopback or public, unless `reach`
/// allows private ones.
pub fn check_addr(ip: IpAddr, reach: Reach) -> Result<(), UrlRefused> {
    if reach == Reach::Private || is_loopback(ip) || is_public(ip) {
        Ok(())
    } else {
        Err(UrlRefused::Private(ip))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether `ip` is globally routable: none of the special-purpose ranges (RFC 6890 and
/// successors) that lead into a private network, the host itself or nowhere.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        // 0.0.0.0/8 "this network", 100.64.0.0/10 shared (carrier-grade NAT),
        // 192.0.0.0/24 protocol assignments, 198.18.0.0/15 benchmarking, 240.0.0.0/4
        // reserved.
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation,
        // 64:ff9b::/96 (and /48) NAT64 that may map to private v4, 100::/64 discard.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)
        || (first == 0x0100 && ip.segments()[1..4] == [0, 0, 0]))
}

/// The webhook client's resolver: the system's, with every address [`check_addr`] refuses
/// removed; a name with none left fails to resolve, naming why.
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    /// What may be reached.
    pub reach: Reach,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let reach = self.reach;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // The port is replaced by the URL's when connecting.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| check_addr(a.ip(), reach).is_ok())
                .collect();
            if allowed.is_empty() {
                let refused = found
                    .first()
                    .map(|a| UrlRefused::Private(a.ip()).to_string())
                    .unwrap_or_else(|| format!("{host} has no address"));
                return Err(refused.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The resolver as reqwest takes it.
pub fn resolver(reach: Reach) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver { reach })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_https_or_a_loopback_host() {
        let ok = |u: &str| check_url(u, Reach::PublicOnly).map(|_| ());
        assert_eq!(ok("https://hooks.example.com/innkeep?x=1"), Ok(()));
        assert_eq!(ok("http://127.0.0.1:9000/hook"), Ok(()));
        assert_eq!(ok("http://localhost:9000/hook"), Ok(()));
        assert_eq!(ok("http://[::1]:9000/hook"), Ok(()));
        assert_eq!(ok("https://8.8.8.8/hook"), Ok(()));
        assert_eq!(ok("http://hooks.example.com/"), Err(UrlRefused::PlainHttp));
        assert_eq!(ok("http://8.8.8.8/"), Err(UrlRefused::PlainHttp));
        for bad in [
            "ftp://example.com/",
            "HTTPS://example.com/",
            "https://",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "https://exa mple.com/",
            "https://exämple.com/",
            "example.com",
        ] {
            assert!(
                matches!(ok(bad), Err(UrlRefused::Malformed(_))),
                "{bad}: {:?}",
                ok(bad)
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(matches!(ok(&long), Err(UrlRefused::Malformed(_))));
        // With allow_private, plain http and private addresses are fine.
        let private = |u: &str| check_url(u, Reach::Private).map(|_| ());
        assert_eq!(private("http://hooks.internal/"), Ok(()));
        assert_eq!(private("http://10.1.2.3/"), Ok(()));
    }

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "2001:db8::1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                check_addr(ip, Reach::PublicOnly),
                Err(UrlRefused::Private(ip)),
                "{ip}"
            );
            assert_eq!(check_addr(ip, Reach::Private), Ok(()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "::ffff:127.0.0.1",
            "8.8.8.8",
            "2606:4700::1111",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(check_addr(ip, Reach::PublicOnly), Ok(()), "{ip}");
        }
        assert_eq!(
            check_url("https://10.1.2.3/hook", Reach::PublicOnly).map(|_| ()),
            Err(UrlRefused::Private("10.1.2.3".parse().unwrap()))
        );
        assert_eq!(
            check_url("https://[fe80::1]/hook", Reach::PublicOnly).map(|_| ()),
            Err(UrlRefused::Private("fe80::1".parse().unwrap()))
        );
    }

    /// The resolver drops refused addresses: `localhost` keeps its loopback addresses; a
    /// literal private address given as a name (resolves to itself) is refused.
    #[tokio::test]
    async fn the_resolver_keeps_only_allowed_addresses() {
        let r = GuardedResolver {
            reach: Reach::PublicOnly,
        };
        let addrs: Vec<SocketAddr> = r
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
        let err = match r.resolve("10.9.8.7".parse().unwrap()).await {
            Ok(_) => panic!("a private address resolved"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("10.9.8.7 is not a public address"), "{err}");
        let private = GuardedResolver {
            reach: Reach::Private,
        };
        assert!(private.resolve("10.9.8.7".parse().unwrap()).await.is_ok());
    }
}
