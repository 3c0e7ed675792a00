package agent

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

func TestMergeEnv(t *testing.T) {
	tests := []struct {
		name  string
		image []string
		spec  map[string]string
		want  []string
	}{
		{
			name: "nothing gives a PATH",
			want: []string{defaultPath},
		},
		{
			name:  "image env kept in order, PATH from the image",
			image: []string{"PATH=/app/bin", "B=2", "A=1"},
			want:  []string{"PATH=/app/bin", "B=2", "A=1"},
		},
		{
			name:  "PATH appended when the image has none",
			image: []string{"A=1"},
			want:  []string{"A=1", defaultPath},
		},
		{
			name:  "spec overrides the image and comes after it, sorted",
			image: []string{"A=1", "B=2", "PATH=/bin"},
			spec:  map[string]string{"B": "spec", "Z": "z", "C": "c"},
			want:  []string{"A=1", "PATH=/bin", "B=spec", "C=c", "Z=z"},
		},
		{
			name:  "spec PATH replaces the image's and no default is added",
			image: []string{"PATH=/image/bin"},
			spec:  map[string]string{"PATH": "/spec/bin"},
			want:  []string{"PATH=/spec/bin"},
		},
		{
			name: "spec PATH alone, no default",
			spec: map[string]string{"PATH": "/spec/bin"},
			want: []string{"PATH=/spec/bin"},
		},
		{
			name: "spec PATH empty still counts as set",
			spec: map[string]string{"PATH": ""},
			want: []string{"PATH="},
		},
		{
			// The first wins, as getenv(3) would see it.
			name:  "duplicates in the image env collapse to the first",
			image: []string{"A=first", "PATH=/one", "A=second", "PATH=/two"},
			want:  []string{"A=first", "PATH=/one"},
		},
		{
			name:  "duplicates in the image env all dropped by a spec override",
			image: []string{"A=first", "A=second"},
			spec:  map[string]string{"A": "spec"},
			want:  []string{"A=spec", defaultPath},
		},
		{
			name:  "entry without '=' is keyed by the whole string",
			image: []string{"FLAG", "FLAG=x"},
			want:  []string{"FLAG", defaultPath},
		},
		{
			name:  "value holding '=' is kept whole",
			image: []string{"Q=a=b"},
			spec:  map[string]string{"R": "c=d"},
			want:  []string{"Q=a=b", "R=c=d", defaultPath},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeEnv(tt.image, tt.spec)
			if !slices.Equal(got, tt.want) {
				t.Errorf("mergeEnv(%q, %v)\n got  %q\n want %q", tt.image, tt.spec, got, tt.want)
			}
		})
	}
}

// TestMergeEnvDeterministic guards against map iteration order leaking into
// the environment: the same inputs must give the same slice every time.
func TestMergeEnvDeterministic(t *testing.T) {
	spec := map[string]string{}
	for _, k := range []string{"K", "J", "I", "H", "G", "F", "E", "D", "C", "B", "A"} {
		spec[k] = k
	}
	image := []string{"X=1", "W=2"}
	first := mergeEnv(image, spec)
	for i := range 50 {
		if got := mergeEnv(image, spec); !slices.Equal(got, first) {
			t.Fatalf("call %d: got %q, want %q (same as the first call)", i, got, first)
		}
	}
	if !slices.IsSorted(first[2 : len(first)-1]) {
		t.Errorf("spec entries not sorted: %q", first)
	}
}

// writeFile writes data to root/rel, creating directories.
func writeFile(t *testing.T, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// imageRoot makes a root filesystem with the given passwd and group files
// (none when empty).
func imageRoot(t *testing.T, passwd, group string) string {
	t.Helper()
	root := t.TempDir()
	if passwd != "" {
		writeFile(t, root, "etc/passwd", passwd)
	}
	if group != "" {
		writeFile(t, root, "etc/group", group)
	}
	return root
}

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"# a comment line\n" +
		"short:x\n" +
		"app:x:1000:1001:App:/home/app:/bin/sh\n" +
		"nogid:x:1200\n" +
		"badid:x:notanumber:5::/:/bin/sh\n"
	testGroup = "root:x:0:\n" +
		"app:x:1001:\n" +
		"staff:x:50:app\n"
)

