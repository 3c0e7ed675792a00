package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
)

func TestParseStack(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "temp.tar"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const stack = `
functions:
  temp:
    image: temp.tar
    memory: 64Mi
    cpu: 250m
    timeout: 5s
    env: {UNIT: celsius}
    mqtt:
      - "sensors/+/temp=alerts/{1};ordered"
      - filter: sensors/#
        reply: log/{topic}
        qos: 0
  another:
    image: hello:1
    mode: exec
`
	specs, err := parseStack("stack.yaml", []byte(stack), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.FunctionSpec{
		{Name: "another", Image: "hello:1", Mode: "exec"},
		{Name: "temp", Image: filepath.Join(dir, "temp.tar"), Memory: 64 << 20, CPU: 250, Timeout: api.Duration(5 * time.Second),
			Env: map[string]string{"UNIT": "celsius"}, MQTT: []api.MQTTBinding{
				{Filter: "sensors/+/temp", Reply: "alerts/{1}", QoS: 1, Ordered: true},
				{Filter: "sensors/#", Reply: "log/{topic}", QoS: 0},
			}},
	}
	if !reflect.DeepEqual(specs, want) {
		t.Fatalf("got %+v\nwant %+v", specs, want)
	}
}

func TestParseStackErrors(t *testing.T) {
	tests := []struct{ name, stack, want string }{
		{"unknown key", "functions:\n  f:\n    imgae: x\n", "imgae"},
		{"no functions", "functions: {}\n", "no functions"},
		{"bad memory", "functions:\n  f:\n    memory: lots\n", "memory"},
		{"bad timeout", "functions:\n  f:\n    timeout: soon\n", "timeout"},
		{"bad binding", "functions:\n  f:\n    mqtt: [\"a;fast\"]\n", "fast"},
		{"not yaml", "functions: [", "stack.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseStack("stack.yaml", []byte(tt.stack), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestStackArg(t *testing.T) {
	tests := []struct {
		args       []string
		file       string
		ok, hasErr bool
	}{
		{[]string{"-f", "s.yaml"}, "s.yaml", true, false},
		{[]string{"--f=s.yaml"}, "s.yaml", true, false},
		{[]string{"name", "--image", "x"}, "", false, false},
		{[]string{"-f", "s.yaml", "name"}, "", true, true},
		{[]string{"-f"}, "", true, true},
	}
	for _, tt := range tests {
		file, ok, err := stackArg(tt.args)
		if file != tt.file || ok != tt.ok || (err != nil) != tt.hasErr {
			t.Errorf("stackArg(%q) = %q, %v, %v", tt.args, file, ok, err)
		}
	}
}
