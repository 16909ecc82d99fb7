//! Unit-name rules: escaping of name components, slice-name validation and the cgroup
//! path systemd gives a slice.

use std::path::PathBuf;

/// The longest unit name systemd accepts (`UNIT_NAME_MAX`, including the suffix).
pub const MAX_UNIT_NAME: usize = 255;

const SLICE_SUFFIX: &str = ".slice";

/// Escapes `s` for use inside a unit name, like systemd's `unit_name_escape` except that
/// '-' is kept as is (the caller decides what a dash means, e.g. slice nesting).
///
/// Bytes in `[A-Za-z0-9:_.-]` stay, a leading '.' becomes `\x2e` (a unit name must not
/// start with one), every other byte becomes `\xHH` in lowercase hex.
pub fn escape_unit_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        let keep =
            b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-') || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Reverses [`escape_unit_component`]: every `\xHH` becomes the byte it names. Returns
/// `None` for a malformed escape or when the bytes are not UTF-8.
pub fn unescape_unit_component(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) != Some(&b'x') {
                return None;
            }
            let hi = hex_digit(*bytes.get(i + 2)?)?;
            let lo = hex_digit(*bytes.get(i + 3)?)?;
            out.push(hi << 4 | lo);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Checks that `name` is a slice systemd accepts and that can hold containers.
///
/// The error says what is wrong and what to do instead.
pub fn validate_slice_name(name: &str) -> Result<(), String> {
    let Some(stem) = name.strip_suffix(SLICE_SUFFIX) else {
        return Err(format!(
            "slice name '{name}' must end in '.slice' (for example 'holdfast_containers.slice')"
        ));
    };
    if stem == "-" {
        return Err(format!(
            "'{name}' is the root slice; containers need a slice of their own, for example \
             'holdfast_containers.slice'"
        ));
    }
    if stem.is_empty() {
        return Err(format!(
            "slice name '{name}' has nothing before '.slice'; name the slice, for example \
             'holdfast_containers.slice'"
        ));
    }
    if name.len() > MAX_UNIT_NAME {
        return Err(format!(
            "slice name '{name}' is {} bytes long; systemd accepts at most {MAX_UNIT_NAME}",
            name.len()
        ));
    }
    if let Some(c) = stem
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '\\' | '-')))
    {
        return Err(format!(
            "slice name '{name}' contains '{}'; use only letters, digits and ':_.-' (escape \
             other characters as \\xHH)",
            c.escape_default()
        ));
    }
    // '-' separates nesting levels, so an empty level is meaningless to systemd.
    if stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(format!(
            "slice name '{name}' has an empty nesting level: '-' separates parent and child \
             slices, so it must not lead, trail or repeat (for example 'holdfast-containers.slice')"
        ));
    }
    Ok(())
}

/// The cgroup path, relative to the cgroup2 root, systemd gives slice `name`: every
/// '-'-separated prefix is a parent slice, so `a-b-c.slice` lives at
/// `a.slice/a-b.slice/a-b-c.slice`. The root slice `-.slice` is the root (an empty path).
/// Components are escaped as systemd's `cg_escape` does (e.g. `cpu.slice` is `_cpu.slice`
/// so it cannot clash with the kernel's `cpu.*` files). Expects a valid slice name.
pub fn slice_cgroup_path(name: &str) -> PathBuf {
    let stem = name.strip_suffix(SLICE_SUFFIX).unwrap_or(name);
    let mut path = PathBuf::new();
    if stem == "-" || stem.is_empty() {
        return path;
    }
    for (i, _) in stem.match_indices('-') {
        path.push(cg_escape(&format!("{}{SLICE_SUFFIX}", &stem[..i])));
    }
    path.push(cg_escape(&format!("{stem}{SLICE_SUFFIX}")));
    path
}

