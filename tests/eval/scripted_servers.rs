//! Scripted OpenAI-compatible servers on loopback: one that fails every request, one that
//! judges by looking prompts up in a table.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// What a test server needs of a request: its head (request line and headers) and body.
struct Request {
    head: String,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (`content-length` bodies only, as our clients send).
fn read_request(reader: &mut BufReader<TcpStream>) -> Request {
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    Request { head, body }
}

/// Writes a JSON reply with `status` and closes the connection.
fn respond(reader: &mut BufReader<TcpStream>, status: &str, text: &str) {
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = reader.get_mut().write_all(reply.as_bytes());
}

/// `/v1/models`' answer listing one model.
fn models(id: &str) -> String {
    json!({"object": "list", "data": [{"id": id, "object": "model"}]}).to_string()
}

/// A server overloaded for good.
pub const OVERLOADED: (&str, &str) = (
    "503 Service Unavailable",
    r#"{"error":{"message":"overloaded"}}"#,
);

/// `GET /v1/models` lists `tiny`; every other request gets `status` and `body`. Returns
/// its `/v1` URL and how many such other requests it has had.
pub fn fake_server(status: &'static str, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let posts = Arc::new(AtomicUsize::new(0));
    let counter = posts.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let request = read_request(&mut reader);
            if request.head.starts_with("GET /v1/models") {
                respond(&mut reader, "200 OK", &models("tiny"));
            } else {
                counter.fetch_add(1, Ordering::SeqCst);
                respond(&mut reader, status, body);
            }
        }
    });
    (url, posts)
}

/// A scripted judge: answers each chat request by looking its prompt up in `table` (else
/// `default`), after `delay`, and records every prompt it was asked.
pub fn judge_server(
    table: HashMap<String, String>,
    default: &'static str,
    delay: Duration,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let table = Arc::new(table);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, table) = (log.clone(), table.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let request = read_request(&mut reader);
                if request.head.starts_with("GET") {
                    return respond(&mut reader, "200 OK", &models("judge"));
                }
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let content = &body["messages"][0]["content"];
                let prompt = content[0]["text"]
                    .as_str()
                    .or(content.as_str())
                    .unwrap_or_default()
                    .to_string();
                std::thread::sleep(delay);
                let reply = table
                    .get(&prompt)
                    .cloned()
                    .unwrap_or_else(|| default.into());
                log.lock().unwrap().push(prompt);
                let text = json!({"choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": reply}}]});
                respond(&mut reader, "200 OK", &text.to_string());
            });
        }
    });
    (url, seen)
}
