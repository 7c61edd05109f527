//! [`Handler`]: what the server calls for each parsed request.

use crate::http::{Request, Response};

/// Turns a request into a response. Implemented for every
/// `Fn(&Request) -> Response + Send + Sync + 'static`, and by [`StaticFiles`](crate::files::StaticFiles).
///
/// The server calls it from its worker threads, several at once: that is why a handler must be
/// `Send + Sync`. By default the server reads the whole request body first (without holding a
/// worker while the client sends it, within [`Limits::max_body`](crate::http::Limits::max_body)
/// and the server's cap on buffered body bytes) and hands it over as [`Request::body`]. A handler
/// that answers from the head alone says so with [`Handler::wants_body`], and is then called as
/// soon as the head has arrived.
///
/// ```
/// use poolserve::Handler;
/// use poolserve::http::{Request, Response};
///
/// fn hello(_req: &Request<'_, '_>) -> Response {
///     Response::new(200).header("Content-Type", "text/plain").body("hi\n")
/// }
/// fn is_handler(_: &impl Handler) {}
/// is_handler(&hello);
/// ```
///
/// A handler that shares non-thread-safe state is rejected at compile time:
///
/// ```compile_fail
/// use std::cell::Cell;
/// use poolserve::Handler;
/// use poolserve::http::{Request, Response};
///
/// let hits = std::rc::Rc::new(Cell::new(0)); // neither Send nor Sync
/// let counting = move |_: &Request<'_, '_>| { hits.set(hits.get() + 1); Response::new(204) };
/// fn is_handler(_: &impl Handler) {}
/// is_handler(&counting); // error: `Rc<Cell<i32>>` cannot be shared between threads safely
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Should not panic: a panic is caught by the server, logged, and answered
    /// with a 500 and a closed connection.
    fn handle(&self, req: &Request<'_, '_>) -> Response;

    /// Does [`handle`](Handler::handle) need this request's body? Asked once the head of a
    /// request with a body has arrived. The default, `true`, makes the server read the body
    /// before calling `handle`. With `false`, `handle` is called at once with an empty body (as
    /// nginx answers a `POST` to a static file with `405` before the body arrives); the server
    /// then discards the body if all of it has already arrived, and otherwise sends the response
    /// with `Connection: close` and closes without reading the rest.
    fn wants_body(&self, req: &Request<'_, '_>) -> bool {
        let _ = req;
        true
    }
}

impl<F> Handler for F
where
    F: Fn(&Request<'_, '_>) -> Response + Send + Sync + 'static,
{
    fn handle(&self, req: &Request<'_, '_>) -> Response {
        self(req)
    }
}
