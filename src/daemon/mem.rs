//! Giving memory back when the daemon goes idle after a burst of work (start-up, a round
//! of refreshes, a reload): the allocator's free heap, and the pages of the program's own
//! code and read-only data that the burst mapped in.
//!
//! Most of an idle daemon's resident memory is not its data but pages of its executable:
//! start-up and a refresh run code spread over the whole binary (argument parsing, the
//! config, HTTP and TLS, rendering), and every page touched stays mapped. Those pages are
//! clean copies of the file, shared with the page cache; unmapping them (`MADV_DONTNEED`)
//! costs nothing but a minor fault if that code runs again, which happens only at the
//! next refresh. Only mappings of the executable that are read-only and hold no private
//! (copy-on-write, possibly swapped) page are touched: relocated data and anything written
//! is never dropped. Linux with glibc; elsewhere this does nothing.

/// Returns free heap to the system and unmaps the executable's clean pages.
pub fn release() {
    trim_heap();
    #[cfg(target_os = "linux")]
    drop_clean_image_pages();
}

fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's arenas to the
    // kernel; it is thread-safe and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A mapping from /proc/self/smaps that may be dropped.
#[derive(Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// The read-only private mappings of `exe` whose every resident page is still the file's
/// (no anonymous and no swapped page). Pure, for testing.
fn clean_image_spans(smaps: &str, exe: &str) -> Vec<Span> {
    let mut out = Vec::new();
    // The mapping being read: its span and whether it may qualify.
    let mut cur: Option<(Span, bool)> = None;
    let mut anon_ok = false;
    let mut swap_ok = false;
    let mut finish = |cur: &mut Option<(Span, bool)>, anon_ok: bool, swap_ok: bool| {
        if let Some((span, true)) = cur.take()
            && anon_ok
            && swap_ok
        {
            out.push(span);
        }
    };
    for line in smaps.lines() {
        if let Some(rest) = line.strip_prefix("Anonymous:") {
            anon_ok = rest.trim() == "0 kB";
            continue;
        }
        if let Some(rest) = line.strip_prefix("Swap:") {
            swap_ok = rest.trim() == "0 kB";
            continue;
        }
        // A mapping header: "start-end perms offset dev inode [path]"; the path may hold
        // spaces, so it is the rest of the line after the fifth field.
        let mut rest = line;
        let mut fields = [""; 5];
        for f in fields.iter_mut() {
            rest = rest.trim_start();
            let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            *f = word;
            rest = tail;
        }
        let Some((a, b)) = fields[0].split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        finish(&mut cur, anon_ok, swap_ok);
        let perms = fields[1];
        let read_only_private = perms.len() == 4 && !perms.contains('w') && perms.ends_with('p');
        (anon_ok, swap_ok) = (false, false);
        cur = Some((
            Span { start, end },
            read_only_private && rest.trim() == exe && end > start,
        ));
    }
    finish(&mut cur, anon_ok, swap_ok);
    out
}

#[cfg(target_os = "linux")]
fn drop_clean_image_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Some(exe) = exe.to_str() else { return };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for s in clean_image_spans(&smaps, exe) {
        // SAFETY: the span is a whole read-only private file mapping of our executable
        // with no private page: dropping it only unmaps page-cache pages, which the next
        // access faults back in unchanged. Nothing can write to it meanwhile (read-only).
        unsafe {
            libc::madvise(
                s.start as *mut libc::c_void,
                s.end - s.start,
                libc::MADV_DONTNEED,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5600-5700 r--p 00000000 08:01 42 /opt/my bin/mcp-credd
Size:                  4 kB
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
5700-5900 r-xp 00001000 08:01 42 /opt/my bin/mcp-credd
Rss:                   8 kB
Anonymous:             0 kB
Swap:                  0 kB
5900-5a00 r--p 00003000 08:01 42 /opt/my bin/mcp-credd
Anonymous:             4 kB
Swap:                  0 kB
5a00-5b00 r--p 00004000 08:01 42 /opt/my bin/mcp-credd
Anonymous:             0 kB
Swap:                  4 kB
5b00-5c00 rw-p 00005000 08:01 42 /opt/my bin/mcp-credd
Anonymous:             0 kB
Swap:                  0 kB
7f00-7f10 r-xp 00000000 08:01 7 /usr/lib/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
7f10-7f20 r--p 00000000 00:00 0
Anonymous:             0 kB
Swap:                  0 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_the_executable() {
        assert_eq!(
            clean_image_spans(SMAPS, "/opt/my bin/mcp-credd"),
            [
                Span {
                    start: 0x5600,
                    end: 0x5700
                },
                Span {
                    start: 0x5700,
                    end: 0x5900
                }
            ],
            "copy-on-write, swapped, writable, other files and anonymous mappings stay"
        );
        assert!(clean_image_spans(SMAPS, "/other").is_empty());
        assert!(clean_image_spans("", "/x").is_empty());
    }

    #[test]
    fn release_is_harmless_in_a_running_process() {
        // Drops this test binary's clean pages and goes on running its code.
        release();
        release();
        assert_eq!(clean_image_spans(SMAPS, "/opt/my bin/mcp-credd").len(), 2);
    }
}