/// systemd's `cg_escape`: a name that could clash with a kernel interface file, or that
/// starts with '_' (so unescaping stays unambiguous), gets a '_' prefix.
fn cg_escape(name: &str) -> String {
    const KERNEL_NAMES: [&str; 3] = ["notify_on_release", "release_agent", "tasks"];
    // systemd's cgroup_controller_table: files named "<controller>.<x>" are the kernel's.
    const CONTROLLERS: [&str; 13] = [
        "cpu",
        "cpuacct",
        "cpuset",
        "io",
        "blkio",
        "memory",
        "devices",
        "pids",
        "bpf-firewall",
        "bpf-devices",
        "bpf-foreign",
        "bpf-socket-bind",
        "bpf-restrict-network-interfaces",
    ];
    let clash = name.is_empty()
        || name.starts_with(['_', '.'])
        || KERNEL_NAMES.contains(&name)
        || name.starts_with("cgroup.")
        || name
            .rfind('.')
            .is_some_and(|dot| CONTROLLERS.contains(&&name[..dot]));
    if clash {
        format!("_{name}")
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_safe_bytes_and_dashes() {
        assert_eq!(escape_unit_component("web-1:a_b.c"), "web-1:a_b.c");
        assert_eq!(escape_unit_component(""), "");
    }

    #[test]
    fn escape_hex_encodes_the_rest() {
        assert_eq!(escape_unit_component("a/b c"), "a\\x2fb\\x20c");
        assert_eq!(escape_unit_component(".hidden"), "\\x2ehidden");
        assert_eq!(escape_unit_component("a.b"), "a.b");
        assert_eq!(escape_unit_component("a\\b"), "a\\x5cb");
        assert_eq!(escape_unit_component("é"), "\\xc3\\xa9");
        assert_eq!(escape_unit_component("@"), "\\x40");
    }

    #[test]
    fn unescape_inverts_escape() {
        for s in [
            "",
            "plain",
            ".dot",
            "a/b c",
            "é-ü",
            "x\\y",
            "tab\there",
            "\\x41",
        ] {
            assert_eq!(
                unescape_unit_component(&escape_unit_component(s)).as_deref(),
                Some(s)
            );
        }
        assert_eq!(unescape_unit_component("\\x2Efoo").as_deref(), Some(".foo"));
    }

    #[test]
    fn unescape_rejects_malformed() {
        assert_eq!(unescape_unit_component("a\\"), None);
        assert_eq!(unescape_unit_component("a\\x"), None);
        assert_eq!(unescape_unit_component("a\\x4"), None);
        assert_eq!(unescape_unit_component("a\\xzz"), None);
        assert_eq!(unescape_unit_component("a\\y41"), None);
        // A lone continuation byte is not UTF-8.
        assert_eq!(unescape_unit_component("\\x80"), None);
    }

    #[test]
    fn slice_names_accepted() {
        for name in [
            "holdfast_containers.slice",
            "a-b-c.slice",
            "x.y.slice",
            "a:b.slice",
            "a\\x2fb.slice",
        ] {
            assert_eq!(validate_slice_name(name), Ok(()), "{name}");
        }
        let long = format!("{}.slice", "a".repeat(MAX_UNIT_NAME - 6));
        assert_eq!(validate_slice_name(&long), Ok(()));
    }

    #[test]
    fn slice_names_refused() {
        let cases = [
            ("holdfast.scope", "must end in '.slice'"),
            ("holdfast", "must end in '.slice'"),
            (".slice", "nothing before"),
            ("-.slice", "containers need a slice of their own"),
            ("-a.slice", "empty nesting level"),
            ("a-.slice", "empty nesting level"),
            ("a--b.slice", "empty nesting level"),
            ("a b.slice", "contains ' '"),
            ("a/b.slice", "contains '/'"),
            ("a@b.slice", "contains '@'"),
        ];
        for (name, want) in cases {
            let err = validate_slice_name(name).expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
        let long = format!("{}.slice", "a".repeat(MAX_UNIT_NAME - 5));
        let err = validate_slice_name(&long).expect_err("too long");
        assert!(err.contains("at most 255"), "{err}");
    }

    #[test]
    fn slice_paths_nest_on_dashes() {
        assert_eq!(
            slice_cgroup_path("holdfast_containers.slice"),
            PathBuf::from("holdfast_containers.slice")
        );
        assert_eq!(
            slice_cgroup_path("a-b-c.slice"),
            PathBuf::from("a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(
            slice_cgroup_path("system-holdfast.slice"),
            PathBuf::from("system.slice/system-holdfast.slice")
        );
        assert_eq!(slice_cgroup_path("-.slice"), PathBuf::new());
    }

    #[test]
    fn slice_paths_escape_like_systemd() {
        assert_eq!(slice_cgroup_path("cpu.slice"), PathBuf::from("_cpu.slice"));
        assert_eq!(
            slice_cgroup_path("io-x.slice"),
            PathBuf::from("_io.slice/io-x.slice")
        );
        assert_eq!(slice_cgroup_path("_x.slice"), PathBuf::from("__x.slice"));
        assert_eq!(slice_cgroup_path("cpux.slice"), PathBuf::from("cpux.slice"));
    }
}
