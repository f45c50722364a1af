//! A small SMTP server on loopback for the mail tests. It speaks the part of RFC 5321 a client
//! uses to hand over mail (greeting, EHLO/HELO, MAIL FROM, RCPT TO, DATA with dot-unstuffing,
//! RSET, NOOP, QUIT), records every mail it accepts, and can be told to refuse MAIL FROM with a
//! temporary error. (The embeddable SMTP server crates pull in aws-lc or blocking thread pools
//! that never stop; this one is a tokio task that ends with the test.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One mail as it arrived: the envelope and the message exactly as sent after DATA.
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parseable message")
    }

    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    refusing: AtomicBool,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// Listens on 127.0.0.1 at a free port.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Sessions live in the set, so stopping the server ends them too.
            let mut sessions = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                sessions.spawn(async move {
                    let _ = session(stream, &state).await;
                });
                while sessions.try_join_next().is_some() {}
            }
        });
        SmtpServer { addr, state, task }
    }

    /// The URL for `mail.smtp_url`: plain SMTP, no TLS, no credentials.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// While true, MAIL FROM is answered with 451 (try again later).
    pub fn refuse(&self, refusing: bool) {
        self.state.refusing.store(refusing, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(b"220 localhost ESMTP allmende-test\r\n")
        .await?;

    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(()); // the client hung up
        }
        let command = String::from_utf8_lossy(&line);
        let command = command.trim_end_matches(['\r', '\n']);
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-localhost greets you\r\n250-8BITMIME\r\n250 SIZE 10000000".into(),
            "HELO" => "250 localhost".into(),
            "MAIL" if state.refusing.load(Ordering::SeqCst) => {
                "451 4.3.0 Mailbox temporarily unavailable, try again later".into()
            }
            "MAIL" => match angle_address(command) {
                Some(from) => {
                    mail_from = Some(from);
                    rcpt_to.clear();
                    "250 2.1.0 OK".into()
                }
                None => "501 5.5.4 Syntax: MAIL FROM:<address>".into(),
            },
            "RCPT" if mail_from.is_none() => "503 5.5.1 MAIL first".into(),
            "RCPT" => match angle_address(command) {
                Some(to) => {
                    rcpt_to.push(to);
                    "250 2.1.5 OK".into()
                }
                None => "501 5.5.4 Syntax: RCPT TO:<address>".into(),
            },
            "DATA" if rcpt_to.is_empty() => "503 5.5.1 RCPT first".into(),
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(()); // hung up in the middle: nothing was accepted
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2): a leading dot was doubled by the client.
                    let content = if line.first() == Some(&b'.') {
                        &line[1..]
                    } else {
                        &line[..]
                    };
                    data.extend_from_slice(content);
                }
                state.received.lock().expect("lock").push(Received {
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                "250 2.0.0 OK: queued".into()
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                "250 2.0.0 OK".into()
            }
            "NOOP" => "250 2.0.0 OK".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "500 5.5.2 Command not recognised".into(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// The address between `<` and `>` in `MAIL FROM:<a@b> SIZE=123` or `RCPT TO:<a@b>`.
fn angle_address(command: &str) -> Option<String> {
    let start = command.find('<')?;
    let end = start + command[start..].find('>')?;
    Some(command[start + 1..end].to_owned())
}
