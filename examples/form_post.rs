//! A handler that accepts POST bodies: a tiny guestbook with an HTML form and a JSON view.
//!
//! The server reads each request's body before calling the handler (without holding a worker
//! while a slow client sends it, up to `Limits::max_body`), so the handler just reads
//! `req.body()`.
//!
//! Run with `cargo run --example form_post`, open <http://127.0.0.1:7880/>, or:
//!
//! ```text
//! curl -d 'name=Ada&note=hello%20there' http://127.0.0.1:7880/sign
//! curl http://127.0.0.1:7880/entries.json
//! ```

use std::sync::Mutex;

use poolserve::http::{Limits, Request, Response};
use poolserve::{Handler, Server};

/// The guestbook: signatures in memory.
struct Guestbook {
    entries: Mutex<Vec<(String, String)>>,
}

impl Handler for Guestbook {
    fn handle(&self, req: &Request<'_, '_>) -> Response {
        match (req.method, req.path()) {
            ("GET", "/") => Response::new(200)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(self.page()),
            ("POST", "/sign") => {
                let is_form = req.header("content-type").is_some_and(|v| {
                    v.to_ascii_lowercase()
                        .starts_with(b"application/x-www-form-urlencoded")
                });
                if !is_form {
                    return Response::plain_status(415);
                }
                let (mut name, mut note) = (String::new(), String::new());
                for (key, value) in form_pairs(req.body()) {
                    match key.as_str() {
                        "name" => name = value,
                        "note" => note = value,
                        _ => {}
                    }
                }
                if name.is_empty() {
                    return Response::new(400)
                        .header("Content-Type", "text/plain; charset=utf-8")
                        .body("a name is required\n");
                }
                self.entries
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((name, note));
                // Post/Redirect/Get: a reload does not sign twice.
                Response::new(303).header("Location", "/")
            }
            ("GET", "/entries.json") => Response::new(200)
                .header("Content-Type", "application/json")
                .body(self.json()),
            (_, "/" | "/sign" | "/entries.json") => Response::plain_status(405),
            _ => Response::plain_status(404),
        }
    }
}

impl Guestbook {
    fn page(&self) -> String {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut items = String::new();
        for (name, note) in entries.iter() {
            items.push_str(&format!("<li><b>{}</b>: {}</li>\n", html(name), html(note)));
        }
        format!(
            "<!DOCTYPE html><title>Guestbook</title>\n<h1>Guestbook</h1>\n<ul>\n{items}</ul>\n\
             <form method=post action=/sign>\n<input name=name placeholder=name required>\n\
             <input name=note placeholder=note>\n<button>Sign</button>\n</form>\n"
        )
    }

    fn json(&self) -> String {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let items: Vec<String> = entries
            .iter()
            .map(|(n, t)| format!("{{\"name\":{},\"note\":{}}}", json(n), json(t)))
            .collect();
        format!("[{}]\n", items.join(","))
    }
}

/// `application/x-www-form-urlencoded` pairs, decoded (`+` is a space, `%XX` a byte).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut kv = pair.splitn(2, |&b| b == b'=');
            let key = decode(kv.next().unwrap_or_default());
            let value = decode(kv.next().unwrap_or_default());
            (key, value)
        })
        .collect()
}

fn decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = raw
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
                match byte {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .bind("127.0.0.1:7880")
        .limits(Limits {
            max_body: 16 * 1024, // a guestbook note needs no more
            ..Limits::default()
        })
        .build()?;
    println!("listening on http://{}", server.local_addr());
    server.serve(Guestbook {
        entries: Mutex::new(Vec::new()),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let pairs = form_pairs(b"name=Ada+L&note=50%25%20off&bad=%zz&x");
        assert_eq!(
            pairs,
            vec![
                ("name".into(), "Ada L".into()),
                ("note".into(), "50% off".into()),
                ("bad".into(), "%zz".into()),
                ("x".into(), String::new()),
            ]
        );
    }
}
