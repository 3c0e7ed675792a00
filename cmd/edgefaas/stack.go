package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgefaas/edgefaas/api"
)

// A stack file deploys many functions at once (edgefaas deploy -f FILE):
//
//	functions:
//	  temp:
//	    image: build/temp.tar          # NAME:TAG, a digest, or an archive (relative to the file)
//	    mode: http
//	    memory: 64Mi
//	    cpu: 250m
//	    timeout: 5s
//	    env: {UNIT: celsius}
//	    mqtt:
//	      - "sensors/+/temp=alerts/{1}"   # the --mqtt syntax
//	      - filter: sensors/#              # or spelled out
//	        reply: log/{topic}
//	        qos: 0
//	        ordered: true
//
// Unknown keys are errors. Functions are deployed in name order; the first
// failure stops the rest.
type stackFile struct {
	Functions map[string]stackFunction `yaml:"functions"`
}

type stackFunction struct {
	Image       string            `yaml:"image"`
	Mode        string            `yaml:"mode"`
	Memory      string            `yaml:"memory"`
	CPU         string            `yaml:"cpu"`
	Pids        int64             `yaml:"pids"`
	Timeout     string            `yaml:"timeout"`
	Concurrency int               `yaml:"concurrency"`
	Env         map[string]string `yaml:"env"`
	MQTT        []stackBinding    `yaml:"mqtt"`
}

// stackBinding is a binding as a --mqtt string or as a mapping.
type stackBinding struct{ api.MQTTBinding }

func (b *stackBinding) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var err error
		b.MQTTBinding, err = api.ParseBinding(n.Value)
		return err
	}
	var m struct {
		Filter  string `yaml:"filter"`
		Reply   string `yaml:"reply"`
		QoS     *byte  `yaml:"qos"`
		Ordered bool   `yaml:"ordered"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	b.MQTTBinding = api.MQTTBinding{Filter: m.Filter, Reply: m.Reply, QoS: 1, Ordered: m.Ordered}
	if m.QoS != nil {
		b.QoS = *m.QoS
	}
	return nil
}

// parseStack reads a stack file into function specs, in name order. Image
// paths that name files are made relative to dir, the file's directory.
func parseStack(name string, data []byte, dir string) ([]api.FunctionSpec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sf stackFile
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(sf.Functions) == 0 {
		return nil, fmt.Errorf("%s: no functions", name)
	}
	var specs []api.FunctionSpec
	for _, fn := range slices.Sorted(maps.Keys(sf.Functions)) {
		f := sf.Functions[fn]
		spec := api.FunctionSpec{Name: fn, Image: f.Image, Mode: f.Mode, Pids: f.Pids, Concurrency: f.Concurrency, Env: f.Env}
		bad := func(field string, err error) error {
			return fmt.Errorf("%s: function %s: %s: %w", name, fn, field, err)
		}
		var err error
		if f.Memory != "" {
			if spec.Memory, err = api.ParseBytes(f.Memory); err != nil {
				return nil, bad("memory", err)
			}
		}
		if f.CPU != "" {
			if spec.CPU, err = api.ParseCPU(f.CPU); err != nil {
				return nil, bad("cpu", err)
			}
		}
		if f.Timeout != "" {
			d, err := time.ParseDuration(f.Timeout)
			if err != nil {
				return nil, bad("timeout", err)
			}
			spec.Timeout = api.Duration(d)
		}
		if spec.Image != "" && !filepath.IsAbs(spec.Image) && !strings.Contains(spec.Image, ":") {
			if p := filepath.Join(dir, spec.Image); fileExists(p) {
				spec.Image = p
			}
		}
		for _, b := range f.MQTT {
			spec.MQTT = append(spec.MQTT, b.MQTTBinding)
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// stackArg finds -f FILE (or -f=FILE, --f) among deploy's arguments.
func stackArg(args []string) (string, bool, error) {
	for i, a := range args {
		switch {
		case a == "-f" || a == "--f":
			if i+1 >= len(args) || len(args) != 2 {
				return "", true, fmt.Errorf("deploy -f FILE takes nothing else: the file says it all")
			}
			return args[i+1], true, nil
		case strings.HasPrefix(a, "-f=") || strings.HasPrefix(a, "--f="):
			if len(args) != 1 {
				return "", true, fmt.Errorf("deploy -f FILE takes nothing else: the file says it all")
			}
			return a[strings.Index(a, "=")+1:], true, nil
		}
	}
	return "", false, nil
}

// deployStack deploys every function of a stack file.
func (c *cli) deployStack(ctx context.Context, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	specs, err := parseStack(file, data, filepath.Dir(file))
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	for _, spec := range specs {
		if spec.Image, err = c.imageRef(ctx, cl, spec.Image); err != nil {
			return fmt.Errorf("function %s: %w", spec.Name, err)
		}
		fn, err := cl.Deploy(ctx, spec)
		if err != nil {
			return fmt.Errorf("function %s: %w", spec.Name, err)
		}
		fmt.Fprintf(c.out, "deployed %s (version %d, image %s)\n", fn.Spec.Name, fn.Version, shortDigest(fn.ImageDigest))
	}
	return nil
}
