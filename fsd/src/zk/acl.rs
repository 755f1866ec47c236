//! ZooKeeper's ACL rules on the client port: the ids a connection holds, authentication
//! (`addAuth`), ACL validation and `auth` expansion on create/setACL (ZooKeeper's
//! `PrepRequestProcessor.fixupACL`), the permission check (`ZooKeeperServer.checkACL`) and the
//! digest redaction of getACL.
//!
//! The schemes are ZooKeeper 3.8's default providers: `world` (only `anyone`), `ip`
//! (`a.b.c.d[/bits]`, IPv6 too) and `digest` (`user:base64(sha1(user:password))`). The
//! `auth` scheme exists only in a request: it expands into the connection's digest ids.
//! Anything else (`x509`, `sasl`, `super`...) has no provider here, so an ACL naming it is
//! invalid and `addAuth` with it fails, as on a ZooKeeper without those providers
//! configured. There is no super user (`zookeeper.DigestAuthenticationProvider.superDigest`).

use std::net::IpAddr;

use base64::Engine as _;
use quorumfs_ensemble::tree as zt;

pub(crate) use super::proto::codes::perms::{ADMIN, CREATE, DELETE, READ, WRITE};
use super::proto::records::ClientInfo;
use super::proto::ErrorCode;

/// One id a connection is authenticated as (ZooKeeper's `Id` in `ServerCnxn.authInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuthId {
    pub scheme: String,
    pub id: String,
}

impl AuthId {
    fn new(scheme: &str, id: impl Into<String>) -> AuthId {
        AuthId {
            scheme: scheme.to_string(),
            id: id.into(),
        }
    }
}

/// The ids a new connection from `ip` holds: `ip:<address>` alone.
pub(crate) fn initial_ids(ip: IpAddr) -> Vec<AuthId> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    vec![AuthId::new("ip", ip.to_string())]
}

/// ZooKeeper's `DigestAuthenticationProvider.generateDigest`: `user:base64(sha1(user:password))`,
/// where the user is everything before the first `:`.
pub(crate) fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = sha1_smol::Sha1::from(user_password.as_bytes())
        .digest()
        .bytes();
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Handles `addAuth scheme auth` for a connection holding `ids`: adds the id the scheme
/// grants (once), or `Err(AuthFailed)` for a scheme without a provider.
///
/// A digest equal to `super_digest` (the server's `--super-digest`, `user:base64hash`) also
/// grants the `super` id, which every ACL allows (ZooKeeper's super user).
pub(crate) fn authenticate(
    ids: &mut Vec<AuthId>,
    scheme: &str,
    auth: &[u8],
    super_digest: Option<&str>,
) -> Result<(), ErrorCode> {
    let id = match scheme {
        "digest" => {
            let granted = digest(&String::from_utf8_lossy(auth));
            let is_super = super_digest == Some(granted.as_str());
            if is_super && !ids.iter().any(|id| id.scheme == "super") {
                ids.push(AuthId::new("super", ""));
            }
            AuthId::new("digest", granted)
        }
        // ZooKeeper's IP provider grants the connection's own address again.
        "ip" => match ids.iter().find(|id| id.scheme == "ip") {
            Some(id) => id.clone(),
            None => return Err(ErrorCode::AuthFailed),
        },
        _ => return Err(ErrorCode::AuthFailed),
    };
    if !ids.contains(&id) {
        ids.push(id);
    }
    Ok(())
}

/// What whoAmI reports for `ids`: the scheme and the user (a digest id without its hash).
pub(crate) fn client_info(ids: &[AuthId]) -> Vec<ClientInfo> {
    ids.iter()
        .map(|id| ClientInfo {
            auth_scheme: id.scheme.clone(),
            user: match id.scheme.as_str() {
                "digest" => id.id.split(':').next().unwrap_or_default().to_string(),
                _ => id.id.clone(),
            },
        })
        .collect()
}