func TestLookupUser(t *testing.T) {
	root := imageRoot(t, testPasswd, testGroup)
	tests := []struct {
		name     string
		root     string
		user     string
		uid, gid int
		wantErr  error // nil: success
	}{
		{name: "empty is root", root: root, user: "", uid: 0, gid: 0},
		{name: "empty is root even without files", root: t.TempDir(), user: "", uid: 0, gid: 0},
		{name: "numeric uid, gid follows", root: root, user: "1000", uid: 1000, gid: 1000},
		{name: "numeric uid and gid", root: root, user: "1000:2000", uid: 1000, gid: 2000},
		{name: "numeric without any etc files", root: t.TempDir(), user: "1000:2000", uid: 1000, gid: 2000},
		{name: "name gives uid and primary gid", root: root, user: "app", uid: 1000, gid: 1001},
		{name: "root by name", root: root, user: "root", uid: 0, gid: 0},
		{name: "name and group name", root: root, user: "app:staff", uid: 1000, gid: 50},
		{name: "name and numeric group", root: root, user: "app:7", uid: 1000, gid: 7},
		{name: "numeric user and group name", root: root, user: "33:staff", uid: 33, gid: 50},
		{name: "passwd line without gid column uses the uid", root: root, user: "nogid", uid: 1200, gid: 1200},
		{name: "unknown user", root: root, user: "ghost", wantErr: errdefs.ErrInvalid},
		{name: "unknown group", root: root, user: "app:ghosts", wantErr: errdefs.ErrInvalid},
		{name: "comment line is not a user", root: root, user: "# a comment line", wantErr: errdefs.ErrInvalid},
		{name: "line with too few fields is not a user", root: root, user: "short", wantErr: errdefs.ErrInvalid},
		{name: "non-numeric uid in passwd", root: root, user: "badid", wantErr: errdefs.ErrInvalid},
		{name: "name but no etc/passwd", root: t.TempDir(), user: "app", wantErr: errdefs.ErrInvalid},
		{name: "group name but no etc/group", root: imageRoot(t, testPasswd, ""), user: "app:staff", wantErr: errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, gid, err := lookupUser(tt.root, tt.user)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("lookupUser(%q) = %d, %d, %v; want error %v", tt.user, uid, gid, err, tt.wantErr)
				}
				return
			}
			if err != nil || uid != tt.uid || gid != tt.gid {
				t.Fatalf("lookupUser(%q) = %d, %d, %v; want %d, %d, nil", tt.user, uid, gid, err, tt.uid, tt.gid)
			}
		})
	}
}

