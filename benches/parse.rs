//! Request-head parsing throughput: poolserve's strict parser against httparse, in one run.
//!
//! Inputs: the "720-byte" (exactly 703 bytes) browser request that the httparse, picohttpparser and llhttp
//! benchmarks share (a GET with ten fields and a long Cookie), and a 71-byte request.
//! Throughput is reported in bytes, so criterion prints bytes/s next to the time per request.
//!
//! Run: `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`.

// criterion_group!/criterion_main! generate undocumented public items.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use poolserve::http::{EMPTY_HEADER, Limits, Status, parse};

/// The shared reference request (called "720 bytes" in the literature; 703 exactly).
const REQ_720: &[u8] = b"GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n\
Host: www.kittyhell.com\r\n\
User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; ja-JP-mac; rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n\
Accept-Encoding: gzip,deflate\r\n\
Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n\
Keep-Alive: 115\r\n\
Connection: keep-alive\r\n\
Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; __utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; __utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/reader/|utmcmd=referral\r\n\r\n";

/// A short request, as a command-line client sends it.
const REQ_71: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n";

fn bench_input(c: &mut Criterion, group_name: &str, input: &'static [u8]) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Bytes(input.len() as u64));
    let limits = Limits::default();
    group.bench_function("poolserve", |b| {
        let mut headers = [EMPTY_HEADER; 16];
        b.iter(|| {
            let status = parse(black_box(input), &mut headers, &limits);
            match status {
                Ok(Status::Complete(req, n)) => black_box((req.headers.len(), n)),
                other => panic!("benchmark input rejected: {other:?}"),
            }
        });
    });
    group.bench_function("httparse", |b| {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        b.iter(|| {
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(black_box(input)) {
                Ok(httparse::Status::Complete(n)) => black_box((req.headers.len(), n)),
                other => panic!("benchmark input rejected: {other:?}"),
            }
        });
    });
    group.finish();
}

fn parse_requests(c: &mut Criterion) {
    assert_eq!(REQ_720.len(), 703);
    bench_input(c, "parse_720B", REQ_720);
    bench_input(c, "parse_71B", REQ_71);
}

criterion_group!(benches, parse_requests);
criterion_main!(benches);
