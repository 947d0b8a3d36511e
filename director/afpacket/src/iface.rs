//! Interfaces by name and index, resolved in the calling thread's network namespace.

use std::ffi::CString;
use std::fmt;
use std::io;

use crate::error::{Error, Result};
use crate::sys;

/// A network interface: its name (for messages) and its index (for the kernel).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Interface {
    name: String,
    index: u32,
}

impl Interface {
    /// Looks `name` up with `if_nametoindex(3)` in the current network namespace.
    pub fn by_name(name: &str) -> Result<Self> {
        let unknown = |source| Error::UnknownInterface {
            name: name.to_owned(),
            call: "if_nametoindex",
            source,
        };
        if name.is_empty() || name.len() >= libc::IF_NAMESIZE {
            return Err(unknown(io::Error::from_raw_os_error(libc::ENODEV)));
        }
        let cname =
            CString::new(name).map_err(|_| unknown(io::Error::from_raw_os_error(libc::ENODEV)))?;
        let index = sys::if_nametoindex(&cname).map_err(unknown)?;
        Ok(Self {
            name: name.to_owned(),
            index,
        })
    }

    /// Looks `index` up with `if_indextoname(3)` in the current network namespace.
    pub fn by_index(index: u32) -> Result<Self> {
        let name = sys::if_indextoname(index).map_err(|source| Error::UnknownInterface {
            name: format!("#{index}"),
            call: "if_indextoname",
            source,
        })?;
        Ok(Self { name, index })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The index as the `c_int` that `sockaddr_ll` wants.
    pub(crate) fn c_index(&self) -> Result<libc::c_int> {
        libc::c_int::try_from(self.index).map_err(|_| {
            Error::config(
                "interface index",
                &self.name,
                format!("{} is out of range", self.index),
            )
        })
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