// TestLookupUserNoEscape checks that an image cannot point the agent at a
// host file: etc/passwd (or etc itself) as a symlink out of the root must
// fail, never resolve names from the host file.
func TestLookupUserNoEscape(t *testing.T) {
	host := t.TempDir()
	writeFile(t, host, "passwd", "app:x:4242:4343::/:/bin/sh\n")
	writeFile(t, host, "group", "staff:x:4444:\n")
	writeFile(t, host, "etc/passwd", "app:x:4242:4343::/:/bin/sh\n")

	symlinked := func(target, link string) string {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
		return root
	}
	groupEscapes := symlinked(filepath.Join(host, "group"), "etc/group")
	writeFile(t, groupEscapes, "etc/passwd", "app:x:1000:1001::/:/bin/sh\n")

	tests := []struct {
		name string
		root string
		user string
	}{
		{name: "etc/passwd is an absolute symlink to a host file", root: symlinked(filepath.Join(host, "passwd"), "etc/passwd"), user: "app"},
		{name: "etc/passwd is a relative symlink climbing out", root: symlinked("../../../../../../../../.."+filepath.Join(host, "passwd"), "etc/passwd"), user: "app"},
		{name: "etc is an absolute symlink to a host dir", root: symlinked(filepath.Join(host, "etc"), "etc"), user: "app"},
		{name: "etc/group is an absolute symlink to a host file", root: groupEscapes, user: "app:staff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, gid, err := lookupUser(tt.root, tt.user)
			if err == nil {
				t.Fatalf("lookupUser(%q) = %d, %d, nil; want an error (the host file must not be read)", tt.user, uid, gid)
			}
			if uid != 0 || gid != 0 {
				t.Errorf("lookupUser(%q) = %d, %d; want 0, 0 with the error", tt.user, uid, gid)
			}
		})
	}

	// A symlink that stays inside the root is an ordinary image layout.
	t.Run("symlink inside the root is followed", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, root, "usr/share/passwd", "app:x:1000:1001::/:/bin/sh\n")
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../usr/share/passwd", filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		uid, gid, err := lookupUser(root, "app")
		if err != nil || uid != 1000 || gid != 1001 {
			t.Fatalf("lookupUser = %d, %d, %v; want 1000, 1001, nil", uid, gid, err)
		}
	})
}

func TestResolveProcess(t *testing.T) {
	root := imageRoot(t, testPasswd, testGroup)
	tests := []struct {
		name    string
		cfg     api.ImageConfig
		spec    api.FunctionSpec
		want    process
		wantErr error
	}{
		{
			name: "entrypoint then cmd",
			cfg:  api.ImageConfig{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"}},
			want: process{Root: root, Args: []string{"/bin/sh", "-c", "echo hi"}, Env: []string{defaultPath}, Cwd: "/"},
		},
		{
			name: "cmd only",
			cfg:  api.ImageConfig{Cmd: []string{"/app", "serve"}, WorkingDir: "/srv"},
			want: process{Root: root, Args: []string{"/app", "serve"}, Env: []string{defaultPath}, Cwd: "/srv"},
		},
		{
			name: "entrypoint only, user and env resolved",
			cfg:  api.ImageConfig{Entrypoint: []string{"/app"}, User: "app", Env: []string{"A=1"}},
			spec: api.FunctionSpec{Env: map[string]string{"B": "2"}},
			want: process{Root: root, Args: []string{"/app"}, Env: []string{"A=1", "B=2", defaultPath}, Cwd: "/", UID: 1000, GID: 1001},
		},
		{
			name:    "neither entrypoint nor cmd",
			cfg:     api.ImageConfig{Entrypoint: []string{}, Cmd: nil, User: "app"},
			spec:    api.FunctionSpec{Image: "empty:1"},
			wantErr: errdefs.ErrInvalid,
		},
		{
			name:    "unknown user",
			cfg:     api.ImageConfig{Cmd: []string{"/app"}, User: "ghost"},
			wantErr: errdefs.ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveProcess(root, tt.cfg, tt.spec)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("resolveProcess = %+v, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveProcess: %v", err)
			}
			if got.Root != tt.want.Root || !slices.Equal(got.Args, tt.want.Args) || !slices.Equal(got.Env, tt.want.Env) ||
				got.Cwd != tt.want.Cwd || got.UID != tt.want.UID || got.GID != tt.want.GID {
				t.Errorf("resolveProcess\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}

	// The args must not alias the image config's slices: a later append
	// to one must not change the other.
	t.Run("args do not alias the image config", func(t *testing.T) {
		ep := make([]string, 1, 8)
		ep[0] = "/entry"
		cfg := api.ImageConfig{Entrypoint: ep, Cmd: []string{"x"}}
		got, err := resolveProcess(root, cfg, api.FunctionSpec{})
		if err != nil {
			t.Fatal(err)
		}
		got.Args[0] = "changed"
		if cfg.Entrypoint[0] != "/entry" {
			t.Errorf("image entrypoint changed to %q through the resolved args", cfg.Entrypoint[0])
		}
	})
}
