package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// starters are the files `edgefaas new` writes, per language; %[1]s is the
// function's name.
var starters = map[string]map[string]string{
	"go": {
		"go.mod": "module %[1]s\n\ngo 1.22\n",
		"main.go": `// Command %[1]s is an edgefaas function in http mode: a static HTTP
// server on $PORT (8080) inside its sandbox. Each request to
// /function/%[1]s[/path] arrives here with its method, path, query,
// headers and body.
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%[1]s got %%d bytes (call %%s, trigger %%s)\n",
			len(body), r.Header.Get("X-Call-Id"), r.Header.Get("X-Faas-Trigger"))
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
`,
	},
	"sh": {
		"handler.sh": `#!/bin/sh
# %[1]s: an edgefaas function in exec mode. The request body is on stdin,
# the answer is what this prints, exit 0 is success. The environment has
# FAAS_TRIGGER, FAAS_CALL_ID, HTTP_METHOD, HTTP_PATH, HTTP_QUERY, MQTT_TOPIC.
body=$(cat)
echo "%[1]s got: $body (call $FAAS_CALL_ID, trigger $FAAS_TRIGGER)"
`,
	},
}

// buildHints say how to build each starter.
var buildHints = map[string]string{
	"go": "edgefaas build %[1]s -t %[1]s:1 --platform linux/arm64,linux/arm/v7,linux/amd64 -o %[1]s.tar",
	"sh": "edgefaas build %[1]s -t %[1]s:1 --from BASE --mode exec --entrypoint '/bin/sh /handler.sh' -o %[1]s.tar\n" +
		"  (BASE: an image with /bin/sh, e.g. a busybox archive or registry.example.com/library/busybox:1.36)",
}

var starterName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// newFunction writes a starter function into ./NAME.
func (c *cli) newFunction(_ context.Context, args []string) error {
	fs := newFlags("new")
	lang := fs.String("lang", "go", "go (http mode) or sh (exec mode)")
	name, err := oneName(fs, args, "function NAME")
	if err != nil {
		return err
	}
	files, ok := starters[*lang]
	if !ok {
		return fmt.Errorf("new: --lang %q: want go or sh", *lang)
	}
	if !starterName.MatchString(name) {
		return fmt.Errorf("new: function name %q: want lower-case letters, digits and '-'", name)
	}
	if err := os.Mkdir(name, 0o755); err != nil {
		return fmt.Errorf("new: %w", err)
	}
	for file, tmpl := range files {
		mode := os.FileMode(0o644)
		if filepath.Ext(file) == ".sh" {
			mode = 0o755
		}
		if err := writeNew(filepath.Join(name, file), fmt.Sprintf(tmpl, name), mode); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "wrote %s\n", filepath.Join(name, file))
	}
	fmt.Fprintf(c.out, "build it with:\n  "+buildHints[*lang]+"\n", name)
	return nil
}

func writeNew(path, content string, mode os.FileMode) error {
	err := os.WriteFile(path, []byte(content), mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("new: %s exists", path)
	}
	if err != nil {
		return err
	}
	return os.Chmod(path, mode) // whatever the umask
}
