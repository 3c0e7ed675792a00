package integration

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pkgName is the Debian package `make deb` writes.
const pkgName = "edgefaas"

// pkgPaths are what the package installs and the enable step creates, in
// dpkg's view of the system; none may exist before the test.
var pkgPaths = []string{
	"/usr/bin/edgefaasd",
	"/usr/bin/edgefaas",
	"/etc/edgefaas",
	"/lib/systemd/system/edgefaasd.service",
	"/lib/systemd/system/edgefaasd.socket",
	"/lib/systemd/system/edgefaasd-gateway.socket",
	"/etc/systemd/system/edgefaasd.service", // `edgefaasd install` writes here
	"/etc/systemd/system/multi-user.target.wants/edgefaasd.service",
	"/etc/systemd/system/sockets.target.wants/edgefaasd.socket",
	"/etc/systemd/system/sockets.target.wants/edgefaasd-gateway.socket",
}

// TestPkgDebInstallUpgradeRemovePurge builds the amd64 package as `make deb`
// does and installs it on this machine with the real dpkg, so that the
// maintainer scripts really run against the installed files (CI machines
// are throwaway and the test runs as root). No systemd runs here, which is
// the image-building case: postinst must enable the agent offline, and
// nothing may try to start it. It checks what the units expect is where
// they expect it, that a reinstall keeps an edited conffile and the enable
// state, that `dpkg -r` disables the agent and keeps only the conffile,
// and that `dpkg -P` leaves nothing. It always purges at the end.
func TestPkgDebInstallUpgradeRemovePurge(t *testing.T) {
	for _, tool := range []string{"dpkg", "dpkg-query", "systemctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian; systemctl from the systemd package): %v", tool, err)
		}
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd is running here: installing would start a second agent on :8080; run on a machine without systemd as PID 1 (CI)")
	}
	if st := pkgStatus(t); st != "" {
		t.Skipf("package %s is already on this machine (%s): not touching it", pkgName, st)
	}
	for _, p := range pkgPaths {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists and is not from the %s package: not overwriting it", p, pkgName)
		}
	}
	const version = "0.0.0~pkgtest"
	deb := pkgBuildDeb(t, version, "pkgtest")

	t.Cleanup(func() {
		if pkgStatus(t) != "" {
			if out, err := pkgDpkg("-P", pkgName); err != nil {
				t.Errorf("cleanup: dpkg -P %s: %v\n%s", pkgName, err, out)
			}
		}
	})

	t.Log("dpkg -i (fresh install)")
	pkgMustDpkg(t, "-i", deb)
	if st := pkgStatus(t); st != "install ok installed" {
		t.Fatalf("status after dpkg -i: %q, want installed", st)
	}
	units := pkgCheckInstalled(t)
	pkgCheckScriptsNameEveryUnit(t, units)

	// A reinstall runs prerm upgrade, then postinst configure, as an
	// upgrade does; an edited conffile must survive it.
	edited := pkgReadFile(t, "/etc/edgefaas/agent.conf") + "retention = 72h\n"
	if err := os.WriteFile("/etc/edgefaas/agent.conf", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("dpkg -i again (upgrade path, edited conffile)")
	pkgMustDpkg(t, "-i", deb)
	if got := pkgReadFile(t, "/etc/edgefaas/agent.conf"); got != edited {
		t.Errorf("agent.conf after reinstall:\n%s\nwant the edited one:\n%s", got, edited)
	}
	pkgCheckInstalled(t)

	t.Log("dpkg -r")
	pkgMustDpkg(t, "-r", pkgName)
	if st := pkgStatus(t); st != "deinstall ok config-files" {
		t.Errorf("status after dpkg -r: %q, want config-files", st)
	}
	for _, p := range pkgPaths {
		if p == "/etc/edgefaas" {
			continue
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after dpkg -r (lstat: %v)", p, err)
		}
	}
	if got := pkgReadFile(t, "/etc/edgefaas/agent.conf"); got != edited {
		t.Errorf("dpkg -r changed or dropped the conffile: got\n%s", got)
	}

	t.Log("dpkg -P")
	pkgMustDpkg(t, "-P", pkgName)
	if st := pkgStatus(t); st != "" {
		t.Errorf("status after dpkg -P: %q, want not installed", st)
	}
	for _, p := range pkgPaths {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after dpkg -P (lstat: %v)", p, err)
		}
	}
}

