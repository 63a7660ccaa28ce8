//! `ssh://user@host[:port]`, parsed once into the parts the connection
//! needs. The user is required: btfvm runs the agent as root, and guessing
//! the local user name for a lab machine would hide which account needs
//! the key.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshUrl {
    pub user: String,
    /// A name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--target {given:?}: {why} (the form is ssh://user@host[:port], e.g. ssh://root@192.0.2.7:2222)")]
pub struct UrlError {
    pub given: String,
    pub why: &'static str,
}

impl SshUrl {
    pub fn parse(given: &str) -> Result<SshUrl, UrlError> {
        let err = |why| UrlError {
            given: given.to_string(),
            why,
        };
        let rest = given
            .strip_prefix("ssh://")
            .ok_or_else(|| err("only ssh:// targets are known"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(err("a path, query or fragment means nothing here"));
        }
        let (user, hostport) = rest.rsplit_once('@').ok_or_else(|| err("no user"))?;
        if user.is_empty() || user.contains(':') {
            return Err(err("the user is empty or has a password in it (use keys)"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| err("an unclosed ["))?;
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(p.strip_prefix(':').ok_or_else(|| err("junk after ]"))?),
                ),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("no host, or a host with spaces"));
        }
        let port = match port {
            None => 22,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(err("the port is not a number from 1 to 65535")),
            },
        };
        Ok(SshUrl {
            user: user.to_string(),
            host: host.to_string(),
            port,
        })
    }

    /// host:port for connecting (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for SshUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ssh://{}@{}", self.user, self.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (String, String, u16) {
        let u = SshUrl::parse(s).unwrap();
        (u.user, u.host, u.port)
    }

    #[test]
    fn the_forms_a_lab_uses() {
        assert_eq!(ok("ssh://root@box"), ("root".into(), "box".into(), 22));
        assert_eq!(
            ok("ssh://root@127.0.0.1:2222"),
            ("root".into(), "127.0.0.1".into(), 2222)
        );
        assert_eq!(ok("ssh://me@[::1]:2200"), ("me".into(), "::1".into(), 2200));
        assert_eq!(
            ok("ssh://me@[fe80::1]"),
            ("me".into(), "fe80::1".into(), 22)
        );
        assert_eq!(
            ok("ssh://ci@host.example/"),
            ("ci".into(), "host.example".into(), 22)
        );
        assert_eq!(
            SshUrl::parse("ssh://me@[::1]:2200").unwrap().address(),
            "[::1]:2200"
        );
        assert_eq!(
            SshUrl::parse("ssh://a@b:7").unwrap().to_string(),
            "ssh://a@b:7"
        );
    }

    #[test]
    fn what_is_refused_and_why() {
        for (bad, why) in [
            ("root@box", "only ssh://"),
            ("http://root@box", "only ssh://"),
            ("ssh://box", "no user"),
            ("ssh://@box", "user is empty"),
            ("ssh://root:pw@box", "password"),
            ("ssh://root@", "no host"),
            ("ssh://root@box:0", "port"),
            ("ssh://root@box:99999", "port"),
            ("ssh://root@box:22x", "port"),
            ("ssh://root@box/tmp", "path"),
            ("ssh://root@[::1", "unclosed"),
            ("ssh://root@[::1]x", "junk"),
            ("ssh://root@bad host", "spaces"),
        ] {
            let e = SshUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("ssh://user@host[:port]"), "{e}");
        }
    }
}
