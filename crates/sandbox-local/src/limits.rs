//! What a sandbox may use, from its component's `instance_size_slug`: memory, CPU, processes,
//! and the sizes of its `/home/sandbox` and `/tmp` (both memory-backed, so also bounded by the
//! memory limit).

use appspec::{DEFAULT_INSTANCE_SIZE, InstanceSize};

/// The CFS period every sandbox's CPU quota is expressed in (100 ms, the kernel's default).
pub(crate) const CPU_PERIOD_US: u64 = 100_000;

/// The limits of one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The instance size they come from.
    pub slug: &'static str,
    /// Memory (and memory plus swap), bytes.
    pub memory_bytes: u64,
    /// Virtual CPUs: the CPU quota is this many periods per period.
    pub vcpus: u32,
    /// Processes and threads, all together.
    pub pids: u32,
    /// Size of `/home/sandbox`, MiB.
    pub home_mib: u32,
    /// Size of `/tmp`, MiB.
    pub tmp_mib: u32,
}

impl Limits {
    /// The limits of an instance size; an empty or unknown slug gets App Platform's default
    /// size (`apps-s-1vcpu-1gb`; the spec was validated before, so only an empty one reaches
    /// here in practice).
    pub fn of_slug(slug: &str) -> Limits {
        let size = appspec::instance_size(slug)
            .or_else(|| appspec::instance_size(DEFAULT_INSTANCE_SIZE))
            .unwrap_or(appspec::INSTANCE_SIZE_RESOURCES[0]);
        Limits::of_size(size)
    }

    fn of_size(size: InstanceSize) -> Limits {
        Limits {
            slug: size.slug,
            memory_bytes: u64::from(size.memory_mib) * 1024 * 1024,
            vcpus: size.vcpus.max(1),
            // 1024 per vCPU: room for a build's parallel jobs, not for a fork bomb.
            pids: 1024 * size.vcpus.max(1),
            home_mib: size.memory_mib,
            tmp_mib: (size.memory_mib / 2).max(64),
        }
    }

    /// The CPU quota per [`CPU_PERIOD_US`], microseconds.
    pub fn cpu_quota_us(&self) -> i64 {
        i64::from(self.vcpus) * CPU_PERIOD_US as i64
    }

    /// The memory limit in MiB (for messages).
    pub fn memory_mib(&self) -> u64 {
        self.memory_bytes / (1024 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_instance_size() {
        let small = Limits::of_slug("apps-s-1vcpu-0.5gb");
        assert_eq!(small.memory_bytes, 512 * 1024 * 1024);
        assert_eq!((small.vcpus, small.pids), (1, 1024));
        assert_eq!((small.home_mib, small.tmp_mib), (512, 256));
        assert_eq!(small.cpu_quota_us(), 100_000);
        let big = Limits::of_slug("apps-d-2vcpu-8gb");
        assert_eq!((big.memory_mib(), big.vcpus, big.pids), (8192, 2, 2048));
        assert_eq!(Limits::of_slug("").slug, DEFAULT_INSTANCE_SIZE);
    }
}