/// ZooKeeper's `checkACL`: may a connection holding `ids` do something needing any of the
/// `perm` bits on a znode with `acl`? An empty ACL, or the `super` id, allows everything.
pub(crate) fn allowed(acl: &[zt::Acl], perm: i32, ids: &[AuthId]) -> bool {
    acl.is_empty()
        || ids.iter().any(|id| id.scheme == "super")
        || acl.iter().any(|entry| {
            entry.perms & perm != 0
                && match entry.scheme.as_str() {
                    "world" => entry.id == "anyone",
                    "ip" => ids
                        .iter()
                        .any(|id| id.scheme == "ip" && ip_matches(&id.id, &entry.id)),
                    "digest" => ids
                        .iter()
                        .any(|id| id.scheme == "digest" && id.id == entry.id),
                    _ => false,
                }
        })
}

/// ZooKeeper's `fixupACL`: duplicates dropped (first kept), every entry valid for its
/// scheme, `auth` entries replaced by the connection's digest ids with the entry's
/// permissions. `Err(InvalidAcl)` for an empty ACL, an unknown scheme, a `world` id other
/// than `anyone`, a malformed `ip` or `digest` id, or an `auth` entry on a connection with
/// no digest id.
pub(crate) fn fixup(acl: &[zt::Acl], ids: &[AuthId]) -> Result<Vec<zt::Acl>, ErrorCode> {
    let mut unique: Vec<&zt::Acl> = Vec::with_capacity(acl.len());
    for entry in acl {
        if !unique.contains(&entry) {
            unique.push(entry);
        }
    }
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut fixed = Vec::with_capacity(unique.len());
    for entry in unique {
        let valid = match entry.scheme.as_str() {
            "world" => entry.id == "anyone",
            "ip" => ip_expr(&entry.id).is_some(),
            "digest" => digest_id_valid(&entry.id),
            "auth" => {
                let before = fixed.len();
                fixed.extend(
                    ids.iter()
                        .filter(|id| id.scheme == "digest")
                        .map(|id| zt::Acl {
                            perms: entry.perms,
                            scheme: id.scheme.clone(),
                            id: id.id.clone(),
                        }),
                );
                if fixed.len() == before {
                    return Err(ErrorCode::InvalidAcl);
                }
                continue;
            }
            _ => false,
        };
        if !valid {
            return Err(ErrorCode::InvalidAcl);
        }
        fixed.push(entry.clone());
    }
    Ok(fixed)
}

/// getACL without ADMIN: digest hashes become `x` (`user:x`), as ZooKeeper 3.8 answers.
pub(crate) fn redact(acl: Vec<zt::Acl>) -> Vec<zt::Acl> {
    acl.into_iter()
        .map(|mut entry| {
            if entry.scheme == "digest" {
                if let Some(colon) = entry.id.find(':') {
                    entry.id.truncate(colon);
                    entry.id.push_str(":x");
                }
            }
            entry
        })
        .collect()
}

/// `DigestAuthenticationProvider.isValid`: Java's `id.split(":")` (trailing empty parts
/// dropped) has exactly two parts.
fn digest_id_valid(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts.len() == 2
}

/// An address as bytes: dotted IPv4 by ZooKeeper's rules (four decimal parts 0..=255), or
/// IPv6 when it contains a `:`.
fn addr_bytes(addr: &str) -> Option<Vec<u8>> {
    if addr.contains(':') {
        return addr
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| a.octets().to_vec());
    }
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut bytes = Vec::with_capacity(4);
    for part in parts {
        let v: i32 = part.parse().ok()?;
        bytes.push(u8::try_from(v).ok()?);
    }
    Some(bytes)
}

