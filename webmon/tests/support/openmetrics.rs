//! A strict-enough OpenMetrics text checker (promtool is not on the machine): metadata before
//! samples, unique families, sample names that belong to their family (`_total` for
//! counters), well-formed labels without duplicates, numeric values, stateset values 0/1 with
//! the state label, and the closing `# EOF`.

use std::collections::HashSet;

const TYPES: [&str; 8] = [
    "counter",
    "gauge",
    "stateset",
    "info",
    "histogram",
    "gaugehistogram",
    "summary",
    "unknown",
];

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn valid_label(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Parses `{a="x",b="y"}` starting after the `{`; returns the labels and the rest after `}`.
type Labels = Vec<(String, String)>;

fn labels(s: &str) -> Result<(Labels, &str), String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((out, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_label(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if out.iter().any(|(n, _): &(String, String)| n == name) {
            return Err(format!("label {name} twice"));
        }
        out.push((name.to_owned(), value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// Checks `text`; the number of samples on success, else the first problem with its line.
pub fn check(text: &str) -> Result<usize, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("does not end with \"# EOF\\n\"")?;
    let mut families: HashSet<String> = HashSet::new();
    let mut current: Option<(String, String)> = None; // name, type
    let mut seen_samples_in_current = false;
    let mut series: HashSet<String> = HashSet::new();
    let mut samples = 0;
    for (i, line) in body.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", i + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let mut p = meta.splitn(3, ' ');
            let (kw, name) = (p.next().unwrap_or(""), p.next().unwrap_or(""));
            let arg = p.next();
            if !valid_name(name) {
                return Err(at(format!("bad metric family name {name:?}")));
            }
            let same = current.as_ref().is_some_and(|(n, _)| n == name);
            if !same {
                if !families.insert(name.to_owned()) {
                    return Err(at(format!("family {name} appears twice")));
                }
                current = Some((name.to_owned(), "unknown".into()));
                seen_samples_in_current = false;
            } else if seen_samples_in_current {
                return Err(at("metadata after samples".into()));
            }
            match kw {
                "TYPE" => {
                    let t = arg.ok_or_else(|| at("TYPE without a type".into()))?;
                    if !TYPES.contains(&t) {
                        return Err(at(format!("unknown type {t}")));
                    }
                    if let Some(c) = current.as_mut() {
                        c.1 = t.to_owned();
                    }
                }
                "HELP" | "UNIT" => {}
                other => return Err(at(format!("unknown metadata {other}"))),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("comment that is not metadata".into()));
        }
        let (fam, kind) = current
            .clone()
            .ok_or_else(|| at("sample before any TYPE".into()))?;
        seen_samples_in_current = true;
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        let ok_name = match kind.as_str() {
            "counter" => name == format!("{fam}_total") || name == format!("{fam}_created"),
            "gauge" | "stateset" | "unknown" => name == fam,
            _ => name.starts_with(&fam),
        };
        if !ok_name {
            return Err(at(format!(
                "sample {name} does not belong to {kind} family {fam}"
            )));
        }
        let (lbls, rest) = match line[name_end..].strip_prefix('{') {
            Some(r) => labels(r).map_err(at)?,
            None => (Vec::new(), &line[name_end..]),
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        let mut parts = rest.split(' ');
        let v = parts.next().unwrap_or("");
        let value: f64 = match v {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| at(format!("bad value {v:?}")))?,
        };
        if let Some(ts) = parts.next() {
            ts.parse::<f64>()
                .map_err(|_| at(format!("bad timestamp {ts:?}")))?;
        }
        if parts.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        if kind == "counter" && name.ends_with("_total") && (value.is_nan() || value < 0.0) {
            return Err(at("negative or NaN counter".into()));
        }
        if kind == "stateset" {
            if value != 0.0 && value != 1.0 {
                return Err(at("stateset value not 0 or 1".into()));
            }
            if !lbls.iter().any(|(n, _)| *n == fam) {
                return Err(at(format!("stateset sample without the {fam} label")));
            }
        }
        let mut sorted = lbls.clone();
        sorted.sort();
        if !series.insert(format!("{name}{sorted:?}")) {
            return Err(at("duplicate series".into()));
        }
        samples += 1;
    }
    Ok(samples)
}

#[test]
fn the_checker_itself() {
    assert_eq!(
        check("# TYPE a counter\na_total{x=\"1\"} 3\n# EOF\n"),
        Ok(1)
    );
    assert!(check("# TYPE a counter\na{x=\"1\"} 3\n# EOF\n").is_err());
    assert!(check("# TYPE a gauge\na 1\n").is_err());
    assert!(check("# TYPE a gauge\na 1\n# TYPE a gauge\n# EOF\n").is_err());
    assert!(check("# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n# EOF\n").is_err());
    assert!(check("# TYPE s stateset\ns{s=\"up\"} 2\n# EOF\n").is_err());
    assert!(check("# TYPE a gauge\na{x=\"1} 1\n# EOF\n").is_err());
    assert!(check("# TYPE a gauge\na 1\na 2\n# EOF\n").is_err());
}
