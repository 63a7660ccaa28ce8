//! One SSH connection to a target (the ssh2 crate, libssh2): connecting
//! within a limit, the host key checked against known_hosts unless the
//! user opted out by name, key or agent authentication, and commands run
//! with their output captured within a limit.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2::{CheckResult, KnownHostFileKind, Session};

use super::url::SshUrl;

/// How the target's host key is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeys {
    /// Checked against this known_hosts file (OpenSSH's format).
    KnownHosts(PathBuf),
    /// Not checked (`--ssh-insecure-host-key`): a throwaway VM whose key
    /// changes at every boot.
    Insecure,
}

/// Everything a connection needs, resolved once.
#[derive(Debug, Clone)]
pub struct SshParams {
    pub url: SshUrl,
    /// The private key (`--ssh-key`); None: the agent, then ~/.ssh/id_*.
    pub identity: Option<PathBuf>,
    pub host_keys: HostKeys,
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot reach {target} within {} s: {why} (is it up, and does its SSH server listen on that port?)", limit.as_secs())]
    Connect {
        target: String,
        limit: Duration,
        why: String,
    },
    #[error("SSH handshake with {target}: {source}")]
    Handshake { target: String, source: ssh2::Error },
    #[error("{target} is not in {}; add its key with `ssh-keyscan -p {port} {host} >> {}`, or pass --ssh-insecure-host-key for a throwaway machine", file.display(), file.display())]
    UnknownHost {
        target: String,
        host: String,
        port: u16,
        file: PathBuf,
    },
    #[error("the host key of {target} is NOT the one {} has for it: another machine answers, or it was reinstalled; if you know why, fix that line", file.display())]
    ChangedHost { target: String, file: PathBuf },
    #[error("reading known hosts {}: {source}", file.display())]
    KnownHosts { file: PathBuf, source: ssh2::Error },
    #[error("no key let {user} in on {target} (tried: {tried}); give one with --ssh-key FILE, or load it into ssh-agent")]
    Auth {
        user: String,
        target: String,
        tried: String,
    },
    #[error("on {target}, `{command}`: {source}")]
    Command {
        target: String,
        command: String,
        source: ssh2::Error,
    },
    #[error("on {target}, `{command}`: the connection failed: {source}")]
    Stream {
        target: String,
        command: String,
        source: std::io::Error,
    },
    #[error("on {target}, `{command}` printed more than {cap} bytes; that is no kernel config or release")]
    TooMuch {
        target: String,
        command: String,
        cap: u64,
    },
    #[error("on {target}, `{command}` did not end within {} s", limit.as_secs())]
    CommandTimeout {
        target: String,
        command: String,
        limit: Duration,
    },
}

/// What a command left.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
}

/// The most a setup command may print (a kernel config is well under).
const OUTPUT_CAP: u64 = 16 << 20;

pub struct Connection {
    pub session: Session,
    pub target: String,
}

/// ~/.ssh, for the defaults.
fn ssh_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".ssh"))
}

/// The default known_hosts: ~/.ssh/known_hosts.
pub fn default_known_hosts() -> PathBuf {
    ssh_dir()
        .unwrap_or_else(|| PathBuf::from(".ssh"))
        .join("known_hosts")
}

fn tcp(p: &SshParams) -> Result<TcpStream, SshError> {
    let target = p.url.to_string();
    let fail = |why: String| SshError::Connect {
        target: target.clone(),
        limit: p.connect_timeout,
        why,
    };
    let addrs: Vec<_> = p
        .url
        .address()
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve {}: {e}", p.url.host)))?
        .collect();
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, p.connect_timeout) {
            Ok(s) => {
                bounded_silence(&s);
                return Ok(s);
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(fail(last))
}

/// Unacknowledged data may wait 20 s before the kernel drops the
/// connection (TCP_USER_TIMEOUT), and an idle one is probed after 10 s:
/// a target that vanished without a reset is noticed in bounded time
/// rather than after the kernel's 15 minutes of retransmissions.
fn bounded_silence(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let set = |level, name, value: libc::c_int| {
        // SAFETY: an int option on a socket we own.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                level,
                name,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    };
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 20_000);
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 10);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 5);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 2);
    let _ = s.set_nodelay(true);
}