/// An `ip` ACL id (`addr[/bits]`) as its address bytes and prefix length, if well formed.
fn ip_expr(expr: &str) -> Option<(Vec<u8>, usize)> {
    let mut parts = expr.splitn(2, '/');
    let addr = addr_bytes(parts.next()?)?;
    let max = addr.len() * 8;
    let bits = match parts.next() {
        None => max,
        Some(bits) => {
            let bits: i32 = bits.parse().ok()?;
            usize::try_from(bits).ok().filter(|b| *b <= max)?
        }
    };
    Some((addr, bits))
}

/// Keeps the first `bits` bits of `addr`.
fn mask(addr: &mut [u8], bits: usize) {
    for (i, byte) in addr.iter_mut().enumerate() {
        let keep = bits.saturating_sub(i * 8).min(8);
        *byte &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
    }
}

/// `IPAuthenticationProvider.matches`: does the client address `client` fall in `expr`?
fn ip_matches(client: &str, expr: &str) -> bool {
    let Some((mut acl_addr, bits)) = ip_expr(expr) else {
        return false;
    };
    let Some(mut client_addr) = addr_bytes(client) else {
        return false;
    };
    if client_addr.len() != acl_addr.len() {
        return false;
    }
    mask(&mut acl_addr, bits);
    mask(&mut client_addr, bits);
    acl_addr == client_addr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> zt::Acl {
        zt::Acl {
            perms,
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    fn ip(addr: &str) -> Vec<AuthId> {
        initial_ids(addr.parse().unwrap())
    }

    #[test]
    fn digest_of_known_pairs() {
        // ZooKeeper's administrator guide: super:admin.
        assert_eq!(digest("super:admin"), "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=");
        assert_eq!(digest("super:secret"), "super:lK75jTNcA+U9vtVEw5vB51mj/w4=");
        assert_eq!(digest("alice:secret"), "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
        // Everything after the first ':' is the password, and a missing one is hashed too.
        assert!(digest("a:b:c").starts_with("a:"));
        assert!(digest("alone").starts_with("alone:"));
    }

    #[test]
    fn ip_masks() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(!ip_matches("127.0.0.2", "127.0.0.1"));
        assert!(ip_matches("127.9.8.7", "127.0.0.0/8"));
        assert!(!ip_matches("128.0.0.1", "127.0.0.0/8"));
        assert!(ip_matches("10.1.2.3", "10.1.0.0/16"));
        assert!(ip_matches("10.1.2.129", "10.1.2.128/25"));
        assert!(!ip_matches("10.1.2.127", "10.1.2.128/25"));
        assert!(ip_matches("1.2.3.4", "9.9.9.9/0"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.4/33"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.4/-1"));
        assert!(ip_matches("::1", "::1"));
        assert!(ip_matches("fe80::1", "fe80::/64"));
        assert!(!ip_matches("127.0.0.1", "::1"));
        // A v4-mapped peer is seen as its IPv4 address.
        assert_eq!(ip("::ffff:127.0.0.1")[0].id, "127.0.0.1");
    }

    #[test]
    fn ip_validation() {
        for good in [
            "127.0.0.1",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "1.2.3.4/32",
            "::1",
            "fe80::/10",
        ] {
            assert!(ip_expr(good).is_some(), "{good}");
        }
        for bad in [
            "not-an-ip",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.256",
            "1.2.3.",
            "1.2.3.4/",
            "1.2.3.4/33",
            "1.2.3.4/x",
            "1.2.3.4/8/8",
            "",
        ] {
            assert!(ip_expr(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn check_acl() {
        let me = ip("127.0.0.1");
        assert!(allowed(&[acl(31, "world", "anyone")], READ, &me));
        assert!(!allowed(&[acl(READ, "world", "anyone")], WRITE, &me));
        assert!(allowed(&[], ADMIN, &me));
        assert!(allowed(&[acl(31, "ip", "127.0.0.0/8")], DELETE, &me));
        assert!(!allowed(&[acl(31, "ip", "10.1.2.3")], READ, &me));
        let mut alice = me.clone();
        authenticate(&mut alice, "digest", b"alice:secret", None).unwrap();
        let entry = acl(31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
        assert!(allowed(std::slice::from_ref(&entry), READ, &alice));
        assert!(!allowed(std::slice::from_ref(&entry), READ, &me));
        // READ | ADMIN: either bit is enough.
        assert!(allowed(&[acl(ADMIN, "world", "anyone")], READ | ADMIN, &me));
    }

    #[test]
    fn authentication() {
        let mut ids = ip("127.0.0.1");
        authenticate(&mut ids, "digest", b"alice:secret", None).unwrap();
        authenticate(&mut ids, "digest", b"alice:secret", None).unwrap();
        authenticate(&mut ids, "ip", b"", None).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(
            authenticate(&mut ids, "bogus", b"x", None),
            Err(ErrorCode::AuthFailed)
        );
        assert_eq!(
            authenticate(&mut ids, "world", b"anyone", None),
            Err(ErrorCode::AuthFailed)
        );
        let info = client_info(&ids);
        assert_eq!(info[0].auth_scheme, "ip");
        assert_eq!(info[0].user, "127.0.0.1");
        assert_eq!(info[1].auth_scheme, "digest");
        assert_eq!(info[1].user, "alice");
    }

    #[test]
    fn fixup_acl() {
        let me = ip("127.0.0.1");
        let bad = |entry: zt::Acl, ids: &[AuthId]| fixup(&[entry], ids);
        assert_eq!(fixup(&[], &me), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            bad(acl(31, "world", "nobody"), &me),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(bad(acl(31, "bogus", "x"), &me), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            bad(acl(31, "x509", "CN=a"), &me),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(bad(acl(31, "super", ""), &me), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            bad(acl(31, "ip", "not-an-ip"), &me),
            Err(ErrorCode::InvalidAcl)
        );
        for id in ["alice", "alice:", "a:b:c", ""] {
            assert_eq!(
                bad(acl(31, "digest", id), &me),
                Err(ErrorCode::InvalidAcl),
                "{id}"
            );
        }
        assert!(bad(acl(31, "digest", "alice:hash"), &me).is_ok());
        // `auth` needs a digest id; the ip id does not count.
        assert_eq!(bad(acl(31, "auth", ""), &me), Err(ErrorCode::InvalidAcl));
        let mut alice = me.clone();
        authenticate(&mut alice, "digest", b"alice:secret", None).unwrap();
        assert_eq!(
            fixup(&[acl(31, "auth", ""), acl(31, "auth", "")], &alice).unwrap(),
            vec![acl(31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=")]
        );
        assert_eq!(
            fixup(
                &[acl(1, "world", "anyone"), acl(16, "ip", "127.0.0.1")],
                &me
            )
            .unwrap(),
            vec![acl(1, "world", "anyone"), acl(16, "ip", "127.0.0.1")]
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact(vec![
                acl(31, "digest", "alice:hash"),
                acl(1, "world", "anyone")
            ]),
            vec![acl(31, "digest", "alice:x"), acl(1, "world", "anyone")]
        );
    }

    #[test]
    fn super_digest_passes_every_acl() {
        let super_digest = digest("super:admin");
        let closed = vec![zt::Acl {
            perms: 31,
            scheme: "digest".into(),
            id: digest("alice:secret"),
        }];
        let mut ids = initial_ids("127.0.0.1".parse().unwrap());
        assert!(!allowed(&closed, 1, &ids));
        authenticate(&mut ids, "digest", b"super:wrong", Some(&super_digest)).unwrap();
        assert!(!allowed(&closed, 1, &ids), "a wrong password is not super");
        authenticate(&mut ids, "digest", b"super:admin", Some(&super_digest)).unwrap();
        assert!(allowed(&closed, 1 | 2 | 4 | 8 | 16, &ids));
        let mut plain = initial_ids("127.0.0.1".parse().unwrap());
        authenticate(&mut plain, "digest", b"super:admin", None).unwrap();
        assert!(!allowed(&closed, 1, &plain), "no super digest configured");
    }
}