// pkgCheckInstalled checks the installed package against what its units
// expect, and returns the names of the units it installed.
func pkgCheckInstalled(t *testing.T) []string {
	t.Helper()
	listed, err := exec.Command("dpkg", "-L", pkgName).Output()
	if err != nil {
		t.Fatalf("dpkg -L %s: %v", pkgName, err)
	}
	var units []string
	for _, f := range strings.Fields(string(listed)) {
		if filepath.Dir(f) == "/lib/systemd/system" {
			units = append(units, filepath.Base(f))
		}
	}
	want := []string{"edgefaasd-gateway.socket", "edgefaasd.service", "edgefaasd.socket"}
	slices.Sort(units)
	if !slices.Equal(units, want) {
		t.Errorf("units in the package: %q, want %q (edgecloud.service belongs to a later package)", units, want)
	}

	// The service's ExecStart and its --config file.
	service := pkgUnit(t, "/lib/systemd/system/edgefaasd.service")
	exe := strings.Fields(service["ExecStart"][0])
	bin := strings.TrimLeft(exe[0], "-@+!:")
	if fi, err := os.Stat(bin); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		t.Errorf("ExecStart %s: not an executable file (%v, %v)", bin, fi, err)
	}
	config := ""
	if i := slices.Index(exe, "--config"); i >= 0 && i+1 < len(exe) {
		config = exe[i+1]
	}
	if config != "/etc/edgefaas/agent.conf" {
		t.Errorf("ExecStart %q: want --config /etc/edgefaas/agent.conf", service["ExecStart"][0])
	}
	// Depends: glibc only, at the version the binaries' symbols need.
	if deps, err := exec.Command("dpkg-query", "-W", "-f=${Depends}", pkgName).Output(); err != nil ||
		!strings.HasPrefix(string(deps), "libc6 (>= 2.") || strings.Contains(string(deps), ",") {
		t.Errorf("Depends of %s: %q (%v), want only libc6 (>= 2.x)", pkgName, deps, err)
	}
	conffiles, err := exec.Command("dpkg-query", "-W", "-f=${Conffiles}", pkgName).Output()
	if err != nil || !strings.Contains(string(conffiles), "/etc/edgefaas/agent.conf ") {
		t.Errorf("conffiles of %s: %q (%v), want /etc/edgefaas/agent.conf", pkgName, conffiles, err)
	}
	// The installed binary accepts the installed configuration (--version
	// exits after reading it).
	out, err := exec.Command(bin, "--config", config, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "edgefaasd pkgtest") {
		t.Errorf("%s --config %s --version: %q, %v; want \"edgefaasd pkgtest\"", bin, config, out, err)
	}
	if out, err := exec.Command("/usr/bin/edgefaas", "version").CombinedOutput(); !strings.HasPrefix(string(out), "edgefaas pkgtest") {
		t.Errorf("edgefaas version: %q, %v", out, err)
	}

	// Every unit the service and sockets name is in the package.
	var named []string
	for _, key := range []string{"Sockets", "Also"} {
		for _, v := range service[key] {
			named = append(named, strings.Fields(v)...)
		}
	}
	for _, u := range units {
		if strings.HasSuffix(u, ".socket") {
			named = append(named, pkgUnit(t, "/lib/systemd/system/"+u)["Service"]...)
		}
	}
	for _, u := range named {
		if !slices.Contains(units, u) {
			t.Errorf("%s is named by the units but not in the package", u)
		}
	}

	// postinst enabled the service (and, by Also=, its sockets) offline.
	for link, unit := range map[string]string{
		"/etc/systemd/system/multi-user.target.wants/edgefaasd.service":     "edgefaasd.service",
		"/etc/systemd/system/sockets.target.wants/edgefaasd.socket":         "edgefaasd.socket",
		"/etc/systemd/system/sockets.target.wants/edgefaasd-gateway.socket": "edgefaasd-gateway.socket",
	} {
		lfi, err := os.Lstat(link)
		if err != nil || lfi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: want the enable symlink (%v, %v)", link, lfi, err)
			continue
		}
		got, err1 := os.Stat(link)
		want, err2 := os.Stat("/lib/systemd/system/" + unit)
		if err1 != nil || err2 != nil || !os.SameFile(got, want) {
			target, _ := os.Readlink(link)
			t.Errorf("%s -> %s: want the packaged %s (%v, %v)", link, target, unit, err1, err2)
		}
	}
	if out, err := exec.Command("systemctl", "is-enabled", "edgefaasd.service").Output(); strings.TrimSpace(string(out)) != "enabled" {
		t.Errorf("systemctl is-enabled edgefaasd.service: %q, %v", out, err)
	}
	// systemd's own check: it fails when ExecStart is not executable or a
	// named unit is missing; unknown keys only warn.
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command("systemd-analyze", "verify", "/lib/systemd/system/edgefaasd.service").CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze verify edgefaasd.service: %v\n%s", err, out)
		} else if len(out) > 0 {
			t.Logf("systemd-analyze verify edgefaasd.service:\n%s", out)
		}
	}
	return units
}

