package agent

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// process is how to start a function's program, resolved once at deploy
// from the image config and the spec.
type process struct {
	Root     string
	Args     []string
	Env      []string
	Cwd      string
	UID, GID int
}

func resolveProcess(root string, cfg api.ImageConfig, spec api.FunctionSpec) (process, error) {
	args := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	if len(args) == 0 {
		return process{}, fmt.Errorf("image %q has neither entrypoint nor cmd: %w", spec.Image, errdefs.ErrInvalid)
	}
	uid, gid, err := lookupUser(root, cfg.User)
	if err != nil {
		return process{}, fmt.Errorf("image %q user %q: %w", spec.Image, cfg.User, err)
	}
	cwd := cfg.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	return process{Root: root, Args: args, Env: mergeEnv(cfg.Env, spec.Env), Cwd: cwd, UID: uid, GID: gid}, nil
}

// mergeEnv gives the image's environment with the spec's values on top, and
// a PATH when neither has one.
func mergeEnv(image []string, spec map[string]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, kv := range image {
		k, _, _ := strings.Cut(kv, "=")
		if _, override := spec[k]; override || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, kv)
	}
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		seen[k] = true
		out = append(out, k+"="+spec[k])
	}
	if !seen["PATH"] {
		out = append(out, defaultPath)
	}
	return out
}

// lookupUser resolves an image's "user[:group]" (names or numbers) against
// the image's own /etc/passwd and /etc/group, read through os.Root so that a
// symlink in the image cannot make the agent read a host file.
func lookupUser(root, user string) (uid, gid int, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, gidOfUser, err := lookupID(root, "etc/passwd", u, 3)
	if err != nil {
		return 0, 0, err
	}
	gid = gidOfUser
	if hasGroup {
		if gid, _, err = lookupID(root, "etc/group", g, -1); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

// lookupID finds name (or a number) in a passwd-style file; gidField is the
// column holding the user's primary group (-1: none).
func lookupID(root, file, name string, gidField int) (id, gid int, err error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		if n == 1<<32-1 {
			return 0, 0, fmt.Errorf("id %s is reserved: %w", name, errdefs.ErrInvalid)
		}
		return int(n), int(n), nil
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	f, err := r.Open(file)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a number and the image has no /%s: %w", name, file, errdefs.ErrInvalid)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		id, err := strconv.Atoi(fields[2])
		if err != nil {
			break
		}
		gid = id
		if gidField > 0 && len(fields) > gidField {
			if gid, err = strconv.Atoi(fields[gidField]); err != nil {
				break
			}
		}
		return id, gid, nil
	}
	return 0, 0, fmt.Errorf("%q not in the image's /%s: %w", name, file, errdefs.ErrInvalid)
}
