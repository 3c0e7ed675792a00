package agent

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/edgefaas/edgefaas/sandbox"
)

// invokeExec runs the entrypoint as a new process in the held sandbox:
// request body on stdin, response on stdout, stderr to the logs, exit 0 is
// success (DESIGN.md section 5).
func (inst *instance) invokeExec(ctx context.Context, c call) result {
	spec := inst.fn.Spec
	env := append(inst.tmpl.Env[:len(inst.tmpl.Env):len(inst.tmpl.Env)],
		"FAAS_TRIGGER="+c.Trigger,
		"FAAS_CALL_ID="+c.ID,
		"HTTP_METHOD="+c.Method,
		"HTTP_PATH="+c.Path,
		"HTTP_QUERY="+c.Query,
		"MQTT_TOPIC="+c.Topic,
	)
	stdout := &limitedBuffer{max: spec.MaxResponse}
	stderr := inst.logs.Writer(spec.Name, inst.sb.ID(), "stderr", c.ID)
	defer stderr.Close()
	oomBefore := inst.oomKills()
	st, err := inst.sb.Exec(ctx, sandbox.Process{
		Args: inst.tmpl.Args, Env: env, Cwd: inst.tmpl.Cwd,
		Stdin:  bytes.NewReader(c.Body),
		Stdout: stdout,
		Stderr: stderr,
	})
	if err != nil || st.Signal != 0 {
		// Killed (by a signal, the deadline or the OOM killer), or never
		// started. A killed process may have left children behind: the
		// sandbox goes with it (failure marks the instance broken).
		if err == nil || ctx.Err() != nil {
			err = fmt.Errorf("killed by signal %v", st.Signal)
		}
		return inst.failure(ctx, oomBefore, err)
	}
	switch {
	case stdout.overflow:
		return tooLarge(spec.Name, spec.MaxResponse)
	case st.Code != 0:
		h := http.Header{"X-Faas-Exit-Code": {fmt.Sprint(st.Code)}}
		return result{Code: http.StatusInternalServerError, Header: h, Body: stdout.Bytes(), FaasStatus: statusError, CPUTime: st.CPUTime}
	}
	return result{Code: http.StatusOK, Body: stdout.Bytes(), FaasStatus: statusOK, CPUTime: st.CPUTime}
}
