//! Memory a request can make `vlm-serve` take: images that would decode past the budget
//! (16-bit 8192 x 8192) are refused from their header, and eight concurrent requests with
//! the largest image the budget allows (8-bit RGBA 8192 x 8192, under 1 MB as PNG) keep the
//! server's peak RSS under the bound README states, because only
//! `--max-concurrent-preparations` (2) decode at once.

mod common;

use common::{data_url, post_json, Server};
use serde_json::{json, Value};

/// The peak RSS README promises for this case, in MiB.
const PEAK_RSS_BOUND_MIB: u64 = 1536;

/// A PNG of zeros, compressed as it is written: the test never holds the pixels.
fn bomb(side: u32, depth: png::BitDepth) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().unwrap();
    let bytes_per_pixel = if depth == png::BitDepth::Sixteen {
        8
    } else {
        4
    };
    let row = vec![0u8; side as usize * bytes_per_pixel];
    {
        let mut stream = writer.stream_writer().unwrap();
        for _ in 0..side {
            std::io::Write::write_all(&mut stream, &row).unwrap();
        }
        stream.finish().unwrap();
    }
    writer.finish().unwrap();
    out
}

fn peak_rss_mib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

async fn chat_with(url: String, image: String) -> (u16, Value) {
    let body = json!({
        "model": "tiny",
        "max_tokens": 2,
        "temperature": 0,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image}},
            {"type": "text", "text": "what is it?"},
        ]}],
    });
    post_json(&url, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bomb_images_are_refused_or_bounded_and_peak_rss_stays_under_the_bound() {
    let deep = data_url(&bomb(8192, png::BitDepth::Sixteen));
    let widest = data_url(&bomb(8192, png::BitDepth::Eight));
    let server = Server::start(
        "llava-tiny",
        &["--max-image-mb", "20", "--max-concurrent-preparations", "2"],
    );
    let url = format!("{}/chat/completions", server.v1());
    // 16-bit: 512 MiB decoded, refused from the header before any allocation.
    let (status, body) = chat_with(url.clone(), deep.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("decoded"),
        "{body}"
    );
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let image = if i % 4 == 3 {
                deep.clone()
            } else {
                widest.clone()
            };
            tokio::spawn(chat_with(url.clone(), image))
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (status, body) = task.await.unwrap();
        let want = if i % 4 == 3 { 400 } else { 200 };
        assert_eq!(status, want, "request {i}: {body}");
    }
    let peak = peak_rss_mib(server.pid());
    eprintln!("vlm-serve peak RSS after 8 concurrent bomb images: {peak} MiB");
    assert!(peak < PEAK_RSS_BOUND_MIB, "peak RSS {peak} MiB");
    let health = reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
