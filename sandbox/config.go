package sandbox

import (
	"path/filepath"

	"github.com/opencontainers/cgroups"
	devconfig "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"golang.org/x/sys/unix"
)

// maskedPaths and readonlyPaths are runc's defaults (runc spec): kernel
// interfaces a function has no business reading or writing.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
	// rootCaps is what a root image keeps: enough to own and signal its own
	// files and processes, nothing that reaches the host (no NET_RAW, no
	// MKNOD, no SYS_CHROOT, no SETFCAP). Non-root images get none at all.
	rootCaps = []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
		"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_NET_BIND_SERVICE",
	}
)

// Standard device nodes only: null, zero, full, random, urandom, tty (and
// the ptmx of the sandbox's own devpts). No host device reaches a function.
func allowedDevices() ([]*devconfig.Device, []*devconfig.Rule) {
	var devs []*devconfig.Device
	var rules []*devconfig.Rule
	for _, d := range specconv.AllowedDevices {
		rules = append(rules, &d.Rule)
		if d.Path != "" {
			devs = append(devs, d)
		}
	}
	return devs, rules
}

// containerConfig is the hardened libcontainer configuration of DESIGN.md
// section 6: private mount, pid, ipc, uts, net (loopback only) and cgroup
// namespaces; the image root mounted read-only (shared by every instance of
// the image); a size-limited tmpfs at /tmp; no_new_privs; masked /proc and
// /sys paths; rlimits never above the agent's own hard limits.
func (m *Manager) containerConfig(spec Spec) *configs.Config {
	const mntFlags = unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV
	devs, rules := allowedDevices()
	res := spec.Limits.Resources()
	res.Devices = rules
	if m.noSwapAccounting {
		res.MemorySwap = 0
	}
	caps := []string{}
	if spec.UID == 0 {
		caps = rootCaps
	}
	capset := &configs.Capabilities{Bounding: caps, Effective: caps, Permitted: caps}
	tmpSize := spec.TmpBytes
	if tmpSize <= 0 {
		tmpSize = DefaultTmpBytes
	}
	return &configs.Config{
		Rootfs:          spec.Root,
		Readonlyfs:      true,
		NoNewPrivileges: true,
		Hostname:        spec.Hostname,
		Capabilities:    capset,
		Namespaces: configs.Namespaces{
			{Type: configs.NEWNS}, {Type: configs.NEWUTS}, {Type: configs.NEWIPC},
			{Type: configs.NEWPID}, {Type: configs.NEWNET}, {Type: configs.NEWCGROUP},
		},
		// A new network namespace with only loopback up: the agent reaches
		// http-mode functions by dialing inside it (see Sandbox.Dial).
		Networks: []*configs.Network{{Type: "loopback"}},
		Cgroups: &cgroups.Cgroup{
			Path:      filepath.Join("/", m.cfg.CgroupParent, spec.ID),
			Resources: res,
		},
		Devices:       devs,
		MaskPaths:     maskedPaths,
		ReadonlyPaths: readonlyPaths,
		Rlimits:       m.rlimits,
		Mounts: []*configs.Mount{
			{Source: "proc", Destination: "/proc", Device: "proc", Flags: mntFlags},
			{Source: "tmpfs", Destination: "/dev", Device: "tmpfs",
				Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"},
			{Source: "devpts", Destination: "/dev/pts", Device: "devpts",
				Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620"},
			{Source: "shm", Destination: "/dev/shm", Device: "tmpfs",
				Flags: mntFlags, Data: "mode=1777,size=65536k"},
			{Source: "mqueue", Destination: "/dev/mqueue", Device: "mqueue", Flags: mntFlags},
			{Source: "sysfs", Destination: "/sys", Device: "sysfs", Flags: mntFlags | unix.MS_RDONLY},
			{Source: "tmpfs", Destination: "/tmp", Device: "tmpfs",
				Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777,size=" + itoa(tmpSize)},
		},
	}
}

// ownRlimits caps every rlimit we set at the agent's own hard limit: the
// agent lacks CAP_SYS_RESOURCE on some gateways (and on our CI machines), and
// libcontainer fails the whole start with "error setting rlimit" when a
// config asks for more than the hard limit allows.
func ownRlimits() []configs.Rlimit {
	want := []struct {
		typ int
		val uint64
	}{
		{unix.RLIMIT_NOFILE, 4096},
		{unix.RLIMIT_CORE, 0},
	}
	var out []configs.Rlimit
	for _, w := range want {
		var cur unix.Rlimit
		if err := unix.Getrlimit(w.typ, &cur); err != nil {
			continue
		}
		v := min(w.val, cur.Max)
		out = append(out, configs.Rlimit{Type: w.typ, Hard: v, Soft: v})
	}
	return out
}
