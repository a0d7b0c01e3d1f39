//! CPU time from Linux's `/proc/<pid>/stat` and `/proc/<pid>/task/<tid>/stat`, for the
//! measurements that report a process's (or each thread's) own CPU.

/// USER_HZ, the unit of `/proc`'s times: 100 on Linux.
const TICKS_PER_SEC: f64 = 100.0;

/// The name and the CPU seconds (user + system) of one `stat` file's text; `None` if it is
/// not in `stat`'s format.
pub fn name_and_cpu_secs(stat: &str) -> Option<(&str, f64)> {
    // "pid (comm) state ...": the name may hold spaces and parentheses, so it ends at the
    // last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name.
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((name, (ticks(11)? + ticks(12)?) / TICKS_PER_SEC))
}

/// CPU seconds (user + system, all threads) this process has used so far; `None` where
/// `/proc/self/stat` cannot be read.
pub fn own_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    name_and_cpu_secs(&stat).map(|(_, secs)| secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_name_with_spaces_and_the_cpu_fields() {
        // Fields after the name: state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt,
        // cminflt, majflt, cmajflt, utime (250), stime (50), ...
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(name_and_cpu_secs(stat), Some(("a (b) c", 3.0)));
        assert_eq!(name_and_cpu_secs("42 (x) S 1"), None);
        assert_eq!(name_and_cpu_secs("no name here"), None);
    }
}
