//! The control socket's sync daemon requests (`lvsadm --start-daemon`, `--stop-daemon`,
//! `-L --daemon`), answered before the rest of the director's handler sees them.

use std::cell::RefCell;

use log::Level;
use lvs_common::event;
use lvs_proto::{ErrorCode, Handler, PeerInfo, Request, Response};

use crate::dataplane::Dataplane;

/// `inner` with the sync daemon requests answered from the dataplane's [`super::Daemons`].
#[derive(Debug)]
pub struct WithSync<'a, H> {
    dataplane: &'a RefCell<Dataplane>,
    inner: &'a mut H,
}

/// Wraps `inner` (the content switch and control handlers) for one turn of the loop.
pub fn handler<'a, H: Handler>(
    dataplane: &'a RefCell<Dataplane>,
    inner: &'a mut H,
) -> WithSync<'a, H> {
    WithSync { dataplane, inner }
}

impl<H: Handler> Handler for WithSync<'_, H> {
    fn handle(&mut self, peer: &PeerInfo, request: Request) -> Response {
        let (done, what) = match request {
            Request::StartSyncDaemon(want) => {
                let mut dp = self.dataplane.borrow_mut();
                let daemons = dp.sync_daemons();
                let done = daemons.start_daemon(&want);
                let what = match daemons.daemons().first() {
                    Some(d) if done.is_ok() => format!("started the {d}"),
                    _ => format!("start the {} sync daemon", want.state.name()),
                };
                (done, what)
            }
            Request::StopSyncDaemon(state) => (
                self.dataplane
                    .borrow_mut()
                    .sync_daemons()
                    .stop_daemon(state),
                format!("stopped the {} sync daemon", state.name()),
            ),
            Request::ListSyncDaemons => {
                return Response::SyncDaemons(self.dataplane.borrow_mut().sync_daemons().daemons());
            }
            other => return self.inner.handle(peer, other),
        };
        match done {
            Ok(()) => {
                event!(Level::Info, "config_changed", peer = peer, change = what);
                Response::Ok
            }
            Err(e) => refused(peer, &e.to_string()),
        }
    }
}

/// A request the director refuses before its model sees it: logged as the model's are.
pub(crate) fn refused(peer: &PeerInfo, reason: &str) -> Response {
    event!(Level::Info, "request_refused", peer = peer, reason = reason);
    Response::Error {
        code: ErrorCode::InvalidRequest,
        message: reason.to_owned(),
    }
}
