//! One scheduler state for one virtual service, with that service's destination list.

use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;

use lvs_sched_abi::{Dest, Flow, Ops, Options, Scheduler, Service, status};
use lvs_sched_algos::Rr;

use crate::{HostError, Plugin};

/// What a service tells its scheduler when it is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSpec {
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u8,
    pub protocol: u8,
    pub flags: u32,
    /// Scheduler options, `"key=value,flag"`.
    pub options: String,
}

/// Where picks come from: the plugin, or after a plugin error, the built-in round robin.
enum Backend {
    Plugin(*mut c_void),
    Fallback(Rr),
}

/// A scheduler state for one service. Not shared between threads: the owner serialises calls,
/// which is what the ABI promises plugins.
pub struct Instance {
    plugin: Arc<Plugin>,
    ops: &'static Ops,
    /// `ops.schedule`, checked non-null at load, kept here to spare a check per call.
    schedule_fn: lvs_sched_abi::ScheduleFn,
    backend: Backend,
    dests: Vec<Dest>,
    spec: ServiceSpec,
}

// SAFETY: the plugin state pointer is owned by this instance alone and the ABI lets a state be
// used from any thread as long as calls are not concurrent; `&mut self` on every call that
// touches it guarantees that.
unsafe impl Send for Instance {}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("plugin", &self.plugin.name())
            .field("fallback", &self.is_fallback())
            .field("dests", &self.dests.len())
            .finish()
    }
}

const ERRBUF_LEN: usize = 256;

impl Instance {
    /// Create the plugin's state for the service described by `spec`.
    pub fn new(plugin: Arc<Plugin>, spec: ServiceSpec) -> Result<Self, HostError> {
        let options = CString::new(spec.options.clone()).map_err(|_| HostError::OptionsNul)?;
        let service = raw_service(&spec, options.as_ptr());
        let ops = plugin.ops();
        let create = ops.create.ok_or_else(|| HostError::Create {
            name: plugin.name().to_string(),
            code: status::EINVAL,
            message: "no create function".into(),
        })?;
        let Some(schedule_fn) = ops.schedule else {
            return Err(HostError::Create {
                name: plugin.name().to_string(),
                code: status::EINVAL,
                message: "no schedule function".into(),
            });
        };
        let mut state: *mut c_void = std::ptr::null_mut();
        let mut errbuf = [0 as c_char; ERRBUF_LEN];
        // SAFETY: all pointers are valid for the call; errbuf has ERRBUF_LEN writable bytes;
        // `options` outlives the call.
        let code = unsafe { create(&service, &mut state, errbuf.as_mut_ptr(), ERRBUF_LEN) };
        if code != status::OK || state.is_null() {
            // The plugin refused (bad options): that is the sysadmin's input, not a plugin
            // failure, so no quarantine.
            let message = c_message(&errbuf);
            if code == status::EPANIC {
                plugin.quarantine(format!("create panicked: {message}"));
            }
            return Err(HostError::Create {
                name: plugin.name().to_string(),
                code,
                message,
            });
        }
        Ok(Self {
            plugin,
            ops,
            schedule_fn,
            backend: Backend::Plugin(state),
            dests: Vec::new(),
            spec,
        })
    }

    /// The plugin this instance was made from.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Has this instance fallen back to the built-in round robin?
    pub fn is_fallback(&self) -> bool {
        matches!(self.backend, Backend::Fallback(_))
    }

    /// The destination list, in the order schedulers see it.
    pub fn dests(&self) -> &[Dest] {
        &self.dests
    }

    /// Append a destination. Its `id` must be new in this list.
    pub fn add_dest(&mut self, dest: Dest) -> Result<usize, HostError> {
        if self.dests.iter().any(|d| d.id == dest.id) {
            return Err(HostError::DuplicateDest(dest.id));
        }
        self.dests.push(dest);
        let index = self.dests.len() - 1;
        self.notify(Change::Add, index);
        Ok(index)
    }

    /// Replace the destination with `dest.id` (new weight, flags, thresholds).
    pub fn update_dest(&mut self, dest: Dest) -> Result<(), HostError> {
        let index = self.index_of(dest.id)?;
        self.dests[index] = dest;
        self.notify(Change::Update, index);
        Ok(())
    }

    /// Remove the destination with `id`, keeping the order of the others.
    pub fn del_dest(&mut self, id: u32) -> Result<Dest, HostError> {
        let index = self.index_of(id)?;
        self.notify(Change::Delete, index);
        Ok(self.dests.remove(index))
    }

    /// Connection counts change with every connection; schedulers read them when they pick, so
    /// no callback is made (as in IPVS).
    #[inline]
    pub fn set_conns(&mut self, index: usize, active: u32, inactive: u32, persist: u32) {
        if let Some(d) = self.dests.get_mut(index) {
            d.active_conns = active;
            d.inactive_conns = inactive;
            d.persist_conns = persist;
        }
    }

    fn index_of(&self, id: u32) -> Result<usize, HostError> {
        self.dests
            .iter()
            .position(|d| d.id == id)
            .ok_or(HostError::NoSuchDest(id))
    }