// pkgCheckScriptsNameEveryUnit: prerm stops the units by name, so a unit
// added to the package must be added there too.
func pkgCheckScriptsNameEveryUnit(t *testing.T, units []string) {
	t.Helper()
	prerm := pkgReadFile(t, filepath.Join(built.moduleRoot, "packaging/prerm"))
	for _, u := range units {
		if !strings.Contains(prerm, u) {
			t.Errorf("packaging/prerm does not stop %s: a running agent would survive its removal", u)
		}
	}
}

// pkgUnit reads a unit file into key -> values (every section together;
// the keys used here are unique across sections).
func pkgUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(pkgReadFile(t, path)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[strings.TrimSpace(k)] = append(out[strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if len(out["ExecStart"]) == 0 && strings.HasSuffix(path, ".service") {
		t.Fatalf("%s: no ExecStart", path)
	}
	return out
}

// pkgBuildDeb builds the amd64 binaries and package as `make deb` does
// (packaging/cross.sh, then packaging/deb.sh, which runs nfpm) into a
// temporary directory, stamped with appVersion, and returns the .deb.
func pkgBuildDeb(t *testing.T, debVersion, appVersion string) string {
	t.Helper()
	dist := t.TempDir()
	env := append(os.Environ(), "DIST="+dist,
		"LDFLAGS=-X github.com/edgefaas/edgefaas/api.Version="+appVersion)
	if out, err := pkgRun(env, "go", "run", pkgNfpm, "--version"); err != nil {
		t.Skipf("nfpm unavailable (go run %s needs the module proxy or a module cache): %v\n%s", pkgNfpm, err, out)
	}
	if out, err := pkgRun(env, "packaging/cross.sh", "amd64"); err != nil {
		t.Fatalf("packaging/cross.sh amd64: %v\n%s", err, out)
	}
	if out, err := pkgRun(env, "packaging/deb.sh", debVersion, "amd64"); err != nil {
		t.Fatalf("packaging/deb.sh: %v\n%s", err, out)
	}
	deb := filepath.Join(dist, pkgName+"_"+debVersion+"_amd64.deb")
	if _, err := os.Stat(deb); err != nil {
		t.Fatal(err)
	}
	return deb
}

// pkgNfpm is the nfpm that packaging/deb.sh runs.
const pkgNfpm = "github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0"

func pkgRun(env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = built.moduleRoot, env
	return cmd.CombinedOutput()
}

// pkgDpkg runs dpkg non-interactively, keeping a locally changed conffile.
func pkgDpkg(args ...string) ([]byte, error) {
	cmd := exec.Command("dpkg", append([]string{"--force-confdef", "--force-confold"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func pkgMustDpkg(t *testing.T, args ...string) {
	t.Helper()
	out, err := pkgDpkg(args...)
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("dpkg %s:\n%s", strings.Join(args, " "), out)
}

// pkgStatus is dpkg's status of the package ("install ok installed",
// "deinstall ok config-files"), or "" when dpkg does not know it.
func pkgStatus(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkgName).Output()
	if err != nil {
		return "" // "no packages found matching edgefaas"
	}
	st := strings.TrimSpace(string(out))
	if st == "unknown ok not-installed" || st == "purge ok not-installed" {
		return ""
	}
	return st
}

func pkgReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}
