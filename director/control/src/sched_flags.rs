//! `-b`: ipvsadm 1.31's scheduler flags, and our plugins' own options beside them.
//!
//! ipvsadm knows three flag bits and names them by scheduler: `sh-fallback`/`mh-fallback`
//! (bit 1), `sh-port`/`mh-port` (bit 2), `flag-1`, `flag-2`, `flag-3` for any scheduler. A
//! `sh-`/`mh-` name with another scheduler is "incompatible", any other word "invalid"; both
//! are `fail(2, ...)` in ipvsadm (`parse_sched_flags`); without `-s` the check is against
//! the default scheduler, wlc. Listings and `-S` name the bits as ipvsadm's
//! `print_sched_flags` does, so `-s sh -b flag-2` lists as `sh (sh-port)`; one difference:
//! ipvsadm prints nothing for `flag-3` of sh or mh (a listing `sh ()` and a save `-b ` that
//! does not restore), we print `flag-3`.
//!
//! Our plugins take options (`table_size=4093`, `seed=7`) that ipvsadm has no word for: an
//! item with `=` is a plugin option. ipvsadm refuses every such item, so no ipvsadm script
//! changes meaning. The stored text is canonical: the bits in ipvsadm's order, then the
//! plugin options in the order given. [`plugin_options`] turns it into what the plugin reads:
//! bit 1 of `sh`/`mh` is its `fallback`, bit 2 its `port`; other bits mean nothing to a
//! scheduler (as in the kernel, where only sh and mh read them).

/// A `-b` item ipvsadm would refuse; the messages are ipvsadm's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedFlagError {
    /// A word that is neither an ipvsadm flag nor a `key=value` plugin option.
    #[error("invalid scheduler flag `{0}'")]
    Invalid(String),
    /// `sh-*` with a scheduler other than sh, `mh-*` with one other than mh.
    #[error("incompatible scheduler flag `{0}'")]
    Incompatible(String),
}

const FALLBACK: u8 = 1;
const PORT: u8 = 2;
const FLAG3: u8 = 4;

/// The flags of one service, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Flags<'a> {
    bits: u8,
    options: Vec<(&'a str, &'a str)>,
}

fn parse<'a>(scheduler: &str, text: &'a str) -> Result<Flags<'a>, SchedFlagError> {
    let mut flags = Flags::default();
    // ipvsadm splits with strtok, which skips empty items.
    for item in text.split(',').filter(|i| !i.is_empty()) {
        let bit = match item {
            "flag-1" => FALLBACK,
            "flag-2" => PORT,
            "flag-3" => FLAG3,
            "sh-fallback" | "sh-port" | "mh-fallback" | "mh-port" => {
                if item.get(..2) != Some(scheduler) {
                    return Err(SchedFlagError::Incompatible(item.to_owned()));
                }
                if item.ends_with("fallback") {
                    FALLBACK
                } else {
                    PORT
                }
            }
            _ => {
                let invalid = || SchedFlagError::Invalid(item.to_owned());
                let (key, value) = item.split_once('=').ok_or_else(invalid)?;
                let key_ok = !key.is_empty()
                    && key.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    });
                let value_ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
                // A repeated key would leave the plugin to guess which one was meant.
                if !key_ok || !value_ok || flags.options.iter().any(|(k, _)| *k == key) {
                    return Err(invalid());
                }
                flags.options.push((key, value));
                continue;
            }
        };
        flags.bits |= bit;
    }
    Ok(flags)
}

/// ipvsadm's names of the three bits for `scheduler`, in its order.
fn bit_names(scheduler: &str) -> [(u8, &'static str); 3] {
    match scheduler {
        "sh" => [
            (FALLBACK, "sh-fallback"),
            (PORT, "sh-port"),
            (FLAG3, "flag-3"),
        ],
        "mh" => [
            (FALLBACK, "mh-fallback"),
            (PORT, "mh-port"),
            (FLAG3, "flag-3"),
        ],
        _ => [(FALLBACK, "flag-1"), (PORT, "flag-2"), (FLAG3, "flag-3")],
    }
}

/// Checks `-b` `text` for `scheduler` as ipvsadm does and returns its canonical spelling
/// (what listings and `-S` print; empty when there are no flags).
pub fn normalize(scheduler: &str, text: &str) -> Result<String, SchedFlagError> {
    let flags = parse(scheduler, text)?;
    let mut out: Vec<String> = bit_names(scheduler)
        .iter()
        .filter(|(bit, _)| flags.bits & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    out.extend(flags.options.iter().map(|(k, v)| format!("{k}={v}")));
    Ok(out.join(","))
}

/// The option string the `scheduler` plugin is created with for the stored `-b` text.
/// Text that does not parse is passed as it is, for the plugin to refuse with its reason.
pub fn plugin_options(scheduler: &str, text: &str) -> String {
    let Ok(flags) = parse(scheduler, text) else {
        return text.to_owned();
    };
    let mut out: Vec<String> = Vec::new();
    if matches!(scheduler, "sh" | "mh") {
        if flags.bits & FALLBACK != 0 {
            out.push("fallback".to_owned());
        }
        if flags.bits & PORT != 0 {
            out.push("port".to_owned());
        }
    }
    out.extend(flags.options.iter().map(|(k, v)| format!("{k}={v}")));
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvsadm_flags_in_ipvsadm_order_and_names() {
        assert_eq!(
            normalize("sh", "sh-port,sh-fallback,sh-port"),
            Ok("sh-fallback,sh-port".into())
        );
        assert_eq!(
            normalize("sh", "flag-2,flag-3"),
            Ok("sh-port,flag-3".into())
        );
        assert_eq!(normalize("mh", "mh-port"), Ok("mh-port".into()));
        assert_eq!(
            normalize("rr", "flag-3,,flag-1"),
            Ok("flag-1,flag-3".into())
        );
        assert_eq!(normalize("rr", ""), Ok(String::new()));
    }

    #[test]
    fn ipvsadm_refusals() {
        let inc = |f: &str| Err(SchedFlagError::Incompatible(f.into()));
        let inv = |f: &str| Err(SchedFlagError::Invalid(f.into()));
        assert_eq!(normalize("rr", "sh-port"), inc("sh-port"));
        assert_eq!(normalize("sh", "mh-fallback"), inc("mh-fallback"));
        assert_eq!(normalize("mh", "sh-port"), inc("sh-port"));
        assert_eq!(normalize("shx", "sh-port"), inc("sh-port"));
        assert_eq!(normalize("sh", "port"), inv("port"));
        assert_eq!(normalize("sh", "sh-port, sh-fallback"), inv(" sh-fallback"));
        assert_eq!(normalize("mh", "Table=1"), inv("Table=1"));
        assert_eq!(normalize("mh", "table_size="), inv("table_size="));
        assert_eq!(normalize("mh", "a=1,a=2"), inv("a=2"));
        assert_eq!(
            "incompatible scheduler flag `sh-port'",
            SchedFlagError::Incompatible("sh-port".into()).to_string()
        );
    }

    #[test]
    fn plugin_options_map_the_bits_and_keep_key_values() {
        let canon = normalize("mh", "table_size=251,mh-port,mh-fallback").unwrap();
        assert_eq!(canon, "mh-fallback,mh-port,table_size=251");
        assert_eq!(plugin_options("mh", &canon), "fallback,port,table_size=251");
        assert_eq!(plugin_options("sh", "sh-port"), "port");
        assert_eq!(plugin_options("rr", "flag-1,flag-2"), "");
        assert_eq!(plugin_options("twos", "seed=7"), "seed=7");
        assert_eq!(plugin_options("sh", "bogus"), "bogus");
    }
}
