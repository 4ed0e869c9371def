//! A real HTTP server on 127.0.0.1 for the network cases, one per case so that the requests it
//! counts are that case's alone. It answers:
//!
//! - `/ok`: 200, `hello from loopback`;
//! - `/redirect`: 302 to `/secret` on the same server (a redirect the sandbox must not follow);
//! - `/secret`: 200, `secret` (reached only if a redirect was followed);
//! - `/echo-host`: 200, the `Host` header it received;
//! - `/echo-target...`: 200, the request target of the request line as it came (a path in
//!   origin form, or a whole URL if a client sent the absolute form a proxy would take).
//!
//! It also misbehaves on purpose, to show that the sandbox bounds what a server does to a call:
//! - `/hang`: reads the request and never answers;
//! - `/trickle`: promises 100,000 bytes and sends one every 50 ms;
//! - `/close-early`: promises 1,000 bytes, sends 10 and closes;
//! - `/chunked-forever`: a chunked body that never ends;
//! - anything else: 404.
//!
//! Each connection is served on a thread of its own, which ends when the server is dropped or
//! after `MAX_CONNECTION_TIME`, whichever is first.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a misbehaving answer goes on.
const MAX_CONNECTION_TIME: Duration = Duration::from_secs(30);

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
                        let (requests, stop) = (requests.clone(), stop.clone());
                        std::thread::spawn(move || answer(stream, port, &requests, &stop));
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

    /// Requests received so far.
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

fn answer(stream: TcpStream, port: u16, requests: &AtomicU64, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut host = String::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("host")
        {
            host = value.trim().to_string();
        }
    }
    // Counted once the request is read, before it is answered: the plugin may have its
    // response (and the case its count) before this thread gets to run again.
    requests.fetch_add(1, Ordering::SeqCst);
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let mut stream = stream;
    let started = Instant::now();
    let going = || !stop.load(Ordering::SeqCst) && started.elapsed() < MAX_CONNECTION_TIME;
    match path {
        "/hang" => {
            while going() {
                std::thread::sleep(Duration::from_millis(20));
            }
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        "/trickle" => {
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")?;
            while going() {
                stream.write_all(b"x")?;
                stream.flush()?;
                std::thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
        "/close-early" => {
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n0123456789")?;
            return stream.flush();
        }
        "/chunked-forever" => {
            write!(stream, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")?;
            let chunk = format!("400\r\n{}\r\n", "y".repeat(0x400));
            while going() {
                stream.write_all(chunk.as_bytes())?;
            }
            return Ok(());
        }
        _ => {}
    }
    let (status, extra, body) = match path {
        "/ok" => ("200 OK", String::new(), "hello from loopback".to_string()),
        "/redirect" => ("302 Found", format!("Location: http://127.0.0.1:{port}/secret\r\n"), "redirect not followed".to_string()),
        "/secret" => ("200 OK", String::new(), "secret".to_string()),
        "/echo-host" => ("200 OK", String::new(), host),
        _ if path.contains("/echo-target") => ("200 OK", String::new(), path.to_string()),
        _ => ("404 Not Found", String::new(), "not found".to_string()),
    };
    write!(stream, "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    stream.flush()
}