    /// Pick a destination for a new flow: an index into [`Instance::dests`], or `None` when no
    /// destination is usable.
    #[inline]
    pub fn schedule(&mut self, flow: &Flow) -> Option<usize> {
        if let Backend::Plugin(state) = self.backend
            && !self.plugin.is_quarantined()
        {
            let mut chosen = usize::MAX;
            // SAFETY: `state` is this instance's live plugin state, called from one thread at
            // a time (`&mut self`); the list and out-parameter are valid for the call.
            let code = unsafe {
                (self.schedule_fn)(
                    state,
                    flow,
                    self.dests.as_ptr(),
                    self.dests.len(),
                    &mut chosen,
                )
            };
            if code == status::OK && chosen < self.dests.len() {
                return Some(chosen);
            }
            if code == status::NONE {
                return None;
            }
            return self.plugin_failed(flow, code, chosen);
        }
        self.schedule_fallback(flow)
    }

    /// The plugin returned an error or a bad index: quarantine it and answer with round robin.
    #[cold]
    #[inline(never)]
    fn plugin_failed(&mut self, flow: &Flow, code: i32, chosen: usize) -> Option<usize> {
        if code == status::OK {
            self.fail(format!(
                "schedule chose index {chosen} of a list of {}",
                self.dests.len()
            ));
        } else {
            self.fail(format!("schedule returned {}", describe(code)));
        }
        self.schedule_fallback(flow)
    }

    #[cold]
    #[inline(never)]
    fn schedule_fallback(&mut self, flow: &Flow) -> Option<usize> {
        self.fall_back();
        match &mut self.backend {
            Backend::Fallback(rr) => rr.schedule(flow, &self.dests),
            Backend::Plugin(_) => None,
        }
    }

    fn notify(&mut self, change: Change, index: usize) {
        let Backend::Plugin(state) = self.backend else {
            self.rebuild_fallback(change, index);
            return;
        };
        if self.plugin.is_quarantined() {
            self.fall_back();
            return;
        }
        let callback = match change {
            Change::Add => self.ops.add_dest,
            Change::Update => self.ops.upd_dest,
            Change::Delete => self.ops.del_dest,
        };
        let Some(callback) = callback else { return };
        // SAFETY: live state, one caller at a time; `index < len` by construction.
        let code = unsafe { callback(state, self.dests.as_ptr(), self.dests.len(), index) };
        if code != status::OK {
            self.fail(format!(
                "{} returned {}",
                change.callback_name(),
                describe(code)
            ));
            // The fallback was built from the list as it is; a deletion is applied after.
            if change == Change::Delete {
                self.rebuild_fallback(change, index);
            }
        }
    }

    fn rebuild_fallback(&mut self, change: Change, index: usize) {
        if let Backend::Fallback(rr) = &mut self.backend {
            match change {
                Change::Add => rr.add_dest(&self.dests, index),
                Change::Update => rr.upd_dest(&self.dests, index),
                Change::Delete => rr.del_dest(&self.dests, index),
            }
        }
    }

    /// The plugin misbehaved: quarantine it everywhere and carry on with round robin.
    fn fail(&mut self, reason: String) {
        self.plugin.quarantine(reason);
        self.fall_back();
    }

    fn fall_back(&mut self) {
        if let Backend::Plugin(state) = self.backend {
            lvs_common::event!(
                log::Level::Error,
                "sched_fallback",
                plugin = self.plugin.name(),
                service_port = self.spec.port,
                fallback = "rr",
            );
            // The state may be inconsistent after an error; it is not freed, since its
            // destructor is plugin code that just failed. A leak of one state per failure is
            // the price of not running it again.
            let _ = state;
            let options = c"";
            let service = raw_service(&self.spec, options.as_ptr());
            let mut rr = match Rr::create(&service, &Options::default()) {
                Ok(rr) => rr,
                Err(_) => unreachable!("round robin takes no options and cannot refuse"),
            };
            rr.rebuild(&self.dests);
            self.backend = Backend::Fallback(rr);
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Backend::Plugin(state) = self.backend
            && let Some(destroy) = self.ops.destroy
        {
            // SAFETY: the state came from this plugin's create and is destroyed once.
            unsafe { destroy(state) };
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Add,
    Update,
    Delete,
}

impl Change {
    fn callback_name(self) -> &'static str {
        match self {
            Change::Add => "add_dest",
            Change::Update => "upd_dest",
            Change::Delete => "del_dest",
        }
    }
}

fn raw_service(spec: &ServiceSpec, options: *const c_char) -> Service {
    Service {
        addr: spec.addr,
        port: spec.port,
        family: spec.family,
        protocol: spec.protocol,
        flags: spec.flags,
        options,
        reserved: [0; 4],
    }
}

fn c_message(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c.to_ne_bytes()[0])
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn describe(code: i32) -> String {
    let what = match code {
        status::EINVAL => "EINVAL",
        status::ENOMEM => "ENOMEM",
        status::EPANIC => "EPANIC: the plugin panicked",
        status::EINTERNAL => "EINTERNAL",
        _ => "an unknown code",
    };
    format!("{code} ({what})")
}