fn check_host(session: &Session, p: &SshParams, target: &str) -> Result<(), SshError> {
    let HostKeys::KnownHosts(file) = &p.host_keys else {
        return Ok(());
    };
    let mut kh = session
        .known_hosts()
        .map_err(|source| SshError::KnownHosts {
            file: file.clone(),
            source,
        })?;
    if file.exists() {
        kh.read_file(file, KnownHostFileKind::OpenSSH)
            .map_err(|source| SshError::KnownHosts {
                file: file.clone(),
                source,
            })?;
    }
    let Some((key, _)) = session.host_key() else {
        return Err(SshError::ChangedHost {
            target: target.into(),
            file: file.clone(),
        });
    };
    match kh.check_port(&p.url.host, p.url.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(SshError::ChangedHost {
            target: target.into(),
            file: file.clone(),
        }),
        CheckResult::NotFound | CheckResult::Failure => Err(SshError::UnknownHost {
            target: target.into(),
            host: p.url.host.clone(),
            port: p.url.port,
            file: file.clone(),
        }),
    }
}

fn authenticate(session: &Session, p: &SshParams, target: &str) -> Result<(), SshError> {
    let user = &p.url.user;
    let mut tried = Vec::new();
    if let Some(key) = &p.identity {
        if session.userauth_pubkey_file(user, None, key, None).is_ok() {
            return Ok(());
        }
        tried.push(key.display().to_string());
    } else {
        if std::env::var_os("SSH_AUTH_SOCK").is_some() {
            if session.userauth_agent(user).is_ok() {
                return Ok(());
            }
            tried.push("ssh-agent".into());
        }
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let Some(key) = ssh_dir().map(|d| d.join(name)).filter(|k| k.is_file()) else {
                continue;
            };
            if session.userauth_pubkey_file(user, None, &key, None).is_ok() {
                return Ok(());
            }
            tried.push(key.display().to_string());
        }
    }
    Err(SshError::Auth {
        user: user.clone(),
        target: target.into(),
        tried: if tried.is_empty() {
            "no agent, no ~/.ssh/id_* key".into()
        } else {
            tried.join(", ")
        },
    })
}

impl Connection {
    pub fn open(p: &SshParams) -> Result<Connection, SshError> {
        let target = p.url.to_string();
        let stream = tcp(p)?;
        let handshake = |source| SshError::Handshake {
            target: target.clone(),
            source,
        };
        let mut session = Session::new().map_err(handshake)?;
        session.set_tcp_stream(stream);
        session.set_timeout(p.connect_timeout.as_millis().min(u32::MAX as u128) as u32);
        session.handshake().map_err(handshake)?;
        check_host(&session, p, &target)?;
        authenticate(&session, p, &target)?;
        Ok(Connection { session, target })
    }

    /// Runs `command`, feeding it `input`, and waits up to `limit` for it.
    pub fn run(
        &self,
        command: &str,
        input: Option<&[u8]>,
        limit: Duration,
    ) -> Result<Output, SshError> {
        self.session.set_blocking(true);
        self.session
            .set_timeout(limit.as_millis().clamp(1, u32::MAX as u128) as u32);
        let fail = |source: ssh2::Error| {
            if source.code() == ssh2::ErrorCode::Session(-9) {
                SshError::CommandTimeout {
                    target: self.target.clone(),
                    command: command.to_string(),
                    limit,
                }
            } else {
                SshError::Command {
                    target: self.target.clone(),
                    command: command.to_string(),
                    source,
                }
            }
        };
        let io = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                SshError::CommandTimeout {
                    target: self.target.clone(),
                    command: command.to_string(),
                    limit,
                }
            } else {
                SshError::Stream {
                    target: self.target.clone(),
                    command: command.to_string(),
                    source: e,
                }
            }
        };
        let mut ch = self.session.channel_session().map_err(fail)?;
        ch.exec(command).map_err(fail)?;
        if let Some(bytes) = input {
            ch.write_all(bytes).map_err(io)?;
        }
        ch.send_eof().map_err(fail)?;
        let mut stdout = Vec::new();
        // A config is a few hundred KB; a target that streams without end
        // must not fill the host's memory.
        (&mut ch)
            .take(OUTPUT_CAP + 1)
            .read_to_end(&mut stdout)
            .map_err(io)?;
        if stdout.len() as u64 > OUTPUT_CAP {
            return Err(SshError::TooMuch {
                target: self.target.clone(),
                command: command.to_string(),
                cap: OUTPUT_CAP,
            });
        }
        let mut stderr = String::new();
        let _ = ch.stderr().take(64 * 1024).read_to_string(&mut stderr);
        ch.wait_close().map_err(fail)?;
        let status = ch.exit_status().map_err(fail)?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs `command` and requires it to succeed.
    pub fn check(
        &self,
        command: &str,
        input: Option<&[u8]>,
        limit: Duration,
    ) -> Result<Output, String> {
        match self.run(command, input, limit) {
            Ok(o) if o.status == 0 => Ok(o),
            Ok(o) => Err(format!(
                "on {}, `{command}` failed (exit {}): {}",
                self.target,
                o.status,
                o.stderr.trim()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}
