//! Idle and slow connections cannot take `vlm-serve` down: with `--max-connections 4
//! --header-timeout 1`, eight sockets that never send a request are closed after the header
//! timeout, and `/health` is answered meanwhile-or-right-after instead of never.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_the_server_keeps_answering() {
    let server = Server::start(
        "llava-tiny",
        &["--max-connections", "4", "--header-timeout", "1"],
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Twice the cap of silent sockets: the server must still answer.
    let started = Instant::now();
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!("{}/health", server.base))
        .send()
        .await
        .expect("health answered despite idle connections");
    assert_eq!(health.status().as_u16(), 200);
    eprintln!("health answered after {:?}", started.elapsed());
    // An idle socket the server accepted is closed (EOF) after the header timeout.
    let mut first = idle.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = first.read(&mut buf).unwrap_or(0);
    assert_eq!(
        n, 0,
        "the idle connection got {n} bytes instead of being closed"
    );
}
