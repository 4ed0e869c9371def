//! A real HTTP server on 127.0.0.1 for the network cases, one per case so that the requests it
//! counts are that case's alone. It answers:
//!
//! - `/ok`: 200, `hello from loopback`;
//! - `/redirect`: 302 to `/secret` on the same server (a redirect the sandbox must not follow);
//! - `/secret`: 200, `secret` (reached only if a redirect was followed);
//! - anything else: 404.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub struct Loopback {
    port: u16,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    pub fn start() -> std::io::Result<Loopback> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::Builder::new().name("stockade-loopback".into()).spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        if answer(stream, port).is_ok() {
                            requests.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })?
        };
        Ok(Loopback { port, requests, stop, thread: Some(thread) })
    }

    /// What `{http}` stands for in a case.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(stream: TcpStream, port: u16) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, extra, body) = match path {
        "/ok" => ("200 OK", String::new(), "hello from loopback"),
        "/redirect" => ("302 Found", format!("Location: http://127.0.0.1:{port}/secret\r\n"), "redirect not followed"),
        "/secret" => ("200 OK", String::new(), "secret"),
        _ => ("404 Not Found", String::new(), "not found"),
    };
    let mut stream = stream;
    write!(stream, "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    stream.flush()
}
