//! The rules a member of a sandbox's tar stream must follow, as pure functions of its bytes.

/// The longest file name the host takes (Linux `NAME_MAX`).
pub(crate) const NAME_MAX: usize = 255;

/// A member's path split into its components: no leading `/`, no `..`, no NUL, no
/// component over [`NAME_MAX`] bytes; empty and `.` components dropped. An empty result names
/// the extracted folder itself (`./`).
///
/// # Errors
///
/// The rule the path breaks, as a phrase that follows "the member".
pub(crate) fn components(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.contains(&0) {
        return Err("has a NUL byte in its name");
    }
    if raw.first() == Some(&b'/') {
        return Err("has an absolute path");
    }
    let mut parts = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("has a `..` component"),
            _ if part.len() > NAME_MAX => {
                return Err("has a name longer than 255 bytes, the host's limit");
            }
            _ => parts.push(part),
        }
    }
    Ok(parts)
}

/// Whether a symlink whose parent folder is `depth` levels below the extracted folder, with
/// this target, can only ever resolve inside that folder.
///
/// Accepted: relative targets whose `..` components all come first and climb at most `depth`
/// levels (`../lib/x.so`, `data/file`, `.`). Everything past those `..` descends, and every
/// link met on the way down is itself held to this rule, so a chain of accepted links stays
/// inside too. Refused: absolute targets, targets that climb out, and `..` after a normal
/// component (`a/../..`): what `a/..` means depends on whether `a` is a link, which a lexical
/// check cannot know.
pub(crate) fn link_stays_inside(depth: usize, target: &[u8]) -> bool {
    if target.is_empty() || target.contains(&0) || target.first() == Some(&b'/') {
        return false;
    }
    let mut climbs = 0usize;
    let mut descended = false;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if descended => return false,
            b".." => climbs += 1,
            _ => descended = true,
        }
    }
    climbs <= depth
}

/// The octal permission bits written for a member: never setuid, setgid or sticky, and
/// without group and other write unless `keep_write` says so.
pub(crate) fn permissions(mode: u32, keep_write: bool) -> u32 {
    let mode = mode & 0o777;
    if keep_write { mode } else { mode & !0o022 }
}

/// A member name for messages: valid UTF-8 shown as is, other bytes escaped, control
/// characters escaped (a name cannot move the cursor of whoever reads the error).
pub(crate) fn shown(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert_eq!(components(b"./a/b").unwrap(), [b"a" as &[u8], b"b"]);
        assert_eq!(
            components(b"a//b/./c/").unwrap(),
            [b"a" as &[u8], b"b", b"c"]
        );
        assert!(components(b"./").unwrap().is_empty());
        assert!(components(b".").unwrap().is_empty());
        assert_eq!(
            components(b"it's a\nname").unwrap(),
            [b"it's a\nname" as &[u8]]
        );
        assert_eq!(components(b"/etc/passwd"), Err("has an absolute path"));
        assert_eq!(components(b"a/../../x"), Err("has a `..` component"));
        assert_eq!(components(b".."), Err("has a `..` component"));
        assert_eq!(components(b"a\0b"), Err("has a NUL byte in its name"));
        let long = vec![b'x'; 256];
        assert!(components(&long).is_err());
        assert!(components(&long[..255]).is_ok());
    }

    #[test]
    fn link_targets() {
        assert!(link_stays_inside(0, b"src/main.py"));
        assert!(link_stays_inside(0, b"."));
        assert!(link_stays_inside(1, b"../x"));
        assert!(link_stays_inside(2, b"../../x/y"));
        assert!(link_stays_inside(1, b"./../x"));
        assert!(!link_stays_inside(0, b"../x"));
        assert!(!link_stays_inside(1, b"../../x"));
        assert!(!link_stays_inside(3, b"a/../../x"));
        assert!(!link_stays_inside(3, b"/etc"));
        assert!(!link_stays_inside(3, b""));
        assert!(!link_stays_inside(3, b"a\0"));
    }

    #[test]
    fn modes_lose_special_and_shared_write_bits() {
        assert_eq!(permissions(0o4755, false), 0o755);
        assert_eq!(permissions(0o2775, false), 0o755);
        assert_eq!(permissions(0o1777, false), 0o755);
        assert_eq!(permissions(0o1777, true), 0o777);
        assert_eq!(permissions(0o100_640, false), 0o640);
    }

    #[test]
    fn names_are_shown_inert() {
        assert_eq!(shown(b"a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(shown(b"caf\xc3\xa9"), "café");
        assert_eq!(shown(b"\xff"), "\u{fffd}");
    }
}
